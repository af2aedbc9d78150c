package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/client/clienttest"
	"github.com/huly-net/huly-net/go/internal/testutil"
	"github.com/huly-net/huly-net/go/network"
)

func itoa(i int) string { return strconv.Itoa(i) }

// echoAnswer is what an echo container answers.
type echoAnswer struct {
	UUID      string          `json:"uuid"`
	Operation string          `json:"operation"`
	Data      json.RawMessage `json:"data"`
	ClientID  *string         `json:"clientId"`
}

func TestAgentsKindsJSON(t *testing.T) {
	n := startEchoNetwork(t)

	var agents []map[string]any
	okJSON(t, &agents, "--network", n.addr, "agents")
	require.Len(t, agents, 1)
	assert.Equal(t, n.agent.ID(), agents[0]["agentId"])
	assert.Equal(t, []any{"echo"}, agents[0]["kinds"])
	assert.Equal(t, n.agent.EndpointRef(), agents[0]["endpoint"])

	var kinds []string
	okJSON(t, &kinds, "--network", n.addr, "kinds")
	assert.Equal(t, []string{"echo"}, kinds)
}

func TestHumanTables(t *testing.T) {
	n := startEchoNetwork(t)
	port := n.agent.Addr().(*net.TCPAddr).Port

	out := ok(t, "--network", n.addr, "agents")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2, out)
	assert.Equal(t, []string{"AGENT", "ENDPOINT", "KINDS", "CONTAINERS", "STATE"}, strings.Fields(lines[0]))
	assert.Equal(t, []string{n.agent.ID(), "127.0.0.1:" + itoa(port), "(direct)", "echo", "0", "active"}, strings.Fields(lines[1]))
	// Aligned: every column starts at the same offset on both lines.
	assert.Equal(t, strings.Index(lines[0], "ENDPOINT"), strings.Index(lines[1], "127.0.0.1"))

	out = ok(t, "--network", n.addr, "kinds")
	assert.Equal(t, "KIND  AGENTS  CONTAINERS  MAX-CONTAINERS  REQUESTS  MAX-REQUESTS  REFUSED\necho  1       0           -               0         -             0\n", out)
}

func TestContainers(t *testing.T) {
	n := startEchoNetwork(t)
	c := clienttest.Dial(t, n.addr)
	ref, err := c.Get(clienttest.Ctx(t), "echo", client.GetOptions{UUID: "listed-1", Labels: []string{"team=a"}})
	require.NoError(t, err)

	var recs []map[string]any
	okJSON(t, &recs, "--network", n.addr, "containers")
	require.Len(t, recs, 1)
	assert.Equal(t, "listed-1", recs[0]["uuid"])
	assert.Equal(t, "echo", recs[0]["kind"])
	assert.Equal(t, n.agent.ID(), recs[0]["agentId"])
	assert.Equal(t, ref.Endpoint(), recs[0]["endpoint"])

	okJSON(t, &recs, "--network", n.addr, "containers", "--kind", "other")
	assert.Empty(t, recs)
	okJSON(t, &recs, "--network", n.addr, "containers", "--kind", "echo")
	assert.Len(t, recs, 1)

	out := ok(t, "--network", n.addr, "containers")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2, out)
	assert.Equal(t, []string{"UUID", "KIND", "AGENT", "ENDPOINT", "LABELS", "LAST", "VISIT"}, strings.Fields(lines[0]))
	fields := strings.Fields(lines[1])
	require.GreaterOrEqual(t, len(fields), 6, lines[1])
	assert.Equal(t, []string{"listed-1", "echo", n.agent.ID()}, fields[:3])
	assert.Contains(t, lines[1], "team=a")

	// What an agent reports in a record's extra gets columns of its own.
	_, err = c.Get(clienttest.Ctx(t), "echo", client.GetOptions{UUID: "listed-2", Extra: json.RawMessage(`{"state":"running","runtime":"builtin"}`)})
	require.NoError(t, err)
	out = ok(t, "--network", n.addr, "containers")
	lines = strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3, out)
	assert.Equal(t, []string{"UUID", "KIND", "AGENT", "ENDPOINT", "LABELS", "LAST", "VISIT", "STATE", "RUNTIME"}, strings.Fields(lines[0]))
	assert.Regexp(t, `^listed-1 .* -\s+-$`, lines[1])
	assert.Regexp(t, `^listed-2 .* running\s+builtin$`, lines[2])
}

