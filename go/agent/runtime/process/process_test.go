package process_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/agent/runtime"
	"github.com/huly-net/huly-net/go/agent/runtime/process"
	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/client/clienttest"
	"github.com/huly-net/huly-net/go/internal/testutil"
	"github.com/huly-net/huly-net/go/network"
)

const waitFor = clienttest.WaitFor

var bins testutil.Binaries

func TestMain(m *testing.M) {
	os.Exit(testutil.BuildMain(m, &bins, map[string]string{"echo-container": "../../../examples/echo-container"}))
}

func needBinary(t *testing.T) {
	t.Helper()
	bins.Need(t)
}

type rig struct {
	srv   *clienttest.Server
	agent *agent.Agent
	reg   *runtime.Registry
	spec  runtime.Spec
}

// startRig runs a network and an agent whose kind "echo" is served by the
// process runtime with the echo-container program.
func startRig(t *testing.T, mod func(*runtime.Spec)) *rig {
	t.Helper()
	needBinary(t)
	spec := runtime.Spec{Kind: "echo", Command: bins.Path("echo-container"), StopTimeout: 2 * time.Second, RestartBackoff: 20 * time.Millisecond}
	if mod != nil {
		mod(&spec)
	}
	r := &rig{srv: clienttest.StartServer(t), reg: &runtime.Registry{}, spec: spec}
	var mu sync.Mutex
	var a *agent.Agent
	rt, err := process.New(process.Options{
		Spec: spec, ListenHost: "127.0.0.1", Registry: r.reg, Logger: clienttest.Quiet(),
		NotifyDir: testutil.ShortTempDir(t),
		Refresh: func() {
			mu.Lock()
			defer mu.Unlock()
			if a != nil {
				a.Refresh()
			}
		},
	})
	require.NoError(t, err)
	mu.Lock()
	a, _ = clienttest.StartAgent(t, r.srv.Addr(), clienttest.AgentSetup{
		Options: agent.Options{HealthInterval: 100 * time.Millisecond},
		Kinds:   map[string]agent.Factory{"echo": rt.Factory},
	})
	r.agent = a
	mu.Unlock()
	return r
}

func pidOf(t *testing.T, ctx context.Context, ref interface {
	Request(context.Context, string, any) (json.RawMessage, error)
}) int {
	t.Helper()
	res, err := ref.Request(ctx, "info", nil)
	require.NoError(t, err)
	var info struct {
		PID int `json:"pid"`
	}
	require.NoError(t, json.Unmarshal(res, &info))
	require.NotZero(t, info.PID)
	return info.PID
}

func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func extraOf(ctx context.Context, c *client.Client, uuid string) map[string]any {
	recs, err := c.List(ctx, "")
	if err != nil {
		return nil
	}
	for _, r := range recs {
		if string(r.UUID) == uuid {
			var m map[string]any
			_ = json.Unmarshal(r.Extra, &m)
			return m
		}
	}
	return nil
}

