package transient_test

import (
	"context"
	"encoding/json"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/agent/runtime"
	"github.com/huly-net/huly-net/go/agent/runtime/transient"
	"github.com/huly-net/huly-net/go/client/clienttest"
	"github.com/huly-net/huly-net/go/network"
)

const waitFor = clienttest.WaitFor

func newRuntime(t *testing.T, units *fakeUnits, mod func(*transient.Options)) *transient.Runtime {
	t.Helper()
	opts := transient.Options{
		Spec:         runtime.Spec{Kind: "web", Command: "/usr/bin/web", Args: []string{"--x"}, Labels: []string{"kindlabel"}},
		ListenHost:   "127.0.0.1",
		Units:        units,
		Logger:       clienttest.Quiet(),
		PollInterval: 10 * time.Millisecond,
		Registry:     &runtime.Registry{},
	}
	if mod != nil {
		mod(&opts)
	}
	rt, err := transient.New(opts)
	require.NoError(t, err)
	t.Cleanup(func() { rt.Detach(); units.stopAll() })
	return rt
}

func TestUnitName(t *testing.T) {
	assert.Equal(t, "huly-c-web-3f2a9c1b.service", transient.UnitName("web", "3f2a9c1b-0000-4000-8000-000000000000"))
	assert.Equal(t, "huly-c-a_b-pinnedec.service", transient.UnitName("a.b", "pinned-echo"), "names keep to unit-name characters")
}

func TestStartPropertiesRequestTerminate(t *testing.T) {
	units := newFakeUnits()
	rt := newRuntime(t, units, func(o *transient.Options) {
		o.Spec.Restart = runtime.RestartOnFailure
		o.Spec.RestartBackoff = 3 * time.Second
		o.UnitProperties = map[string]string{"MemoryMax": "512M", "CPUQuota": "50%", "User": "nobody"}
	})
	ctx := clienttest.Ctx(t)
	id := "3f2a9c1b-1111-4000-8000-000000000000"
	c, err := rt.Factory(ctx, id, network.GetOptions{Labels: []string{"l1"}})
	require.NoError(t, err)
	unit := transient.UnitName("web", id)
	require.True(t, units.active(unit))

	props := units.propsOf(unit)
	get := func(n string) any { v, _ := propValue(props, n); return v }
	assert.Equal(t, "notify", get("Type"), "systemd waits for READY=1")
	assert.Equal(t, "on-failure", get("Restart"))
	assert.Equal(t, uint64(3_000_000), get("RestartUSec"))
	assert.Equal(t, uint64(512<<20), get("MemoryMax"), "unit properties go with their D-Bus types")
	assert.Equal(t, uint64(500_000), get("CPUQuotaPerSecUSec"))
	assert.Equal(t, "nobody", get("User"))
	env, _ := get("Environment").([]string)
	assert.Contains(t, env, "HULY_CONTAINER_UUID="+id)
	assert.Contains(t, env, "HULY_CONTAINER_KIND=web")
	assert.Contains(t, env, `HULY_CONTAINER_LABELS=["l1","kindlabel"]`)

	res, err := c.Request(ctx, "", "hello", []byte(`{"a":1}`))
	require.NoError(t, err)
	assert.Contains(t, string(res.(json.RawMessage)), `"operation":"hello"`)
	host, port := c.(agent.DirectEndpoint).DirectEndpoint()
	assert.Equal(t, "127.0.0.1", host)
	assert.NotZero(t, port)
	st := c.(agent.StatusReporter).ContainerStatus()
	assert.Equal(t, "running", st.Fields["state"])
	assert.Equal(t, "transient", st.Fields["runtime"])

	require.NoError(t, c.Terminate(ctx))
	assert.False(t, units.active(unit), "terminating a container stops its unit")
	assert.Contains(t, units.stopped, unit)
}

func TestStartFailureCleansUp(t *testing.T) {
	units := newFakeUnits()
	units.failRun = true
	reg := &runtime.Registry{}
	rt := newRuntime(t, units, func(o *transient.Options) { o.Registry = reg })
	_, err := rt.Factory(clienttest.Ctx(t), "u1", network.GetOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "huly-c-web-u1.service did not start")
	assert.Contains(t, err.Error(), "journalctl -u huly-c-web-u1.service")
	assert.Empty(t, reg.All())
	assert.Contains(t, units.resets, "huly-c-web-u1.service", "a failed unit is reset so its name is free")
}

func TestAdoptClaimedStopUnclaimed(t *testing.T) {
	units := newFakeUnits()
	// An earlier agent left two containers of kind web running.
	earlier := newRuntime(t, units, nil)
	ctx := clienttest.Ctx(t)
	_, err := earlier.Factory(ctx, "aaaaaaaa-1", network.GetOptions{})
	require.NoError(t, err)
	_, err = earlier.Factory(ctx, "bbbbbbbb-2", network.GetOptions{})
	require.NoError(t, err)
	earlier.Detach()
	// Also: another kind whose units match the pattern, and a failed unit.
	units.put("huly-c-web-x-cccccccc.service", "active", []string{"HULY_CONTAINER_UUID=c", "HULY_CONTAINER_KIND=web-x"})
	units.put("huly-c-web-dddddddd.service", "failed", []string{"HULY_CONTAINER_UUID=d", "HULY_CONTAINER_KIND=web"})

	rt := newRuntime(t, units, nil)
	require.NoError(t, rt.Adopt(ctx))
	found := rt.Found()
	assert.Equal(t, map[string]string{
		"aaaaaaaa-1": "huly-c-web-aaaaaaaa.service",
		"bbbbbbbb-2": "huly-c-web-bbbbbbbb.service",
	}, found, "running units of this kind only")
	assert.Contains(t, units.resets, "huly-c-web-dddddddd.service", "failed units are reset")

	c, err := rt.Factory(ctx, "aaaaaaaa-1", network.GetOptions{})
	require.NoError(t, err, "a get of a found uuid adopts its unit")
	res, err := c.Request(ctx, "", "still-there", nil)
	require.NoError(t, err)
	assert.Contains(t, string(res.(json.RawMessage)), `"uuid":"aaaaaaaa-1"`)

	rt.ReapNow()
	assert.True(t, units.active("huly-c-web-aaaaaaaa.service"), "the adopted unit keeps running")
	assert.False(t, units.active("huly-c-web-bbbbbbbb.service"), "the unclaimed unit is stopped")
	assert.True(t, units.active("huly-c-web-x-cccccccc.service"), "another kind's unit is left alone")
}

