package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/client/clienttest"
	"github.com/huly-net/huly-net/go/network"
)

const waitFor = clienttest.WaitFor

// tracked is a container that records what happens to it.
type tracked struct {
	agent.Broadcaster
	uuid       string
	opts       network.GetOptions
	terminated atomic.Bool
	healthy    atomic.Bool
}

type tracker struct {
	mu      sync.Mutex
	started []*tracked
	fail    atomic.Bool
}

func (tr *tracker) factory(_ context.Context, uuid string, opts network.GetOptions) (agent.Container, error) {
	if tr.fail.Load() {
		return nil, errors.New("factory says no")
	}
	c := &tracked{uuid: uuid, opts: opts}
	c.healthy.Store(true)
	tr.mu.Lock()
	tr.started = append(tr.started, c)
	tr.mu.Unlock()
	return c, nil
}

func (tr *tracker) count() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.started)
}

func (tr *tracker) get(i int) *tracked {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.started[i]
}

func (c *tracked) Request(_ context.Context, clientID, op string, data json.RawMessage) (any, error) {
	return map[string]any{"uuid": c.uuid, "op": op, "client": clientID}, nil
}
func (c *tracked) Terminate(context.Context) error { c.terminated.Store(true); return nil }
func (c *tracked) Ping(context.Context) error {
	if !c.healthy.Load() {
		return errors.New("unwell")
	}
	return nil
}

func TestGetReusesByUUIDAndLabelsAndTerminates(t *testing.T) {
	s := clienttest.StartServer(t)
	tr := &tracker{}
	a, _ := clienttest.StartAgent(t, s.Addr(), clienttest.AgentSetup{
		Options: agent.Options{Labels: []string{"zone-a"}},
		Kinds:   map[string]agent.Factory{"kv": tr.factory},
	})
	c := clienttest.Dial(t, s.Addr())
	ctx := clienttest.Ctx(t)

	r1, err := c.Get(ctx, "kv", client.GetOptions{Labels: []string{"tenant-1"}, Extra: json.RawMessage(`{"size":1}`)})
	require.NoError(t, err)
	r2, err := c.Get(ctx, "kv", client.GetOptions{Labels: []string{"tenant-2"}})
	require.NoError(t, err)
	assert.NotEqual(t, r1.UUID(), r2.UUID(), "labels select containers")
	r3, err := c.Get(ctx, "kv", client.GetOptions{Labels: []string{"tenant-1"}})
	require.NoError(t, err)
	assert.Equal(t, r1.UUID(), r3.UUID(), "a container with the labels is reused")
	r4, err := c.Get(ctx, "kv", client.GetOptions{UUID: "fixed"})
	require.NoError(t, err)
	assert.Equal(t, "fixed", r4.UUID())
	assert.Equal(t, 3, tr.count())

	first := tr.get(0)
	assert.Equal(t, []string{"tenant-1", "zone-a"}, first.opts.Labels, "agent labels are added")
	assert.JSONEq(t, `{"size":1}`, string(first.opts.Extra))

	// The agent registers its labels; the network's record follows.
	require.Eventually(t, func() bool {
		recs, err := c.List(ctx, "kv")
		if err != nil {
			return false
		}
		for _, r := range recs {
			if string(r.UUID) == r1.UUID() {
				return assert.ObjectsAreEqual([]string{"tenant-1", "zone-a"}, r.Labels)
			}
		}
		return false
	}, waitFor, 10*time.Millisecond)

	infos := a.Containers()
	require.Len(t, infos, 3)
	for _, ci := range infos {
		assert.Equal(t, "running", ci.State)
	}

	// Released and unused: the network terminates it (ct).
	require.NoError(t, r4.Release(ctx))
	require.Eventually(t, func() bool { return len(a.Containers()) == 2 }, waitFor, 10*time.Millisecond)
	for i := 0; i < 3; i++ {
		if tr.get(i).uuid == "fixed" {
			assert.True(t, tr.get(i).terminated.Load())
		}
	}
}