func TestStatus(t *testing.T) {
	n := startEchoNetwork(t)
	c := clienttest.Dial(t, n.addr)
	_, err := c.Get(clienttest.Ctx(t), "echo", client.GetOptions{UUID: "st-1"})
	require.NoError(t, err)

	var rep statusReport
	okJSON(t, &rep, "--network", n.addr, "status")
	assert.Equal(t, n.srv.ID(), rep.ServerID)
	assert.Equal(t, n.addr, rep.Network)
	require.Len(t, rep.Agents, 1)
	assert.Equal(t, network.AgentID(n.agent.ID()), rep.Agents[0].AgentID)
	assert.Equal(t, []string{"echo"}, rep.Kinds)
	assert.Equal(t, 1, rep.Containers)
	assert.Equal(t, map[string]int{"echo": 1}, rep.ContainersByKind)

	out := ok(t, "--network", n.addr, "status")
	assert.Contains(t, out, "server id     "+n.srv.ID())
	assert.Contains(t, out, "containers    1 (echo 1)")
	assert.Contains(t, out, n.agent.ID())
}

func TestGetPrintsAndReleases(t *testing.T) {
	n := startEchoNetwork(t)

	var got getResult
	okJSON(t, &got, "--network", n.addr, "get", "echo", "--uuid", "g-1", "--label", "x=1", "--extra", `{"a":1}`)
	assert.Equal(t, "g-1", got.UUID)
	er, err := network.ParseEndpointRef(got.Endpoint)
	require.NoError(t, err)
	assert.Equal(t, network.ContainerUUID("g-1"), er.UUID)
	assert.Equal(t, "127.0.0.1", er.Host)
	assert.Equal(t, n.agent.Addr().(*net.TCPAddr).Port, er.Port)

	// hulyctl released its reference when it exited: the network drops
	// the orphan after its unused timeout.
	assert.Equal(t, 0, n.srv.Stats().Network.References)
	require.Eventually(t, func() bool {
		_, found := n.srv.Network().Container("g-1")
		return !found
	}, waitFor, clienttest.PingInterval, "container g-1 outlived its released reference")

	out := ok(t, "--network", n.addr, "get", "echo")
	assert.Regexp(t, `(?m)^uuid\s+\S+$`, out)
	assert.Regexp(t, `(?m)^endpoint\s+127\.0\.0\.1:\d+ \(routed\)$`, out)
}

func TestGetHold(t *testing.T) {
	n := startEchoNetwork(t)
	p := startCtl(t, "--network", n.addr, "--json", "get", "echo", "--uuid", "held-1", "--hold")
	var got getResult
	require.NoError(t, json.Unmarshal([]byte(p.nextLine(t)), &got))
	assert.Equal(t, "held-1", got.UUID)
	assert.Equal(t, 1, n.srv.Stats().Network.References, "the reference is held while hulyctl runs")

	assert.Equal(t, 0, p.stop(t, syscall.SIGINT))
	require.Eventually(t, func() bool { return n.srv.Stats().Network.References == 0 },
		waitFor, clienttest.PingInterval, "the reference was not released at Ctrl-C")
}

func TestRequestRoutedAndDirect(t *testing.T) {
	n := startEchoNetwork(t)
	c := clienttest.Dial(t, n.addr)
	_, err := c.Get(clienttest.Ctx(t), "echo", client.GetOptions{UUID: "rq-1"})
	require.NoError(t, err)

	var routed echoAnswer
	okJSON(t, &routed, "--network", n.addr, "request", "rq-1", "ping", `{"n": 1}`)
	assert.Equal(t, "rq-1", routed.UUID)
	assert.Equal(t, "ping", routed.Operation)
	assert.JSONEq(t, `{"n":1}`, string(routed.Data))
	assert.Nil(t, routed.ClientID, "a routed request carries no client id")

	var direct echoAnswer
	okJSON(t, &direct, "--network", n.addr, "request", "--direct", "rq-1", "ping", `[1, "two"]`)
	assert.Equal(t, "rq-1", direct.UUID)
	assert.JSONEq(t, `[1,"two"]`, string(direct.Data))
	require.NotNil(t, direct.ClientID, "a request over a connection carries the caller's client id")
	assert.NotEmpty(t, *direct.ClientID)

	// No data is null; - reads it from stdin; human output is indented.
	okJSON(t, &routed, "--network", n.addr, "request", "rq-1", "nodata")
	assert.JSONEq(t, `null`, string(routed.Data))
	r := ctlWith(t, nil, `{"from": "stdin"}`, "--network", n.addr, "request", "rq-1", "in", "-")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "\n  \"data\": {\n    \"from\": \"stdin\"\n  },\n")

	// A container the network does not know: one line, exit 1.
	r = ctl(t, "--network", n.addr, "request", "nobody", "ping")
	assert.Equal(t, 1, r.code)
	assert.Equal(t, 1, strings.Count(r.stderr, "\n"), r.stderr)
	assert.Contains(t, r.stderr, "nobody")
	r = ctl(t, "--network", n.addr, "request", "--direct", "nobody", "ping")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "not listed")
}

