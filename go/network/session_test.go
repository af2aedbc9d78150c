package network

import (
	"context"
	"errors"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDisconnectedHostsAgentsGetNoWork(t *testing.T) {
	h := newHarness(t)
	h.net.ClientConnected(clientA)
	h.net.ClientConnected(clientB)
	h.register(clientA, agentA, []string{"echo"}, record(agentA, "c1", "echo"))
	h.register(clientB, agentB, []string{"echo"})

	h.net.ClientDisconnected(clientA)
	assert.Equal(t, 1, h.net.Stats().UnreachableAgents)
	for i := 0; i < 4; i++ {
		h.get(clientX, "echo", GetOptions{})
	}
	for _, g := range h.caller.getCalls() {
		assert.Equal(t, agentB, g.To.Agent, "no gg to the agent whose host is gone")
	}
	require.Len(t, h.caller.getCalls(), 4)

	_, err := h.net.Route(context.Background(), "c1", "op", nil)
	require.Error(t, err)
	assert.True(t, errors.Is(err, ErrAgentUnreachable), "%v", err)
	assert.Contains(t, err.Error(), "c1")
	assert.Contains(t, err.Error(), "agent-a is unreachable")
	assert.EqualValues(t, 1, h.net.Stats().UnreachableRoutes)

	// Only unreachable agents for a kind: a clear error, no back-request.
	h.net.ClientDisconnected(clientB)
	_, _, err = h.net.Get(context.Background(), clientX, "echo", GetOptions{})
	require.Error(t, err)
	assert.True(t, errors.Is(err, ErrNoSuitableAgents))
	assert.Contains(t, err.Error(), "unreachable")
	assert.Len(t, h.caller.getCalls(), 4)

	// The client comes back with the same id: its agents serve again.
	h.net.ClientConnected(clientA)
	_, err = h.net.Route(context.Background(), "c1", "op", nil)
	assert.NoError(t, err)
	assert.Equal(t, 1, h.net.Stats().UnreachableAgents, "agent-b's host is still gone")
}

func TestDisconnectedOwnerLeavesStatelessContainerToStandby(t *testing.T) {
	h := newHarness(t)
	h.net.ClientConnected(clientA)
	h.net.ClientConnected(clientB)
	h.register(clientA, agentA, []string{"leader"}, record(agentA, "leader-1", "leader"), record(agentA, "own", "leader"))
	term := h.register(clientB, agentB, []string{"leader"}, record(agentB, "leader-1", "leader"))
	assert.Equal(t, []ContainerUUID{"leader-1"}, term)
	h.tick()

	h.net.ClientDisconnected(clientA)
	_, ok := h.net.Container("leader-1")
	assert.False(t, ok, "the container another agent stands by for is released at the disconnect")
	_, ok = h.net.Container("own")
	assert.True(t, ok, "a container without standby stays for its owner to come back")
	assert.EqualValues(t, 1, h.net.Stats().Failovers)
	_, containers := eventKinds(h.tick())
	assert.Equal(t, []string{"leader-1:removed"}, containers)

	// The standby claims it with its next registration.
	term = h.register(clientB, agentB, []string{"leader"}, record(agentB, "leader-1", "leader"))
	assert.Empty(t, term)
	rec, ok := h.net.Container("leader-1")
	require.True(t, ok)
	assert.Equal(t, agentB, rec.AgentID)
}

func TestStandbyLoggedOnceWhileUnchanged(t *testing.T) {
	h := newHarness(t)
	h.register(clientA, agentA, []string{"leader"}, record(agentA, "leader-1", "leader"))
	for i := 0; i < 3; i++ {
		h.register(clientB, agentB, []string{"leader"}, record(agentB, "leader-1", "leader"))
	}
	n := 0
	for _, e := range h.logs.AllEntries() {
		if e.Level <= logrus.InfoLevel && e.Data["agent"] == agentB {
			n++
		}
	}
	assert.Equal(t, 1, n, "the standby state is logged when it begins, not at every registration")
}

func TestAgentBelongsToItsLiveSession(t *testing.T) {
	h := newHarness(t)
	h.net.ClientConnected(clientA)
	h.net.ClientConnected(clientB)
	h.register(clientA, agentA, []string{"echo"}, record(agentA, "c1", "echo"))

	_, err := h.net.RegisterAgent(clientB, AgentRegistration{UUID: agentA, Kinds: []string{"echo"}, Endpoint: agentRefFor(agentA).String()})
	require.Error(t, err)
	assert.True(t, errors.Is(err, ErrAgentOwned), "%v", err)
	err = h.net.UnregisterAgent(clientB, agentA)
	require.Error(t, err)
	assert.True(t, errors.Is(err, ErrAgentOwned), "%v", err)
	assert.EqualValues(t, 2, h.net.Stats().RefusedClaims)
	to, ok := h.net.RouteTarget("c1")
	require.True(t, ok, "the victim keeps its containers")
	assert.Equal(t, clientA, to.Client)
	warned := false
	for _, e := range h.logs.AllEntries() {
		if e.Level == logrus.WarnLevel && e.Data["client"] == string(clientB) && e.Data["host"] == string(clientA) {
			warned = true
		}
	}
	assert.True(t, warned, "a warning names both sessions")

	// The same client id on a new connection re-registers as before.
	h.net.ClientDisconnected(clientA)
	h.net.ClientConnected(clientA)
	h.register(clientA, agentA, []string{"echo"}, record(agentA, "c1", "echo"))

	// Once the owner's session is over another may take the agent.
	h.net.ClientGone(clientA)
	h.register(clientB, agentA, []string{"echo"}, record(agentA, "c1", "echo"))
	to, _ = h.net.RouteTarget("c1")
	assert.Equal(t, clientB, to.Client)
}

func TestRepeatedRegistrationKeepsHostedContainers(t *testing.T) {
	h := newHarness(t)
	h.register(clientA, agentA, []string{"echo"}, record(agentA, "c1", "echo"))
	started, _ := h.get(clientX, "echo", GetOptions{}) // a container started through gg
	h.tick()
	// The agent publishes its state again, listing everything it hosts
	// (what CapStatePublish promises).
	h.register(clientA, agentA, []string{"echo"}, record(agentA, "c1", "echo"), record(agentA, started, "echo"), record(agentA, "c3", "echo"))
	_, containers := eventKinds(h.tick())
	assert.Equal(t, []string{"c3:added"}, containers, "nothing already hosted is removed or re-added")
	for _, uuid := range []ContainerUUID{"c1", started, "c3"} {
		_, ok := h.net.Container(uuid)
		assert.True(t, ok, string(uuid))
	}
	assert.Equal(t, 1, h.net.Stats().References, "the reference to the started container survives")
}