func TestFactoryErrorReachesTheGetter(t *testing.T) {
	s := clienttest.StartServer(t)
	tr := &tracker{}
	tr.fail.Store(true)
	a, _ := clienttest.StartAgent(t, s.Addr(), clienttest.AgentSetup{Kinds: map[string]agent.Factory{"kv": tr.factory}})
	c := clienttest.Dial(t, s.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := c.Get(ctx, "kv", client.GetOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "factory says no")
	assert.Empty(t, a.Containers(), "a failed start is forgotten")

	// Once the factory recovers, a get succeeds (Get retries).
	tr.fail.Store(false)
	_, err = c.Get(clienttest.Ctx(t), "kv", client.GetOptions{})
	assert.NoError(t, err)
}

func TestSeveralAgentsOnOneClient(t *testing.T) {
	s := clienttest.StartServer(t)
	host := clienttest.Dial(t, s.Addr())
	a1 := clienttest.NewAgent(t, clienttest.AgentSetup{Kinds: map[string]agent.Factory{"one": agent.NewEcho}})
	a2 := clienttest.NewAgent(t, clienttest.AgentSetup{NoConnect: true, Kinds: map[string]agent.Factory{"two": agent.NewEcho}})
	require.NoError(t, a1.Attach(clienttest.Ctx(t), host))
	require.NoError(t, a2.Attach(clienttest.Ctx(t), host))
	assert.Error(t, a1.Attach(clienttest.Ctx(t), host), "attached twice")

	ctx := clienttest.Ctx(t)
	agents, err := host.Agents(ctx)
	require.NoError(t, err)
	assert.Len(t, agents, 2)

	// The hosting client itself can use its agents.
	for _, kind := range []string{"one", "two"} {
		ref, err := host.Get(ctx, kind, client.GetOptions{})
		require.NoError(t, err)
		res, err := ref.Request(ctx, "ping", nil)
		require.NoError(t, err)
		assert.Contains(t, string(res), ref.UUID())
	}

	// Closing one agent unregisters it (au); the other stays.
	require.NoError(t, a1.Close(ctx))
	agents, err = host.Agents(ctx)
	require.NoError(t, err)
	require.Len(t, agents, 1)
	assert.Equal(t, network.AgentID(a2.ID()), agents[0].AgentID)

	// Closing the client unregisters what it still hosts.
	require.NoError(t, host.Close(ctx))
	watcher := clienttest.Dial(t, s.Addr())
	agents, err = watcher.Agents(ctx)
	require.NoError(t, err)
	assert.Empty(t, agents)
}

func TestBackRequestForAnUnknownAgentIsANormalAnswer(t *testing.T) {
	// A bare server stands in for the network, to address any agent id.
	srv := backrpc.NewServer(backrpc.ServerOptions{Logger: clienttest.Quiet()}, backrpc.ServerHandler{})
	require.NoError(t, srv.Listen("tcp://127.0.0.1:0"))
	t.Cleanup(func() { _ = srv.Close() })
	c := clienttest.Dial(t, srv.Addr().String())
	a := clienttest.NewAgent(t, clienttest.AgentSetup{Kinds: clienttest.EchoKinds()})
	_, err := c.Host(a)
	require.NoError(t, err)
	ctx := clienttest.Ctx(t)

	res, err := srv.Call(ctx, c.ID(), "gg", []any{"someone-else", []any{"echo", map[string]any{}}})
	require.NoError(t, err)
	assert.JSONEq(t, `{"error":"Agent someone-else not found"}`, string(res))

	res, err = srv.Call(ctx, c.ID(), "gg", []any{a.ID(), []any{"echo", map[string]any{"uuid": "e1"}}})
	require.NoError(t, err)
	var pair []string
	require.NoError(t, json.Unmarshal(res, &pair))
	require.Len(t, pair, 2)
	assert.Equal(t, "e1", pair[0])
	assert.Equal(t, network.ContainerOnAgentRef(mustRef(t, a.EndpointRef()), "e1"), pair[1])

	res, err = srv.Call(ctx, c.ID(), "cl", []any{a.ID(), []any{nil}})
	require.NoError(t, err)
	var recs []network.ContainerRecord
	require.NoError(t, json.Unmarshal(res, &recs))
	require.Len(t, recs, 1)
	assert.Equal(t, network.ContainerUUID("e1"), recs[0].UUID)

	res, err = srv.Call(ctx, c.ID(), "cs", []any{a.ID(), []any{"e1", "echo", 7}})
	require.NoError(t, err)
	assert.JSONEq(t, `{"uuid":"e1","operation":"echo","data":7,"clientId":null}`, string(res))

	_, err = srv.Call(ctx, c.ID(), "cs", []any{a.ID(), []any{"nope", "echo", 7}})
	assert.ErrorContains(t, err, "Container nope not found")
	_, err = srv.Call(ctx, c.ID(), "gg", []any{a.ID(), []any{"unknown-kind", map[string]any{}}})
	assert.ErrorContains(t, err, "kind unknown-kind is not served")
	_, err = srv.Call(ctx, c.ID(), "zz", []any{a.ID(), []any{}})
	assert.Error(t, err)
	_, err = srv.Call(ctx, c.ID(), "gg", "garbage")
	assert.Error(t, err)

	res, err = srv.Call(ctx, c.ID(), "ct", []any{a.ID(), []any{"e1"}})
	require.NoError(t, err)
	assert.JSONEq(t, `""`, string(res))
	assert.Empty(t, a.Containers())
}

func mustRef(t *testing.T, s string) network.EndpointRef {
	t.Helper()
	r, err := network.ParseEndpointRef(s)
	require.NoError(t, err)
	return r
}

func TestStatelessFailoverAfterOwnerLeaves(t *testing.T) {
	s := clienttest.StartServer(t)
	trA, trB := &tracker{}, &tracker{}
	a, _ := clienttest.StartAgent(t, s.Addr(), clienttest.AgentSetup{
		Stateless: []clienttest.Stateless{{Kind: "leader", UUID: "leader-1", Factory: trA.factory}},
	})
	b, _ := clienttest.StartAgent(t, s.Addr(), clienttest.AgentSetup{
		Stateless: []clienttest.Stateless{{Kind: "leader", UUID: "leader-1", Factory: trB.factory}},
	})
	assert.Equal(t, "running", a.Containers()[0].State)
	assert.Equal(t, "standby", b.Containers()[0].State)
	assert.Equal(t, 1, trA.count())
	assert.Equal(t, 0, trB.count(), "a standby is not started")

	c := clienttest.Dial(t, s.Addr())
	ctx := clienttest.Ctx(t)
	ref, err := c.Get(ctx, "leader", client.GetOptions{UUID: "leader-1"})
	require.NoError(t, err)
	res, err := ref.Request(ctx, "who", nil)
	require.NoError(t, err)
	assert.Contains(t, string(res), `"uuid":"leader-1"`)
	assert.Contains(t, ref.Endpoint(), a.ID())

	require.NoError(t, a.Close(ctx))
	require.Eventually(t, func() bool { return b.Containers()[0].State == "running" }, waitFor, 10*time.Millisecond)
	require.Eventually(t, func() bool { return mustRef(t, ref.Endpoint()).AgentID == network.AgentID(b.ID()) }, waitFor, 10*time.Millisecond,
		"the reference follows the container to the standby")
	res, err = ref.Request(ctx, "who", nil)
	require.NoError(t, err)
	assert.Contains(t, string(res), `"uuid":"leader-1"`)
	assert.Equal(t, 1, trB.count())
}

func TestStatelessTerminatedByNetworkIsKeptAndReclaimed(t *testing.T) {
	s := clienttest.StartServer(t)
	tr := &tracker{}
	a, _ := clienttest.StartAgent(t, s.Addr(), clienttest.AgentSetup{
		Stateless: []clienttest.Stateless{{Kind: "leader", UUID: "leader-1", Factory: tr.factory}},
	})
	c := clienttest.Dial(t, s.Addr())
	ctx := clienttest.Ctx(t)
	ref, err := c.Get(ctx, "leader", client.GetOptions{UUID: "leader-1"})
	require.NoError(t, err)
	// Released and unused, the network terminates it (ct) and forgets it;
	// a pinned HA container is kept running and registered again. The
	// observer no longer holds it: it subscribes to its events.
	defer c.Subscribe(client.Subscription{UUIDs: []network.ContainerUUID{"leader-1"}})()
	require.Eventually(t, func() bool {
		sub, _ := s.Network().Subscription(network.ClientID(c.ID()))
		return len(sub.UUIDs) == 1
	}, waitFor, 10*time.Millisecond)
	removed := make(chan struct{}, 1)
	unsub := c.OnEvent(func(ev network.Event) {
		for _, ce := range ev.Containers {
			if ce.Container.UUID == "leader-1" && ce.Event == network.EventRemoved {
				select {
				case removed <- struct{}{}:
				default:
				}
			}
		}
	})
	defer unsub()
	require.NoError(t, ref.Release(ctx))
	select {
	case <-removed:
	case <-time.After(waitFor):
		t.Fatal("the network never terminated the unused container")
	}
	require.Eventually(t, func() bool {
		recs, err := c.List(ctx, "leader")
		return err == nil && len(recs) == 1 && a.Containers()[0].State == "running"
	}, waitFor, 10*time.Millisecond)
	assert.Equal(t, 1, tr.count(), "kept running, not started again")
	assert.False(t, tr.get(0).terminated.Load())
}

func TestUnhealthyContainerIsDropped(t *testing.T) {
	s := clienttest.StartServer(t)
	tr := &tracker{}
	a, _ := clienttest.StartAgent(t, s.Addr(), clienttest.AgentSetup{
		Options: agent.Options{HealthInterval: 20 * time.Millisecond},
		Kinds:   map[string]agent.Factory{"kv": tr.factory},
	})
	c := clienttest.Dial(t, s.Addr())
	ctx := clienttest.Ctx(t)
	_, err := c.Get(ctx, "kv", client.GetOptions{UUID: "sick"})
	require.NoError(t, err)
	tr.get(0).healthy.Store(false)
	require.Eventually(t, func() bool { return len(a.Containers()) == 0 }, waitFor, 10*time.Millisecond)
	assert.True(t, tr.get(0).terminated.Load())
	require.Eventually(t, func() bool {
		recs, err := c.List(ctx, "kv")
		return err == nil && len(recs) == 0
	}, waitFor, 10*time.Millisecond, "the network learns it is gone")
}

func TestEndpointServer(t *testing.T) {
	s := clienttest.StartServer(t)
	a, _ := clienttest.StartAgent(t, s.Addr(), clienttest.AgentSetup{Kinds: clienttest.EchoKinds()})
	c := clienttest.Dial(t, s.Addr())
	ctx := clienttest.Ctx(t)
	_, err := c.Get(ctx, "echo", client.GetOptions{UUID: "e1"})
	require.NoError(t, err)

	// A raw session with the endpoint, as a TypeScript client would speak.
	events := make(chan json.RawMessage, 8)
	raw, err := backrpc.Dial(a.Addr().String(), backrpc.ClientOptions{Logger: clienttest.Quiet()},
		backrpc.ClientHandler{OnEvent: func(p json.RawMessage) { events <- p }})
	require.NoError(t, err)
	t.Cleanup(func() { _ = raw.Close(context.Background()) })

	res, err := raw.Request(ctx, "cc", map[string]any{"uuid": []string{"e1"}})
	require.NoError(t, err)
	assert.JSONEq(t, `0`, string(res))
	_, err = raw.Request(ctx, "cc", map[string]any{"uuid": "nope"})
	assert.ErrorContains(t, err, "Container nope not found")
	_, err = raw.Request(ctx, "cc", map[string]any{"uuid": 5})
	assert.Error(t, err)

	res, err = raw.Request(ctx, "cs", []any{"e1", "broadcast", map[string]string{"note": "n"}})
	require.NoError(t, err)
	assert.JSONEq(t, `{"broadcastTo":1}`, string(res))
	select {
	case ev := <-events:
		assert.JSONEq(t, `["e1",{"from":"e1","to":"`+raw.ID()+`","note":"n"}]`, string(ev))
	case <-time.After(waitFor):
		t.Fatal("no event")
	}

	res, err = raw.Request(ctx, "cd", map[string]any{"uuid": "e1"})
	require.NoError(t, err)
	assert.JSONEq(t, `"ok"`, string(res))
	res, err = raw.Request(ctx, "cs", []any{"e1", "broadcast", nil})
	require.NoError(t, err)
	assert.JSONEq(t, `{"broadcastTo":0}`, string(res))

	_, err = raw.Request(ctx, "zz", nil)
	assert.ErrorContains(t, err, "Unknown method")

	// A client that goes away is disconnected from its containers.
	_, err = raw.Request(ctx, "cc", map[string]any{"uuid": "e1"})
	require.NoError(t, err)
	require.Equal(t, 1, a.Containers()[0].Clients)
	require.NoError(t, raw.Close(ctx))
	require.Eventually(t, func() bool { return a.Containers()[0].Clients == 0 }, waitFor, 10*time.Millisecond)
}

func TestNewRejectsBadOptions(t *testing.T) {
	_, err := agent.New(agent.Options{Listen: "127.0.0.1:0"})
	assert.Error(t, err, "listen without an endpoint")
	_, err = agent.New(agent.Options{Endpoint: ":3738"})
	assert.Error(t, err, "nothing to advertise")
	_, err = agent.New(agent.Options{Endpoint: "127.0.0.1:99999"})
	assert.Error(t, err)

	a, err := agent.New(agent.Options{Endpoint: "example.invalid:0", Listen: "127.0.0.1:0"})
	require.NoError(t, err)
	ref := mustRef(t, a.EndpointRef())
	assert.Equal(t, "example.invalid", ref.Host)
	assert.NotZero(t, ref.Port, "port 0 advertises the bound port")
	assert.Equal(t, network.RefDirect, ref.Kind)
	require.NoError(t, a.Close(context.Background()))
	assert.Error(t, a.AddStateless("k", "u", nil, agent.NewEcho))
}
