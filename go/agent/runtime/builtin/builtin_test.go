package builtin_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/agent/runtime"
	"github.com/huly-net/huly-net/go/agent/runtime/builtin"
	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/client/clienttest"
)

func TestKVAndEchoThroughTheNetwork(t *testing.T) {
	srv := clienttest.StartServer(t)
	reg := &runtime.Registry{}
	kv, err := builtin.Factory(builtin.Options{Spec: runtime.Spec{Kind: "kv", MaxInstances: 1}, Builtin: "kv", Registry: reg})
	require.NoError(t, err)
	echo, err := builtin.Factory(builtin.Options{Spec: runtime.Spec{Kind: "echo"}, Builtin: "echo", Registry: reg})
	require.NoError(t, err)
	clienttest.StartAgent(t, srv.Addr(), clienttest.AgentSetup{Kinds: map[string]agent.Factory{"kv": kv, "echo": echo}})
	c := clienttest.Dial(t, srv.Addr())
	ctx := clienttest.Ctx(t)

	ref, err := c.Get(ctx, "kv", client.GetOptions{})
	require.NoError(t, err)
	conn, err := ref.Connect(ctx)
	require.NoError(t, err)
	defer func() { _ = conn.Close() }()
	events := conn.Events()

	res, err := ref.Request(ctx, "store", map[string]any{"key": "b", "value": map[string]int{"n": 1}})
	require.NoError(t, err)
	assert.JSONEq(t, `"ok"`, string(res))
	_, err = ref.Request(ctx, "store", map[string]any{"key": "a", "value": "x"})
	require.NoError(t, err)
	res, err = ref.Request(ctx, "retrieve", map[string]any{"key": "b"})
	require.NoError(t, err)
	assert.JSONEq(t, `{"n":1}`, string(res))
	res, err = ref.Request(ctx, "list", nil)
	require.NoError(t, err)
	assert.JSONEq(t, `["a","b"]`, string(res))
	res, err = ref.Request(ctx, "delete", map[string]any{"key": "a"})
	require.NoError(t, err)
	assert.JSONEq(t, `true`, string(res))
	res, err = ref.Request(ctx, "retrieve", map[string]any{"key": "a"})
	require.NoError(t, err)
	assert.JSONEq(t, `null`, string(res))
	_, err = ref.Request(ctx, "store", map[string]any{"value": 1})
	require.ErrorContains(t, err, "key")
	_, err = ref.Request(ctx, "frob", map[string]any{"key": "a"})
	require.ErrorContains(t, err, "unknown operation")

	select {
	case ev := <-events:
		assert.Contains(t, string(ev), `"event":"stored"`)
	case <-ctx.Done():
		require.FailNow(t, "no kv event")
	}

	e, err := c.Get(ctx, "echo", client.GetOptions{})
	require.NoError(t, err)
	res, err = e.Request(ctx, "op", 5)
	require.NoError(t, err)
	assert.Contains(t, string(res), `"operation":"op"`)
	assert.Equal(t, 2, reg.Counts()[runtime.Running])

	require.NoError(t, ref.Release(ctx))
	require.Eventually(t, func() bool { return reg.Counts()[runtime.Running] == 1 }, clienttest.WaitFor, 10*time.Millisecond,
		"an orphaned builtin container is terminated and forgotten")
}

func TestUnknownBuiltin(t *testing.T) {
	_, err := builtin.Factory(builtin.Options{Spec: runtime.Spec{Kind: "x"}, Builtin: "nope"})
	require.ErrorContains(t, err, `unknown builtin "nope"`)
}
