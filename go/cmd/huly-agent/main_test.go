package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/client/clienttest"
	"github.com/huly-net/huly-net/go/internal/testutil"
	"github.com/huly-net/huly-net/go/network"
)

const waitFor = testutil.DaemonTimeout

var bins testutil.Binaries

// TestMain builds the daemon and the example container once for the
// tests that run them; under -short (the Nix check phase) those skip.
func TestMain(m *testing.M) {
	os.Exit(testutil.BuildMain(m, &bins, map[string]string{
		"huly-agent":     ".",
		"echo-container": "../../examples/echo-container",
	}))
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "agent.json")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

func TestBadConfigurationOfTheBinary(t *testing.T) {
	bins.Need(t)
	p := writeConfig(t, `{"kinds":{"a":{"runtime":"builtin","builtin":"echo","pinned":[{"uuid":"u"}]},"b":{"runtime":"process","pinned":[{"uuid":"u"}]}}}`)
	proc := testutil.StartDaemon(t, bins.Path("huly-agent"), []string{"--config", p}, testutil.ProcOptions{})
	assert.Equal(t, 2, proc.Wait(t))
	assert.Contains(t, proc.Output.String(), "kinds.b.command: required for runtime process")
	assert.Contains(t, proc.Output.String(), `kinds.b.pinned[0].uuid: duplicate pinned uuid "u"`)
}

// TestDaemonServesProcessContainers runs huly-agent --config
// examples/agent.json next to an in-process network, as systemd would
// (fake NOTIFY_SOCKET), and reaches its process containers with a client.
func TestDaemonServesProcessContainers(t *testing.T) {
	bins.Need(t)
	srv := clienttest.StartServer(t)
	state := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitFor)
	defer cancel()
	proc := testutil.StartDaemon(t, bins.Path("huly-agent"),
		[]string{"--config", "../../../examples/agent.json", "--network", srv.Addr(), "--listen", "127.0.0.1:0", "--log-format", "text"},
		testutil.ProcOptions{Env: []string{
			"PATH=" + bins.Dir() + string(os.PathListSeparator) + os.Getenv("PATH"),
			"STATE_DIRECTORY=" + state, "HULY_LOG_LEVEL=debug",
		}})

	before := proc.WaitReady(t)
	c := clienttest.Dial(t, srv.Addr())
	agents, err := c.Agents(ctx)
	require.NoError(t, err)
	require.Len(t, agents, 1, "READY=1 comes after the registration: the network lists the agent")
	idFile, err := os.ReadFile(filepath.Join(state, "agent-id"))
	require.NoError(t, err)
	assert.Equal(t, strings.TrimSpace(string(idFile)), string(agents[0].AgentID), "the id is kept in the state directory")
	assert.NotEmpty(t, before, "STATUS= before READY says what the agent waits for")

	line := proc.WaitNotify(t, "STATUS=registered")
	assert.Regexp(t, `^STATUS=registered; \d+ running, \d+ starting, \d+ crashed`, line)

	ref, err := c.Get(ctx, "echo-process", client.GetOptions{Labels: []string{"process"}})
	require.NoError(t, err)
	res, err := ref.Request(ctx, "hello", map[string]string{"from": "test"})
	require.NoError(t, err)
	assert.Contains(t, string(res), `"operation":"hello"`)
	ep, err := ref.EndpointRef()
	require.NoError(t, err)
	assert.Equal(t, network.RefDirect, ep.Kind)
	conn, err := ref.Connect(ctx)
	require.NoError(t, err)
	direct, err := conn.Request(ctx, "info", nil)
	require.NoError(t, err)
	var info struct {
		PID    int      `json:"pid"`
		Labels []string `json:"labels"`
	}
	require.NoError(t, json.Unmarshal(direct, &info))
	assert.Contains(t, info.Labels, "process", "the kind's labels reach the program")
	_ = conn.Close()

	pinned, err := c.Request(ctx, "example-pinned-echo", "ping", nil)
	require.NoError(t, err, "the pinned container is registered and running")
	assert.Contains(t, string(pinned), "example-pinned-echo")
	var pinnedExtra map[string]any
	require.Eventually(t, func() bool {
		recs, err := c.List(ctx, "echo-process")
		if err != nil {
			return false
		}
		for _, r := range recs {
			if r.UUID == "example-pinned-echo" {
				pinnedExtra = nil
				_ = json.Unmarshal(r.Extra, &pinnedExtra)
			}
		}
		return pinnedExtra["state"] == "running"
	}, waitFor, 20*time.Millisecond, "the pinned container's record shows its state")
	assert.Equal(t, "running", pinnedExtra["desired"], "a pinned container shows what is desired")
	assert.Equal(t, "process", pinnedExtra["runtime"])

	kv, err := c.Get(ctx, "kv", client.GetOptions{})
	require.NoError(t, err)
	_, err = kv.Request(ctx, "store", map[string]any{"key": "k", "value": 42})
	require.NoError(t, err)
	v, err := kv.Request(ctx, "retrieve", map[string]any{"key": "k"})
	require.NoError(t, err)
	assert.JSONEq(t, `42`, string(v))

	// SIGHUP is survived (its default action would end the process): the
	// configuration is read again.
	proc.Signal(t, syscall.SIGHUP)
	proc.WaitNotify(t, "RELOADING=1")
	proc.WaitNotify(t, "READY=1")
	v, err = kv.Request(ctx, "retrieve", map[string]any{"key": "k"})
	require.NoError(t, err, "still serving after SIGHUP")
	assert.JSONEq(t, `42`, string(v))

	proc.Signal(t, syscall.SIGTERM)
	proc.WaitNotify(t, "STOPPING=1")
	assert.Equal(t, 0, proc.Wait(t), "a clean stop exits 0")
	assert.ErrorIs(t, syscall.Kill(info.PID, 0), syscall.ESRCH, "process containers end with the agent")
}
