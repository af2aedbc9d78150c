package network

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func gotAgents(calls []getCall) map[AgentID]int {
	out := map[AgentID]int{}
	for _, c := range calls {
		out[c.To.Agent]++
	}
	return out
}

func TestPlacementPrefersTheAgentWithFewestContainersOfTheKind(t *testing.T) {
	h := newHarness(t)
	var recs []ContainerRecord
	for i := range 20 {
		recs = append(recs, record(agentA, ContainerUUID(fmt.Sprintf("a-%02d", i)), "echo"))
	}
	h.register(clientA, agentA, []string{"echo"}, recs...)
	h.register(clientB, agentB, []string{"echo"})

	for range 10 {
		h.get(clientX, "echo", GetOptions{})
	}
	assert.Equal(t, map[AgentID]int{agentB: 10}, gotAgents(h.caller.getCalls()),
		"agent-a holds 20, agent-b fewer than that for all 10 gets")

	// Other kinds do not count: agent-a holds no kv.
	h.register(clientA, agentA, []string{"echo", "kv"}, recs...)
	h.register(clientB, agentB, []string{"echo", "kv"})
	h.get(clientX, "kv", GetOptions{})
	h.get(clientX, "kv", GetOptions{})
	calls := h.caller.getCalls()[10:]
	assert.Equal(t, map[AgentID]int{agentA: 1, agentB: 1}, gotAgents(calls), "equal load: round-robin")
}

func TestPlacementTiesGoRoundRobin(t *testing.T) {
	h := newHarness(t)
	h.register(clientA, agentA, []string{"echo"})
	h.register(clientB, agentB, []string{"echo"})
	for range 6 {
		uuid, _ := h.get(clientX, "echo", GetOptions{})
		h.net.Release(clientX, uuid)
	}
	assert.Equal(t, map[AgentID]int{agentA: 3, agentB: 3}, gotAgents(h.caller.getCalls()))
}

func TestPlacementSkipsAFullAgentAndCountsStarts(t *testing.T) {
	h := newHarness(t)
	_, err := h.net.RegisterAgent(clientA, AgentRegistration{
		UUID: agentA, Kinds: []string{"echo"}, Endpoint: agentRefFor(agentA).String(),
		Capacity: map[string]int{"echo": 2},
	})
	require.NoError(t, err)
	_, err = h.net.RegisterAgent(clientB, AgentRegistration{
		UUID: agentB, Kinds: []string{"echo"}, Endpoint: agentRefFor(agentB).String(),
		Containers: []ContainerRecord{record(agentB, "b1", "echo"), record(agentB, "b2", "echo"), record(agentB, "b3", "echo"), record(agentB, "b4", "echo"), record(agentB, "b5", "echo")},
	})
	require.NoError(t, err)

	// Two gets held in their start: both go to agent-a (0, then 1 starting
	// there, against 5 on agent-b), and a third finds it full.
	h.caller.getGate = make(chan struct{})
	h.caller.getStarted = make(chan getCall, 3)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	r1 := h.goGet(ctx, clientX, "echo", GetOptions{Labels: []string{"one"}})
	assert.Equal(t, agentA, receive(t, h.caller.getStarted).To.Agent)
	r2 := h.goGet(ctx, clientX, "echo", GetOptions{Labels: []string{"two"}})
	assert.Equal(t, agentA, receive(t, h.caller.getStarted).To.Agent)
	r3 := h.goGet(ctx, clientX, "echo", GetOptions{Labels: []string{"three"}})
	assert.Equal(t, agentB, receive(t, h.caller.getStarted).To.Agent, "agent-a is full with two starting")
	close(h.caller.getGate)
	for _, r := range []<-chan getResult{r1, r2, r3} {
		require.NoError(t, receive(t, r).err)
	}
}

func TestPlacementWithEveryAgentFullIsAClearError(t *testing.T) {
	h := newHarness(t)
	_, err := h.net.RegisterAgent(clientA, AgentRegistration{
		UUID: agentA, Kinds: []string{"echo"}, Endpoint: agentRefFor(agentA).String(),
		Containers: []ContainerRecord{record(agentA, "a1", "echo")},
		Capacity:   map[string]int{"echo": 1, "other": 5},
	})
	require.NoError(t, err)
	_, _, err = h.net.Get(context.Background(), clientX, "echo", GetOptions{})
	require.ErrorIs(t, err, ErrNoRoom)
	assert.Contains(t, err.Error(), "No agent has room for container echo: 1 agent(s) offer it, 0 drained, 1 full")
	assert.Empty(t, h.caller.getCalls())
	// A get of the existing container by uuid is no new container.
	uuid, _ := h.get(clientX, "echo", GetOptions{UUID: "a1"})
	assert.Equal(t, ContainerUUID("a1"), uuid)
}

func TestRegistrationCapacityIsAnExtraFieldOnlyWhenSet(t *testing.T) {
	b, err := json.Marshal(AgentRegistration{UUID: "a", Endpoint: "x"})
	require.NoError(t, err)
	assert.JSONEq(t, `{"uuid":"a","containers":[],"kinds":[],"endpoint":"x"}`, string(b), "what a TS agent sends")
	assert.NotContains(t, string(b), "capacity")
	b, err = json.Marshal(AgentRegistration{UUID: "a", Capacity: map[string]int{"echo": 3}})
	require.NoError(t, err)
	var back AgentRegistration
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, map[string]int{"echo": 3}, back.Capacity)
}