func TestWatchSeesEvents(t *testing.T) {
	n := startEchoNetwork(t)
	p := startCtl(t, "--network", n.addr, "--json", "watch")
	// The banner comes once the session is up: events from now on reach it.
	require.Eventually(t, func() bool { return strings.Contains(p.stderr.String(), "watching") },
		waitFor, clienttest.PingInterval)

	c := clienttest.Dial(t, n.addr)
	_, err := c.Get(clienttest.Ctx(t), "echo", client.GetOptions{UUID: "watched-1"})
	require.NoError(t, err)

	line := p.lineMatching(t, "watched-1")
	var ev watchLine
	require.NoError(t, json.Unmarshal([]byte(line), &ev))
	require.Len(t, ev.Containers, 1)
	assert.Equal(t, network.ContainerUUID("watched-1"), ev.Containers[0].Container.UUID)
	assert.Equal(t, network.EventAdded, ev.Containers[0].Event)
	assert.False(t, ev.Time.IsZero())

	assert.Equal(t, 0, p.stop(t, syscall.SIGINT))
}

// watch --uuid shows the container it names and nothing of another one
// changing in the same batches; the server knows the subscription.
func TestWatchWithASubscription(t *testing.T) {
	n := startEchoNetwork(t)
	p := startCtl(t, "--network", n.addr, "--json", "watch", "--uuid", "wanted-1")
	require.Eventually(t, func() bool { return strings.Contains(p.stderr.String(), "watching") },
		waitFor, clienttest.PingInterval)
	c := clienttest.Dial(t, n.addr)
	ctx := clienttest.Ctx(t)
	_, err := c.Get(ctx, "echo", client.GetOptions{UUID: "other-1"})
	require.NoError(t, err)
	_, err = c.Get(ctx, "echo", client.GetOptions{UUID: "wanted-1"})
	require.NoError(t, err)
	_, err = c.Get(ctx, "echo", client.GetOptions{UUID: "other-2"})
	require.NoError(t, err)
	line := p.lineMatching(t, "wanted-1")
	var ev watchLine
	require.NoError(t, json.Unmarshal([]byte(line), &ev))
	require.Len(t, ev.Containers, 1, "only what it subscribed to: %s", line)
	assert.Equal(t, network.ContainerUUID("wanted-1"), ev.Containers[0].Container.UUID)
	assert.Equal(t, 1, n.srv.Stats().Interest.Subscriptions, "the server filters for it")
	assert.Equal(t, 0, p.stop(t, syscall.SIGINT))
	for {
		l, ok := <-p.lines
		if !ok {
			break
		}
		assert.NotContains(t, l, "other-", "a container it did not subscribe to")
	}
}

func TestWatchHuman(t *testing.T) {
	n := startEchoNetwork(t)
	p := startCtl(t, "--network", n.addr, "watch")
	require.Eventually(t, func() bool { return strings.Contains(p.stderr.String(), "watching") },
		waitFor, clienttest.PingInterval)
	clienttest.StartAgent(t, n.addr, clienttest.AgentSetup{Kinds: map[string]agent.Factory{"kv": agent.NewEcho}})
	line := p.lineMatching(t, "kinds=kv")
	assert.Regexp(t, `^\d\d:\d\d:\d\d\.\d{3}  agent\s+added\s+\S+  kinds=kv$`, line)
	assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
}

