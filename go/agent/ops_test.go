package agent_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/client/clienttest"
	"github.com/huly-net/huly-net/go/network"
)

func TestDrainUndrainAndAgentStates(t *testing.T) {
	s := clienttest.StartServer(t)
	a1, _ := clienttest.StartAgent(t, s.Addr(), clienttest.AgentSetup{Kinds: clienttest.EchoKinds()})
	a2, _ := clienttest.StartAgent(t, s.Addr(), clienttest.AgentSetup{Kinds: clienttest.EchoKinds()})
	c := clienttest.Dial(t, s.Addr())
	ctx := clienttest.Ctx(t)
	require.True(t, c.ServerHas(backrpc.CapOps))

	r1, err := c.Get(ctx, "echo", client.GetOptions{Labels: []string{"x"}})
	require.NoError(t, err)
	held := agentOf(t, s, r1.UUID())
	drained, other := a1, a2
	if string(held) == a2.ID() {
		drained, other = a2, a1
	}
	require.NoError(t, c.Drain(ctx, drained.ID()))
	for i := range 4 {
		r, err := c.Get(ctx, "echo", client.GetOptions{Labels: []string{string(rune('a' + i))}})
		require.NoError(t, err)
		assert.Equal(t, network.AgentID(other.ID()), agentOf(t, s, r.UUID()), "nothing new on a drained agent")
	}
	_, err = r1.Request(ctx, "echo", 1)
	require.NoError(t, err, "the drained agent's containers keep serving")

	states, err := c.AgentStates(ctx)
	require.NoError(t, err)
	byID := map[network.AgentID]network.AgentState{}
	for _, st := range states {
		byID[st.AgentID] = st
	}
	assert.True(t, byID[network.AgentID(drained.ID())].Drained)
	assert.False(t, byID[network.AgentID(other.ID())].Drained)
	assert.Equal(t, 4, byID[network.AgentID(other.ID())].PerKind["echo"])

	require.NoError(t, c.Undrain(ctx, drained.ID()))
	r, err := c.Get(ctx, "echo", client.GetOptions{Labels: []string{"after"}})
	require.NoError(t, err)
	assert.Equal(t, network.AgentID(drained.ID()), agentOf(t, s, r.UUID()), "undrained and least loaded")
	err = c.Drain(ctx, "no-such-agent")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Agent no-such-agent not found")
}

func TestTerminateStopsAContainerAndHoldersFollowIt(t *testing.T) {
	s := clienttest.StartServer(t)
	tr := &tracker{}
	clienttest.StartAgent(t, s.Addr(), clienttest.AgentSetup{Kinds: map[string]agent.Factory{"kv": tr.factory}})
	holder := clienttest.Dial(t, s.Addr())
	op := clienttest.Dial(t, s.Addr())
	ctx := clienttest.Ctx(t)
	r, err := holder.Get(ctx, "kv", client.GetOptions{})
	require.NoError(t, err)
	uuid := r.UUID()
	require.Equal(t, 1, tr.count())

	res, err := op.Terminate(ctx, uuid)
	require.NoError(t, err)
	assert.Equal(t, network.ContainerUUID(uuid), res.UUID)
	assert.Equal(t, "kv", res.Kind)
	assert.True(t, tr.get(0).terminated.Load(), "the agent stopped it before the answer")

	// The holder saw it removed and got it again (a new start, same uuid).
	require.Eventually(t, func() bool { return tr.count() == 2 }, waitFor, waitFor/1000)
	out, err := r.Request(ctx, "op", nil)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(out, &m))
	assert.Equal(t, uuid, m["uuid"])

	_, err = op.Terminate(ctx, "no-such-container")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Container no-such-container not found")
}

// A stateless (HA) container is one its agent keeps: terminating it only
// makes the agent register it again.
func TestTerminateOfAStatelessContainerIsUndoneByItsAgent(t *testing.T) {
	s := clienttest.StartServer(t)
	tr := &tracker{}
	a, _ := clienttest.StartAgent(t, s.Addr(), clienttest.AgentSetup{
		Stateless: []clienttest.Stateless{{Kind: "svc", UUID: "ha-1", Factory: tr.factory}},
	})
	require.Eventually(t, func() bool { _, ok := s.Network().Container("ha-1"); return ok }, waitFor, waitFor/1000)
	op := clienttest.Dial(t, s.Addr())
	_, err := op.Terminate(clienttest.Ctx(t), "ha-1")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		rec, ok := s.Network().Container("ha-1")
		return ok && string(rec.AgentID) == a.ID()
	}, waitFor, waitFor/1000, "registered again by its agent")
	assert.False(t, tr.get(0).terminated.Load(), "still running: the agent keeps it")
}

// Against a server that announces no operator commands (as a TypeScript
// 0.7 server) nothing is sent.
func TestOperatorCommandsNeedTheCapability(t *testing.T) {
	var calls atomic.Int64
	srv := backrpc.NewServer(backrpc.ServerOptions{}, backrpc.ServerHandler{
		HandleRequest: func(context.Context, backrpc.ClientInfo, string, json.RawMessage) (any, error) {
			calls.Add(1)
			return "ok", nil
		},
	})
	require.NoError(t, srv.Listen("tcp://127.0.0.1:0"))
	t.Cleanup(func() { _ = srv.Close() })
	c := clienttest.Dial(t, srv.Addr().String())
	err := c.Drain(clienttest.Ctx(t), "a")
	require.ErrorIs(t, err, client.ErrNotSupported)
	_, err = c.Terminate(clienttest.Ctx(t), "u")
	require.ErrorIs(t, err, client.ErrNotSupported)
	assert.Zero(t, calls.Load())
}