func TestStartRequestConnectEvents(t *testing.T) {
	r := startRig(t, nil)
	c := clienttest.Dial(t, r.srv.Addr())
	ctx := clienttest.Ctx(t)

	ref, err := c.Get(ctx, "echo", client.GetOptions{Labels: []string{"l1"}, Extra: json.RawMessage(`{"size":2}`)})
	require.NoError(t, err)
	ep, err := ref.EndpointRef()
	require.NoError(t, err)
	assert.Equal(t, network.RefDirect, ep.Kind, "a process container has a direct endpoint")
	assert.Equal(t, "127.0.0.1", ep.Host)

	routed, err := ref.Request(ctx, "hello", map[string]any{"n": 1})
	require.NoError(t, err)
	var echoed struct {
		UUID      string         `json:"uuid"`
		Operation string         `json:"operation"`
		Data      map[string]any `json:"data"`
	}
	require.NoError(t, json.Unmarshal(routed, &echoed))
	assert.Equal(t, ref.UUID(), echoed.UUID)
	assert.Equal(t, "hello", echoed.Operation)
	assert.EqualValues(t, 1, echoed.Data["n"])

	info, err := ref.Request(ctx, "info", nil)
	require.NoError(t, err)
	assert.Contains(t, string(info), `"kind":"echo"`)
	assert.Contains(t, string(info), `"l1"`, "labels reach the program")
	assert.Contains(t, string(info), `"size":2`, "extra reaches the program")

	conn, err := ref.Connect(ctx)
	require.NoError(t, err)
	defer func() { _ = conn.Close() }()
	direct, err := conn.Request(ctx, "direct-op", "x")
	require.NoError(t, err)
	assert.Contains(t, string(direct), `"operation":"direct-op"`)
	assert.Contains(t, string(direct), `"clientId":"`+c.ID()+`"`, "a direct request carries the caller's client id")

	events := conn.Events()
	bc, err := ref.Request(ctx, "broadcast", map[string]any{"msg": "hi"})
	require.NoError(t, err)
	assert.Contains(t, string(bc), "broadcastTo")
	select {
	case ev := <-events:
		assert.Contains(t, string(ev), `"msg":"hi"`)
		assert.Contains(t, string(ev), `"from":"`+ref.UUID()+`"`)
	case <-ctx.Done():
		require.FailNow(t, "no broadcast event on the direct connection")
	}

	require.Eventually(t, func() bool {
		m := extraOf(ctx, c, ref.UUID())
		return m["state"] == "running" && m["runtime"] == "process"
	}, waitFor, 10*time.Millisecond, "the record shows state and runtime")
	assert.EqualValues(t, 2, extraOf(ctx, c, ref.UUID())["size"], "the get's extra is kept")
	assert.Equal(t, 1, r.reg.Counts()[runtime.Running])
}

func TestCrashRestartOnFailure(t *testing.T) {
	r := startRig(t, func(s *runtime.Spec) { s.Restart = runtime.RestartOnFailure })
	c := clienttest.Dial(t, r.srv.Addr())
	ctx := clienttest.Ctx(t)
	ref, err := c.Get(ctx, "echo", client.GetOptions{})
	require.NoError(t, err)
	id := ref.UUID()
	pid := pidOf(t, ctx, ref)

	removed := make(chan struct{}, 1)
	unsub := c.OnEvent(func(ev network.Event) {
		for _, ce := range ev.Containers {
			if string(ce.Container.UUID) == id && ce.Event == network.EventRemoved {
				select {
				case removed <- struct{}{}:
				default:
				}
			}
		}
	})
	defer unsub()
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	select {
	case <-removed:
	case <-ctx.Done():
		require.FailNow(t, "the crash was not announced as a removal")
	}

	require.Eventually(t, func() bool {
		m := extraOf(ctx, c, id)
		return m["state"] == "running" && m["restarts"] != nil
	}, waitFor, 10*time.Millisecond, "the container comes back, registered again")
	newPID := pidOf(t, ctx, ref)
	assert.NotEqual(t, pid, newPID, "a new process serves it")
	assert.Equal(t, id, ref.UUID(), "same uuid")
	assert.Contains(t, extraOf(ctx, c, id)["last_exit"], "signal 9")
}

func TestCrashWithoutRestartDropsContainer(t *testing.T) {
	r := startRig(t, nil)
	c := clienttest.Dial(t, r.srv.Addr())
	ctx := clienttest.Ctx(t)
	ref, err := c.Get(ctx, "echo", client.GetOptions{})
	require.NoError(t, err)
	id := ref.UUID()
	pid := pidOf(t, ctx, ref)
	var orig *runtime.Status
	for _, st := range r.reg.All() {
		if st.UUID() == id {
			orig = st
		}
	}
	require.NotNil(t, orig, "the runtime tracks the container")
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	// The instance that crashed is dropped, not restarted. (The client
	// still holds a reference, so its get may start the uuid afresh: that
	// is a new instance, tracked by a new Status.)
	require.Eventually(t, func() bool {
		for _, st := range r.reg.All() {
			if st == orig {
				return false
			}
		}
		return true
	}, waitFor, 10*time.Millisecond, "the agent forgets a crashed container without a restart policy")
	fields, _ := orig.Report()
	assert.Nil(t, fields["restarts"], "no restart without a restart policy")
	assert.Zero(t, r.reg.Counts()[runtime.Crashed], "its port and registry entry are released")
}