func TestDetachLeavesUnitsRunning(t *testing.T) {
	units := newFakeUnits()
	rt := newRuntime(t, units, nil)
	ctx := clienttest.Ctx(t)
	c, err := rt.Factory(ctx, "eeeeeeee-1", network.GetOptions{})
	require.NoError(t, err)
	rt.Detach()
	require.NoError(t, c.Terminate(ctx))
	assert.True(t, units.active("huly-c-web-eeeeeeee.service"), "a stopping agent leaves its units to the next one")
	assert.Empty(t, units.stopped)
}

func TestFollowsUnitState(t *testing.T) {
	units := newFakeUnits()
	refreshed := make(chan struct{}, 16)
	rt := newRuntime(t, units, func(o *transient.Options) {
		o.Refresh = func() {
			select {
			case refreshed <- struct{}{}:
			default:
			}
		}
	})
	ctx := clienttest.Ctx(t)
	c, err := rt.Factory(ctx, "ffffffff-1", network.GetOptions{})
	require.NoError(t, err)
	unit := "huly-c-web-ffffffff.service"
	status := func() agent.ContainerStatus { return c.(agent.StatusReporter).ContainerStatus() }

	units.setState(unit, "activating", "auto-restart")
	require.Eventually(t, func() bool { return status().Fields["state"] == "crashed" }, waitFor, 5*time.Millisecond)
	assert.True(t, status().Down, "a crashed container is unregistered until systemd restarts it")
	select {
	case <-refreshed:
	case <-ctx.Done():
		require.FailNow(t, "a state change must trigger a registration")
	}

	units.setState(unit, "active", "running")
	require.Eventually(t, func() bool { return status().Fields["state"] == "running" }, waitFor, 5*time.Millisecond)
	assert.False(t, status().Down)
	assert.Equal(t, 1, status().Fields["restarts"])
	require.NoError(t, c.Ping(ctx))

	units.setState(unit, "failed", "failed")
	require.Eventually(t, func() bool { return c.Ping(ctx) != nil }, waitFor, 5*time.Millisecond,
		"a unit that ended makes the container fail its ping, so the agent drops it")
}

func TestParseProperty(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		want        map[string]any
		err         string
	}{
		{"MemoryMax", "1G", map[string]any{"MemoryMax": uint64(1 << 30)}, ""},
		{"MemoryMax", "infinity", map[string]any{"MemoryMax": uint64(math.MaxUint64)}, ""},
		{"TasksMax", "64", map[string]any{"TasksMax": uint64(64)}, ""},
		{"LimitNOFILE", "1024", map[string]any{"LimitNOFILE": uint64(1024), "LimitNOFILESoft": uint64(1024)}, ""},
		{"RuntimeMaxSec", "90", map[string]any{"RuntimeMaxUSec": uint64(90_000_000)}, ""},
		{"RuntimeMaxSec", "2m", map[string]any{"RuntimeMaxUSec": uint64(120_000_000)}, ""},
		{"PrivateTmp", "yes", map[string]any{"PrivateTmp": true}, ""},
		{"Nice", "-5", map[string]any{"Nice": int32(-5)}, ""},
		{"ReadWritePaths", "/a /b", map[string]any{"ReadWritePaths": []string{"/a", "/b"}}, ""},
		{"PrivateTmp", "maybe", nil, "want yes or no"},
		{"CPUQuota", "half", nil, "percentage"},
		{"ExecStart", "/bin/sh", nil, "not supported"},
	} {
		props, err := transient.ParseProperty(tc.name, tc.value)
		if tc.err != "" {
			require.Error(t, err, tc.name)
			assert.Contains(t, err.Error(), tc.err)
			continue
		}
		require.NoError(t, err, tc.name)
		got := map[string]any{}
		for _, p := range props {
			got[p.Name] = p.Value.Value()
		}
		assert.Equal(t, tc.want, got, tc.name+"="+tc.value)
	}
	assert.True(t, slices.IsSorted(transient.KnownProperties()))
}

// TestSystemBus runs against the machine's real system bus: it only
// checks that the connection works and huly-c-* units can be listed.
func TestSystemBus(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped under -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := transient.ConnectSystemBus(ctx, 5*time.Second)
	if err != nil {
		t.Skipf("no systemd on the system D-Bus here (%v); the systemd test tier runs this runtime for real", err)
	}
	defer b.Close()
	_, err = b.List(ctx, transient.UnitPrefix+"*")
	assert.NoError(t, err)
}