func TestBench(t *testing.T) {
	n := startEchoNetwork(t)
	var mu sync.Mutex
	seen := map[network.ContainerUUID]bool{}
	obs := clienttest.Dial(t, n.addr)
	defer obs.Subscribe(client.Subscription{All: true})()
	require.NoError(t, obs.WaitSubscribed(clienttest.Ctx(t)))
	obs.OnEvent(func(ev network.Event) {
		mu.Lock()
		defer mu.Unlock()
		for _, ce := range ev.Containers {
			seen[ce.Container.UUID] = true
		}
	})
	for _, mode := range []string{"routed", "direct"} {
		t.Run(mode, func(t *testing.T) {
			var rep map[string]any
			okJSON(t, &rep, "--network", n.addr, "bench", "--mode", mode,
				"--containers", "3", "--rounds", "5", "--parallel", "2", "--payload-bytes", "100")
			for _, k := range []string{"get_seconds", "requests", "requests_per_second", "p50_ms", "p95_ms", "p99_ms", "max_ms", "errors"} {
				assert.Contains(t, rep, k)
			}
			assert.EqualValues(t, 15, rep["requests"])
			assert.EqualValues(t, 0, rep["errors"])
			assert.Greater(t, rep["requests_per_second"], 0.0)
			assert.Greater(t, rep["p50_ms"], 0.0)
			assert.GreaterOrEqual(t, rep["max_ms"], rep["p99_ms"])
			assert.GreaterOrEqual(t, rep["p99_ms"], rep["p50_ms"])
		})
	}
	// The containers are bench-0 … bench-2, held for the bench only.
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return seen["bench-0"] && seen["bench-1"] && seen["bench-2"]
	}, waitFor, clienttest.PingInterval, "bench-0 … bench-2 never announced")
	mu.Lock()
	assert.Len(t, seen, 3)
	mu.Unlock()
	assert.Equal(t, 0, n.srv.Stats().Network.References)

	out := ok(t, "--network", n.addr, "bench", "--containers", "2", "--duration", "200ms", "--parallel", "2")
	assert.Regexp(t, `(?m)^requests\s+\d+ in [\d.]+ s, 0 errors$`, out)
	assert.Regexp(t, `(?m)^latency\s+p50 [\d.]+ ms  p95 [\d.]+ ms  p99 [\d.]+ ms  max [\d.]+ ms$`, out)
}

func TestServeEchoWithNetwork(t *testing.T) {
	p := startCtl(t, "--network", "127.0.0.1:0", "--json", "serve-echo", "--with-network", "--kind", "echo", "--kind", "echo2", "--label", "via=serve-echo")
	var info serveEchoInfo
	require.NoError(t, json.Unmarshal([]byte(p.nextLine(t)), &info))
	assert.True(t, info.WithNetwork)
	assert.Equal(t, []string{"echo", "echo2"}, info.Kinds)
	require.NotEmpty(t, info.ServerID)
	host, _, err := net.SplitHostPort(info.Network)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1", host)

	var agents []network.AgentInfo
	okJSON(t, &agents, "--network", info.Network, "agents")
	require.Len(t, agents, 1)
	assert.Equal(t, network.AgentID(info.AgentID), agents[0].AgentID)
	assert.ElementsMatch(t, []string{"echo", "echo2"}, agents[0].Kinds)
	er, err := network.ParseEndpointRef(agents[0].Endpoint)
	require.NoError(t, err)
	assert.Equal(t, info.Endpoint, net.JoinHostPort(er.Host, itoa(er.Port)))

	var got getResult
	okJSON(t, &got, "--network", info.Network, "get", "echo2", "--uuid", "se-1")
	var ans echoAnswer
	okJSON(t, &ans, "--network", info.Network, "request", "--direct", "se-1", "hello", `"world"`)
	assert.Equal(t, "se-1", ans.UUID)
	assert.JSONEq(t, `"world"`, string(ans.Data))

	// The agent's labels reach the network with its next registration.
	require.Eventually(t, func() bool {
		var recs []network.ContainerRecord
		okJSON(t, &recs, "--network", info.Network, "containers")
		return len(recs) == 1 && slices.Contains(recs[0].Labels, "via=serve-echo")
	}, waitFor, clienttest.PingInterval)

	assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
	// The network went with it.
	r := ctl(t, "--network", info.Network, "--timeout", "300ms", "agents")
	assert.Equal(t, 1, r.code)
}