func TestOrphanTerminationKillsChild(t *testing.T) {
	r := startRig(t, nil)
	c := clienttest.Dial(t, r.srv.Addr())
	ctx := clienttest.Ctx(t)
	ref, err := c.Get(ctx, "echo", client.GetOptions{})
	require.NoError(t, err)
	pid := pidOf(t, ctx, ref)
	require.NoError(t, ref.Release(ctx))
	require.Eventually(t, func() bool { return processGone(pid) }, waitFor, 10*time.Millisecond,
		"the network's orphan termination (ct) ends the child")
	require.Eventually(t, func() bool { return len(r.agent.Containers()) == 0 && len(r.reg.All()) == 0 },
		waitFor, 10*time.Millisecond, "agent and runtime forget it")
}

func TestAgentRestartLeavesNoChildren(t *testing.T) {
	r := startRig(t, nil)
	c := clienttest.Dial(t, r.srv.Addr())
	ctx := clienttest.Ctx(t)
	ref, err := c.Get(ctx, "echo", client.GetOptions{})
	require.NoError(t, err)
	pid := pidOf(t, ctx, ref)
	id := r.agent.ID()

	require.NoError(t, r.agent.Close(ctx))
	assert.True(t, processGone(pid), "closing the agent terminates its children")

	// The same agent id comes back with a fresh runtime.
	rt, err := process.New(process.Options{Spec: r.spec, Registry: &runtime.Registry{}, Logger: clienttest.Quiet(), NotifyDir: testutil.ShortTempDir(t)})
	require.NoError(t, err)
	clienttest.StartAgent(t, r.srv.Addr(), clienttest.AgentSetup{
		Options: agent.Options{ID: id},
		Kinds:   map[string]agent.Factory{"echo": rt.Factory},
	})
	require.Eventually(t, func() bool {
		agents, err := c.Agents(ctx)
		return err == nil && len(agents) == 1 && string(agents[0].AgentID) == id
	}, waitFor, 10*time.Millisecond)
	var res json.RawMessage
	require.Eventually(t, func() bool {
		res, err = ref.Request(ctx, "after-restart", nil)
		return err == nil
	}, waitFor, 20*time.Millisecond, "the reference follows to a container of the restarted agent")
	assert.Contains(t, string(res), "after-restart")
	assert.NotEqual(t, pid, pidOf(t, ctx, ref))
}

func TestStartFailures(t *testing.T) {
	needBinary(t)
	dir := testutil.ShortTempDir(t)
	for _, tc := range []struct {
		name string
		spec runtime.Spec
		want string
	}{
		{"exits before ready", runtime.Spec{Kind: "k", Command: "/bin/sh", Args: []string{"-c", "exit 3"}}, "exited before READY=1: exit status 3"},
		{"never ready", runtime.Spec{Kind: "k", Command: "/bin/sh", Args: []string{"-c", "exec sleep 30"}, StartTimeout: 200 * time.Millisecond, StopTimeout: time.Second}, "no READY=1"},
		{"no such program", runtime.Spec{Kind: "k", Command: dir + "/missing"}, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := &runtime.Registry{}
			rt, err := process.New(process.Options{Spec: tc.spec, Registry: reg, Logger: clienttest.Quiet(), NotifyDir: dir})
			require.NoError(t, err)
			_, err = rt.Factory(clienttest.Ctx(t), "u1", network.GetOptions{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Empty(t, reg.All(), "a failed start leaves nothing tracked")
		})
	}
}

func TestMaxInstances(t *testing.T) {
	needBinary(t)
	reg := &runtime.Registry{}
	rt, err := process.New(process.Options{
		Spec:     runtime.Spec{Kind: "echo", Command: bins.Path("echo-container"), MaxInstances: 1},
		Registry: reg, Logger: clienttest.Quiet(), NotifyDir: testutil.ShortTempDir(t),
	})
	require.NoError(t, err)
	ctx := clienttest.Ctx(t)
	c1, err := rt.Factory(ctx, "u1", network.GetOptions{})
	require.NoError(t, err)
	defer func() { _ = c1.Terminate(ctx) }()
	_, err = rt.Factory(ctx, "u2", network.GetOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "max_instances")
	require.NoError(t, c1.Terminate(ctx))
	c2, err := rt.Factory(ctx, "u2", network.GetOptions{})
	require.NoError(t, err, "a terminated container frees its place")
	require.NoError(t, c2.Terminate(ctx))
}

func TestNewNeedsCommand(t *testing.T) {
	_, err := process.New(process.Options{Spec: runtime.Spec{Kind: "k"}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "command")
}