func TestServeEchoHuman(t *testing.T) {
	n := startEchoNetwork(t)
	p := startCtl(t, "--network", n.addr, "serve-echo", "--kind", "other")
	line := p.lineMatching(t, "serving until Ctrl-C")
	assert.Equal(t, "serving until Ctrl-C", line)
	var agents []network.AgentInfo
	okJSON(t, &agents, "--network", n.addr, "agents")
	assert.Len(t, agents, 2)
	assert.Equal(t, 0, p.stop(t, syscall.SIGINT))
	// Its agent unregistered on the way out.
	require.Eventually(t, func() bool { return n.srv.Stats().Network.Agents == 1 },
		waitFor, clienttest.PingInterval)
}

func TestUsageErrorsExit2(t *testing.T) {
	skipShort(t)
	for _, args := range [][]string{
		{"agents", "--bogus"},
		{"no-such-command"},
		{"get"},
		{"get", "echo", "--extra", "{not json"},
		{"request", "only-uuid"},
		{"request", "u", "op", "{not json"},
		{"--timeout", "0s", "agents"},
		{"--timeout", "soon", "agents"},
		{"bench", "--rounds", "3", "--duration", "1s"},
		{"bench", "--mode", "sideways"},
		{"bench", "--containers", "0"},
		{"serve-echo", "--kind", ""},
		{"kinds", "extra-arg"},
	} {
		r := ctl(t, append([]string{"--network", "127.0.0.1:1"}, args...)...)
		assert.Equal(t, 2, r.code, "%v: %s", args, r.stderr)
		assert.True(t, strings.HasPrefix(r.stderr, "hulyctl: "), "%v: %q", args, r.stderr)
		assert.Equal(t, 1, strings.Count(r.stderr, "\n"), "%v: one line, got %q", args, r.stderr)
		assert.Empty(t, r.stdout, "%v", args)
	}
}

func TestUnreachableNetworkExit1(t *testing.T) {
	skipShort(t)
	// A port nobody listens on, and one that accepts but never speaks.
	closed := testutil.FreeAddr(t)
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = silent.Close() })
	go func() {
		for {
			conn, err := silent.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = conn.Close() })
		}
	}()
	for _, cmd := range [][]string{{"agents"}, {"status"}, {"get", "echo"}, {"request", "u", "op"}, {"watch"}, {"bench"}} {
		addr := silent.Addr().String()
		r := ctl(t, append([]string{"--network", addr, "--timeout", "500ms"}, cmd...)...)
		assert.Equal(t, 1, r.code, "%s %v: %s", addr, cmd, r.stderr)
		assert.Equal(t, "hulyctl: network "+addr+": no answer within 500ms\n", r.stderr, "%s %v", addr, cmd)

		// A refused connection is said at once: with an hour to wait, this
		// returns only because hulyctl does not wait.
		r = ctl(t, append([]string{"--network", closed, "--timeout", "1h"}, cmd...)...)
		assert.Equal(t, 1, r.code, "%s %v: %s", closed, cmd, r.stderr)
		assert.Equal(t, "hulyctl: network "+closed+": connection refused\n", r.stderr, "%s %v", closed, cmd)
	}
}

func TestNetworkFromEnvironment(t *testing.T) {
	n := startEchoNetwork(t)
	r := ctlWith(t, []string{"HULY_NETWORK=" + n.addr}, "", "--json", "kinds")
	require.Equal(t, 0, r.code, r.stderr)
	assert.JSONEq(t, `["echo"]`, r.stdout)
}

func TestVersion(t *testing.T) {
	out := ok(t, "version")
	assert.Regexp(t, `^hulyctl \S+ \(go[\d.]+.*\)\n$`, out)
	var v map[string]string
	okJSON(t, &v, "version")
	assert.NotEmpty(t, v["version"])
	assert.Regexp(t, `^hulyctl \S+\n$`, ok(t, "--version"))
}

func TestCompletionAndManPages(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		assert.Contains(t, ok(t, "completion", sh), "hulyctl", sh)
	}
	dir := t.TempDir()
	ok(t, "man", dir)
	for _, page := range []string{"hulyctl.1", "hulyctl-agents.1", "hulyctl-bench.1"} {
		b, err := os.ReadFile(filepath.Join(dir, page))
		require.NoError(t, err, page)
		assert.Contains(t, string(b), ".SH NAME", page)
	}
}

func TestHelpListsEveryCommand(t *testing.T) {
	out := ok(t, "--help")
	for _, c := range []string{"agents", "kinds", "containers", "status", "get", "request", "watch", "serve-echo", "bench", "version"} {
		assert.Regexp(t, `(?m)^  `+c+`\s`, out)
	}
}
