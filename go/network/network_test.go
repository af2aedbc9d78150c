package network

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	clientA ClientID = "client-a"
	clientB ClientID = "client-b"
	clientX ClientID = "client-x"
	clientY ClientID = "client-y"
	agentA  AgentID  = "agent-a"
	agentB  AgentID  = "agent-b"
)

func TestRegisterNewAgentQueuesAddedEvents(t *testing.T) {
	h := newHarness(t)
	term := h.register(clientA, agentA, []string{"echo"}, record(agentA, "c1", "echo"), record(agentA, "c2", "echo"))
	assert.NotNil(t, term, "ar answers [] rather than null")
	assert.Empty(t, term)

	ev := h.tick()
	agents, containers := eventKinds(ev)
	assert.Equal(t, []string{"agent-a:added"}, agents)
	assert.Equal(t, []string{"c1:added", "c2:added"}, containers)
	assert.Equal(t, []string{"echo"}, ev.Agents[0].Kinds)
	assert.Equal(t, record(agentA, "c1", "echo"), ev.Containers[0].Container)

	assert.True(t, h.tick().Empty(), "a batch is sent once")
}

func TestReRegisterUpdatesAddsAndDropsContainers(t *testing.T) {
	h := newHarness(t)
	h.register(clientA, agentA, []string{"echo"}, record(agentA, "c1", "echo"), record(agentA, "c2", "echo"), record(agentA, "c3", "echo"))
	h.tick()

	moved := record(agentA, "c1", "echo")
	moved.Endpoint = ContainerOnAgentRef(EndpointRef{Kind: RefDirect, Host: "127.0.0.1", Port: 4000, AgentID: agentA}, "c1")
	term := h.register(clientA, agentA, []string{"echo"}, moved, record(agentA, "c3", "echo"), record(agentA, "c4", "echo"))
	assert.Empty(t, term)

	ev := h.tick()
	agents, containers := eventKinds(ev)
	assert.Empty(t, agents, "same kinds and endpoint: no agent event")
	assert.ElementsMatch(t, []string{"c1:updated", "c2:removed", "c4:added"}, containers,
		"c3 is unchanged and produces no event")
	for _, c := range ev.Containers {
		if c.Container.UUID == "c1" {
			assert.Equal(t, moved.Endpoint, c.Container.Endpoint, "the update carries the new endpoint")
		}
	}
	uuids := []ContainerUUID{}
	for _, r := range h.net.Containers("") {
		uuids = append(uuids, r.UUID)
	}
	assert.Equal(t, []ContainerUUID{"c1", "c3", "c4"}, uuids)

	h.register(clientA, agentA, []string{"echo", "kv"}, moved, record(agentA, "c3", "echo"), record(agentA, "c4", "echo"))
	agents, containers = eventKinds(h.tick())
	assert.Equal(t, []string{"agent-a:updated"}, agents, "changed kinds are announced")
	assert.Empty(t, containers)
}

func TestReRegisterKeepsReferencesToContinuingContainers(t *testing.T) {
	h := newHarness(t)
	h.register(clientA, agentA, []string{"echo"}, record(agentA, "c1", "echo"))
	h.get(clientX, "echo", GetOptions{UUID: "c1"})
	h.register(clientA, agentA, []string{"echo"}, record(agentA, "c1", "echo"))

	assert.Equal(t, 1, h.net.Stats().References)
	h.net.Release(clientX, "c1")
	assert.Equal(t, 1, h.net.Stats().Orphans, "the reference survived the re-registration")
}

func TestHAFirstRegistrationWins(t *testing.T) {
	h := newHarness(t)
	assert.Empty(t, h.register(clientA, agentA, nil, record(agentA, "leader-1", "leader")))
	h.tick()

	term := h.register(clientB, agentB, nil, record(agentB, "leader-1", "leader"))
	assert.Equal(t, []ContainerUUID{"leader-1"}, term, "the second owner must terminate its copy")

	rec, ok := h.net.Container("leader-1")
	require.True(t, ok)
	assert.Equal(t, agentA, rec.AgentID)
	assert.Equal(t, record(agentA, "leader-1", "leader").Endpoint, rec.Endpoint)
	agents, containers := eventKinds(h.tick())
	assert.Equal(t, []string{"agent-b:added"}, agents)
	assert.Empty(t, containers, "a rejected container is not announced")

	infos := h.net.Agents()
	require.Len(t, infos, 2)
	assert.Equal(t, 1, infos[0].Containers)
	assert.Equal(t, 0, infos[1].Containers)

	// The owner dies (its client stops pinging); the standby claims it.
	h.clock.Advance(2 * time.Second)
	h.net.ClientSeen(clientB)
	h.clock.Advance(1500 * time.Millisecond)
	agents, containers = eventKinds(h.tick())
	assert.Equal(t, []string{"agent-a:removed"}, agents)
	assert.Equal(t, []string{"leader-1:removed"}, containers)

	assert.Empty(t, h.register(clientB, agentB, nil, record(agentB, "leader-1", "leader")))
	rec, ok = h.net.Container("leader-1")
	require.True(t, ok)
	assert.Equal(t, agentB, rec.AgentID)
	_, containers = eventKinds(h.tick())
	assert.Equal(t, []string{"leader-1:added"}, containers)
}

func TestRegisterValidatesAndFillsRecords(t *testing.T) {
	h := newHarness(t)
	_, err := h.net.RegisterAgent(clientA, AgentRegistration{Kinds: []string{"echo"}})
	require.ErrorIs(t, err, ErrInvalidRegistration)
	_, err = h.net.RegisterAgent(clientA, AgentRegistration{UUID: agentA, Containers: []ContainerRecord{{Kind: "echo"}}})
	require.ErrorIs(t, err, ErrInvalidRegistration)
	assert.Contains(t, err.Error(), "container record 0 has no uuid")
	_, err = h.net.RegisterAgent(clientA, AgentRegistration{UUID: agentA, Containers: []ContainerRecord{{UUID: "c1", Extra: json.RawMessage(`{`)}}})
	require.ErrorIs(t, err, ErrInvalidRegistration)
	assert.Empty(t, h.net.Agents(), "a rejected registration changes nothing")

	_, err = h.net.RegisterAgent(clientA, AgentRegistration{
		UUID:     agentA,
		Kinds:    []string{"echo", "echo"},
		Endpoint: AgentNoConnectRef(agentA),
		Containers: []ContainerRecord{
			{AgentID: "someone-else", UUID: "c1", Kind: "echo"},
			{UUID: "c1", Kind: "dup"},
		},
	})
	require.NoError(t, err)
	rec, ok := h.net.Container("c1")
	require.True(t, ok)
	assert.Equal(t, agentA, rec.AgentID, "the registering agent owns what it lists")
	assert.Equal(t, "echo", rec.Kind, "within one registration the first record of a uuid counts")
	assert.Equal(t, `{"kind":2,"host":"","port":0,"agentId":"agent-a","uuid":"c1"}`, rec.Endpoint,
		"a missing endpoint is derived from a noconnect agent's ref")
	assert.Equal(t, t0.UnixMilli(), rec.LastVisit)
	assert.Equal(t, []string{"echo"}, h.net.Kinds())
}

func TestRegisterKeepsAnUnparsableAgentEndpoint(t *testing.T) {
	h := newHarness(t)
	_, err := h.net.RegisterAgent(clientA, AgentRegistration{UUID: agentA, Endpoint: "not a ref", Containers: []ContainerRecord{{UUID: "c1"}}})
	require.NoError(t, err)
	assert.Equal(t, "not a ref", h.net.Agents()[0].Endpoint)
	rec, _ := h.net.Container("c1")
	assert.Empty(t, rec.Endpoint)
	require.NotEmpty(t, h.logs.AllEntries())
	assert.Equal(t, logrus.WarnLevel, h.logs.LastEntry().Level)
}

func TestGetExistingByUUIDNeedsNoBackRequest(t *testing.T) {
	h := newHarness(t)
	h.register(clientA, agentA, []string{"echo"}, record(agentA, "c1", "echo"))
	h.clock.Advance(time.Minute)

	uuid, ref := h.get(clientX, "echo", GetOptions{UUID: "c1"})
	assert.Equal(t, ContainerUUID("c1"), uuid)
	assert.Equal(t, record(agentA, "c1", "echo").Endpoint, ref)
	assert.Empty(t, h.caller.getCalls())
	rec, _ := h.net.Container("c1")
	assert.Equal(t, t0.Add(time.Minute).UnixMilli(), rec.LastVisit, "a get is a visit")
	assert.Equal(t, 1, h.net.Stats().References)
}

func TestGetStartsThroughAgentAndRecordsRealEndpoint(t *testing.T) {
	h := newHarness(t)
	h.register(clientA, agentA, []string{"echo"})
	h.tick()

	opts := GetOptions{Labels: []string{"t1"}, Extra: json.RawMessage(`{"tenant":"t1"}`)}
	uuid, ref := h.get(clientX, "echo", opts)
	calls := h.caller.getCalls()
	require.Len(t, calls, 1)
	assert.Equal(t, getCall{To: AgentTarget{Client: clientA, Agent: agentA}, Kind: "echo", Opts: opts}, calls[0])

	want := ContainerRecord{
		AgentID:   agentA,
		UUID:      uuid,
		Kind:      "echo",
		Endpoint:  ref,
		LastVisit: t0.UnixMilli(),
		Labels:    []string{"t1"},
		Extra:     json.RawMessage(`{"tenant":"t1"}`),
	}
	assert.Equal(t, `{"kind":0,"host":"127.0.0.1","port":3738,"agentId":"agent-a","uuid":"c-1"}`, ref)
	assert.Equal(t, []ContainerRecord{want}, h.net.Containers("echo"), "cl shows the real endpoint")
	ev := h.tick()
	require.Len(t, ev.Containers, 1)
	assert.Equal(t, ContainerEvent{Container: want, Event: EventAdded}, ev.Containers[0], "so do events")
}

func TestConcurrentGetsJoinOnePendingStart(t *testing.T) {
	h := newHarness(t)
	h.register(clientA, agentA, []string{"echo"})
	h.caller.getStarted = make(chan getCall, 4)
	h.caller.getGate = make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()

	first := h.goGet(ctx, clientX, "echo", GetOptions{})
	receive(t, h.caller.getStarted)
	require.Equal(t, 1, h.net.Stats().PendingStarts)

	// The lock is free while the back-request is in flight.
	assert.Len(t, h.net.Agents(), 1)
	second := h.goGet(ctx, clientY, "echo", GetOptions{})
	require.Eventually(t, func() bool { return h.net.Stats().Clients == 1 && len(h.net.clientIDs()) == 2 }, waitLimit, time.Millisecond,
		"the second get has reached the network")

	close(h.caller.getGate)
	r1, r2 := receive(t, first), receive(t, second)
	require.NoError(t, r1.err)
	require.NoError(t, r2.err)
	assert.Equal(t, r1.uuid, r2.uuid)
	assert.Equal(t, r1.ref, r2.ref)
	assert.Len(t, h.caller.getCalls(), 1, "one back-request for both")

	st := h.net.Stats()
	assert.Equal(t, 2, st.References)
	assert.Equal(t, 0, st.PendingStarts)
	h.net.Release(clientX, r1.uuid)
	assert.Equal(t, 0, h.net.Stats().Orphans, "the joiner holds a reference of its own")
}

// clientIDs lists the clients the network has a record of (test helper).
func (n *Network) clientIDs() []ClientID {
	n.mu.RLock()
	defer n.mu.RUnlock()
	ids := make([]ClientID, 0, len(n.clients))
	for id := range n.clients {
		ids = append(ids, id)
	}
	return ids
}

func TestGetJoinsPendingStartByUUIDAndByLabels(t *testing.T) {
	h := newHarness(t)
	h.register(clientA, agentA, []string{"echo", "kv"})
	h.caller.getStarted = make(chan getCall, 8)
	h.caller.getGate = make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()

	byUUID := h.goGet(ctx, clientX, "echo", GetOptions{UUID: "fixed"})
	receive(t, h.caller.getStarted)
	labelled := h.goGet(ctx, clientX, "kv", GetOptions{Labels: []string{"a", "b"}})
	receive(t, h.caller.getStarted)

	// One client each, so that the test can see when each get has made its
	// decision (its client record appears under the same lock).
	sameUUID := h.goGet(ctx, "client-y1", "echo", GetOptions{UUID: "fixed"})
	subset := h.goGet(ctx, "client-y2", "kv", GetOptions{Labels: []string{"b"}})
	other := h.goGet(ctx, "client-y3", "kv", GetOptions{Labels: []string{"c"}})
	call := receive(t, h.caller.getStarted)
	assert.Equal(t, []string{"c"}, call.Opts.Labels, "labels not covered by a pending start need a start of their own")
	require.Eventually(t, func() bool { return len(h.net.clientIDs()) == 4 }, waitLimit, time.Millisecond)

	close(h.caller.getGate)
	rUUID, rSame := receive(t, byUUID), receive(t, sameUUID)
	rLab, rSub, rOther := receive(t, labelled), receive(t, subset), receive(t, other)
	for _, r := range []getResult{rUUID, rSame, rLab, rSub, rOther} {
		require.NoError(t, r.err)
	}
	assert.Equal(t, ContainerUUID("fixed"), rSame.uuid)
	assert.Equal(t, rLab.uuid, rSub.uuid)
	assert.NotEqual(t, rLab.uuid, rOther.uuid)
	assert.Len(t, h.caller.getCalls(), 3)
}

func TestGetRoundRobinAcrossAgentsOfferingTheKind(t *testing.T) {
	h := newHarness(t)
	h.register(clientA, agentA, []string{"echo"})
	h.register(clientB, agentB, []string{"echo", "kv"})
	h.register(clientB, "agent-kv", []string{"kv"})

	for i := 0; i < 4; i++ {
		h.get(clientX, "echo", GetOptions{})
	}
	h.get(clientX, "kv", GetOptions{})
	h.get(clientX, "kv", GetOptions{})
	var picked []AgentID
	for _, c := range h.caller.getCalls() {
		picked = append(picked, c.To.Agent)
	}
	assert.Equal(t, []AgentID{agentA, agentB, agentA, agentB, agentB, "agent-kv"}, picked)
}

func TestGetWithoutAgentsForTheKind(t *testing.T) {
	h := newHarness(t)
	h.register(clientA, agentA, []string{"echo"})
	_, _, err := h.net.Get(context.Background(), clientX, "kv", GetOptions{})
	require.Error(t, err)
	assert.Equal(t, "No suitable agents found for container kv", err.Error())
	assert.ErrorIs(t, err, ErrNoSuitableAgents)
	assert.Empty(t, h.caller.getCalls())
}

func TestFailedBackRequestLeavesNoStuckPendingStart(t *testing.T) {
	h := newHarness(t)
	h.register(clientA, agentA, []string{"echo"})
	h.caller.getStarted = make(chan getCall, 4)
	h.caller.getGate = make(chan struct{})
	h.caller.getFn = func(context.Context, AgentTarget, string, GetOptions) (ContainerUUID, string, error) {
		return "", "", errors.New("boom")
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()

	first := h.goGet(ctx, clientX, "echo", GetOptions{})
	receive(t, h.caller.getStarted)
	joiner := h.goGet(ctx, clientY, "echo", GetOptions{})
	require.Eventually(t, func() bool { return len(h.net.clientIDs()) == 2 }, waitLimit, time.Millisecond)
	close(h.caller.getGate)

	r1 := receive(t, first)
	require.Error(t, r1.err)
	assert.Equal(t, "Failed to get endpoint for container echo: boom", r1.err.Error())
	r2 := receive(t, joiner)
	require.Error(t, r2.err)
	assert.Contains(t, r2.err.Error(), "boom", "the joiner learns why")
	assert.Equal(t, Stats{Clients: 1, Agents: 1, Kinds: 1}, h.net.Stats())

	h.caller.mu.Lock()
	h.caller.getFn = nil
	h.caller.mu.Unlock()
	h.get(clientX, "echo", GetOptions{})
	assert.Len(t, h.caller.getCalls(), 2, "the next get asks again instead of joining a dead start")
}

func TestJoinerCancelledWhileWaitingTakesNoReference(t *testing.T) {
	h := newHarness(t)
	h.register(clientA, agentA, []string{"echo"})
	h.caller.getStarted = make(chan getCall, 4)
	h.caller.getGate = make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()

	first := h.goGet(ctx, clientX, "echo", GetOptions{})
	receive(t, h.caller.getStarted)
	joinCtx, joinCancel := context.WithCancel(ctx)
	joiner := h.goGet(joinCtx, clientY, "echo", GetOptions{})
	require.Eventually(t, func() bool { return len(h.net.clientIDs()) == 2 }, waitLimit, time.Millisecond)
	joinCancel()
	r2 := receive(t, joiner)
	require.ErrorIs(t, r2.err, context.Canceled)

	close(h.caller.getGate)
	require.NoError(t, receive(t, first).err)
	assert.Equal(t, 1, h.net.Stats().References)
}

func TestJoinerStartsOverWhenTheInitiatorIsCancelled(t *testing.T) {
	h := newHarness(t)
	h.register(clientA, agentA, []string{"echo"})
	h.caller.getStarted = make(chan getCall, 4)
	h.caller.getGate = make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()

	initCtx, initCancel := context.WithCancel(ctx)
	first := h.goGet(initCtx, clientX, "echo", GetOptions{})
	receive(t, h.caller.getStarted)
	joiner := h.goGet(ctx, clientY, "echo", GetOptions{})
	require.Eventually(t, func() bool { return len(h.net.clientIDs()) == 2 }, waitLimit, time.Millisecond)
	initCancel()
	require.ErrorIs(t, receive(t, first).err, context.Canceled)

	receive(t, h.caller.getStarted) // the joiner's own start
	close(h.caller.getGate)
	r := receive(t, joiner)
	require.NoError(t, r.err)
	assert.Len(t, h.caller.getCalls(), 2)
	assert.Equal(t, 1, h.net.Stats().References)
}

func TestClientGoneDuringPendingStartGetsNoReference(t *testing.T) {
	h := newHarness(t)
	h.register(clientA, agentA, []string{"echo"})
	h.caller.getStarted = make(chan getCall, 4)
	h.caller.getGate = make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()

	first := h.goGet(ctx, clientX, "echo", GetOptions{})
	receive(t, h.caller.getStarted)
	h.net.ClientGone(clientX)
	close(h.caller.getGate)
	require.NoError(t, receive(t, first).err)

	st := h.net.Stats()
	assert.Equal(t, 0, st.References)
	assert.Equal(t, 1, st.Orphans, "nobody references the new container")
}

func TestAgentRemovedDuringPendingStart(t *testing.T) {
	h := newHarness(t)
	h.register(clientA, agentA, []string{"echo"})
	h.caller.getStarted = make(chan getCall, 4)
	h.caller.getGate = make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()

	first := h.goGet(ctx, clientX, "echo", GetOptions{})
	receive(t, h.caller.getStarted)
	require.NoError(t, h.net.UnregisterAgent(clientA, agentA))
	assert.Equal(t, 0, h.net.Stats().PendingStarts, "a start on a removed agent cannot be joined")
	close(h.caller.getGate)

	r := receive(t, first)
	require.Error(t, r.err)
	assert.Contains(t, r.err.Error(), "agent-a went away")
	assert.Empty(t, h.net.Containers(""))
}

func TestGetAnsweredWithAnotherAgentsContainer(t *testing.T) {
	h := newHarness(t)
	h.register(clientA, agentA, nil, record(agentA, "shared", "svc"))
	h.register(clientB, agentB, []string{"svc"})
	h.caller.getFn = func(context.Context, AgentTarget, string, GetOptions) (ContainerUUID, string, error) {
		return "shared", "agent-b-ref", nil
	}

	uuid, ref := h.get(clientX, "svc", GetOptions{})
	assert.Equal(t, ContainerUUID("shared"), uuid)
	assert.Equal(t, record(agentA, "shared", "svc").Endpoint, ref, "first registration wins")
	assert.Equal(t, []termCall{{To: AgentTarget{Client: clientB, Agent: agentB}, UUID: "shared"}}, h.caller.termCalls())
}

func TestGetAnsweredWithAnExistingContainerOfTheSameAgent(t *testing.T) {
	h := newHarness(t)
	h.register(clientA, agentA, []string{"echo"}, record(agentA, "c1", "echo"))
	h.tick()
	h.caller.getFn = func(context.Context, AgentTarget, string, GetOptions) (ContainerUUID, string, error) {
		return "c1", "new-ref", nil
	}
	uuid, ref := h.get(clientX, "echo", GetOptions{})
	assert.Equal(t, ContainerUUID("c1"), uuid)
	assert.Equal(t, "new-ref", ref)
	_, containers := eventKinds(h.tick())
	assert.Equal(t, []string{"c1:updated"}, containers)
	assert.Empty(t, h.caller.termCalls())
}

func TestReleaseOrphansAndTerminatesAfterUnusedTimeout(t *testing.T) {
	h := newHarness(t)
	h.register(clientA, agentA, []string{"echo"})
	uuid, _ := h.get(clientX, "echo", GetOptions{})
	h.tick()

	h.net.Release(clientX, uuid)
	h.net.Release(clientX, uuid) // twice is harmless
	assert.Equal(t, Stats{Clients: 1, Agents: 1, Kinds: 1, Containers: 1, Orphans: 1}, h.net.Stats())

	h.clock.Advance(5 * time.Second)
	h.net.ClientSeen(clientA)
	assert.True(t, h.tick().Empty(), "not older than the unused timeout yet")
	assert.Empty(t, h.caller.termCalls())

	h.clock.Advance(time.Millisecond)
	ev := h.tick()
	assert.Equal(t, []termCall{{To: AgentTarget{Client: clientA, Agent: agentA}, UUID: uuid}}, h.caller.termCalls())
	_, containers := eventKinds(ev)
	assert.Equal(t, []string{string(uuid) + ":removed"}, containers)
	assert.Empty(t, h.net.Containers(""))
}

func TestTerminateErrorIsLoggedNotFatal(t *testing.T) {
	h := newHarness(t)
	h.caller.termErr = errors.New("agent gone")
	h.register(clientA, agentA, []string{"echo"})
	uuid, _ := h.get(clientX, "echo", GetOptions{})
	h.net.Release(clientX, uuid)
	h.clock.Advance(6 * time.Second)
	h.net.ClientSeen(clientA)
	h.tick()
	assert.Len(t, h.caller.termCalls(), 1)
	assert.Empty(t, h.net.Containers(""), "the container is forgotten anyway")
	require.NotNil(t, h.logs.LastEntry())
	assert.Equal(t, "terminate unused container", h.logs.LastEntry().Message)
}

func TestNewReferenceRescuesOrphan(t *testing.T) {
	h := newHarness(t)
	h.register(clientA, agentA, []string{"echo"})
	uuid, _ := h.get(clientX, "echo", GetOptions{})
	h.net.Release(clientX, uuid)
	h.clock.Advance(4 * time.Second)
	h.get(clientY, "echo", GetOptions{UUID: uuid})
	assert.Equal(t, 0, h.net.Stats().Orphans)

	h.clock.Advance(10 * time.Second)
	h.net.ClientSeen(clientA)
	h.tick()
	assert.Empty(t, h.caller.termCalls())
	assert.Len(t, h.net.Containers(""), 1)

	// The orphan clock restarts from the next release.
	h.net.Release(clientY, uuid)
	h.clock.Advance(3 * time.Second)
	h.net.ClientSeen(clientA)
	h.tick()
	assert.Empty(t, h.caller.termCalls())
}

func TestReleaseByNonHolderDoesNotOrphan(t *testing.T) {
	h := newHarness(t)
	h.register(clientA, agentA, nil, record(agentA, "pinned", "svc"))
	h.get(clientX, "svc", GetOptions{UUID: "pinned"})
	h.net.Release(clientY, "pinned")
	h.net.Release(clientY, "unknown")
	assert.Equal(t, 0, h.net.Stats().Orphans)
	assert.Equal(t, 1, h.net.Stats().References)
}

func TestDeadAgentIsRemovedWithItsContainers(t *testing.T) {
	h := newHarness(t)
	h.register(clientA, agentA, []string{"echo"}, record(agentA, "c1", "echo"))
	h.register(clientB, agentB, []string{"echo"})
	h.get(clientX, "echo", GetOptions{UUID: "c1"})
	h.tick()

	// Pings from the hosting client keep an agent alive.
	for i := 0; i < 5; i++ {
		h.clock.Advance(2 * time.Second)
		h.net.ClientSeen(clientA)
		h.net.ClientSeen(clientB)
		assert.True(t, h.tick().Empty())
	}

	h.clock.Advance(3 * time.Second)
	h.net.ClientSeen(clientB)
	assert.True(t, h.tick().Empty(), "exactly the alive timeout is not too long yet")
	h.clock.Advance(time.Millisecond)
	ev := h.tick()
	agents, containers := eventKinds(ev)
	assert.Equal(t, []string{"agent-a:removed"}, agents)
	assert.Equal(t, []string{"c1:removed"}, containers)
	assert.Equal(t, []string{"echo"}, ev.Agents[0].Kinds)

	st := h.net.Stats()
	assert.Equal(t, 1, st.Agents)
	assert.Equal(t, 0, st.Containers)
	assert.Equal(t, 0, st.References, "references to removed containers are dropped")
	assert.Empty(t, h.caller.termCalls(), "a dead agent is not asked to terminate anything")

	// Gets for the kind go to the survivor now.
	h.get(clientX, "echo", GetOptions{})
	assert.Equal(t, agentB, h.caller.getCalls()[0].To.Agent)
}

func TestClientGoneReleasesItsReferences(t *testing.T) {
	h := newHarness(t)
	h.register(clientA, agentA, []string{"echo"})
	u1, _ := h.get(clientX, "echo", GetOptions{})
	u2, _ := h.get(clientX, "echo", GetOptions{UUID: "second"})
	h.get(clientY, "echo", GetOptions{UUID: u2})

	h.net.ClientGone(clientX)
	h.net.ClientGone("never-seen")
	st := h.net.Stats()
	assert.Equal(t, 1, st.References)
	assert.Equal(t, 1, st.Orphans)

	h.clock.Advance(6 * time.Second)
	h.net.ClientSeen(clientA)
	h.tick()
	assert.Equal(t, []termCall{{To: AgentTarget{Client: clientA, Agent: agentA}, UUID: u1}}, h.caller.termCalls())
}

func TestClientComingBackKeepsItsAgentsAlive(t *testing.T) {
	h := newHarness(t)
	h.register(clientA, agentA, []string{"echo"})
	h.tick()
	h.net.ClientGone(clientA)
	h.clock.Advance(2 * time.Second)
	h.net.ClientSeen(clientA)
	h.clock.Advance(2 * time.Second)
	assert.True(t, h.tick().Empty())
	assert.Len(t, h.net.Agents(), 1)
}

func TestClientAliveTimeoutExtendsItsAgents(t *testing.T) {
	h := newHarness(t)
	h.net.SetClientAliveTimeout(clientA, time.Hour)
	h.register(clientA, agentA, []string{"echo"})
	h.register(clientB, agentB, []string{"echo"})
	h.clock.Advance(10 * time.Minute)
	agents, _ := eventKinds(h.tick())
	assert.Equal(t, []string{"agent-a:added", "agent-b:removed"}, agents)
	assert.Len(t, h.net.Agents(), 1)

	h.net.ClientGone(clientA)
	h.tick()
	assert.Empty(t, h.net.Agents(), "a gone client's timeout no longer applies")
}

func TestUnregisterAgent(t *testing.T) {
	h := newHarness(t)
	h.register(clientA, agentA, []string{"echo"}, record(agentA, "c1", "echo"))
	h.tick()

	require.NoError(t, h.net.UnregisterAgent(clientB, agentA))
	assert.Len(t, h.net.Agents(), 1, "only the hosting client unregisters an agent")
	require.ErrorIs(t, h.net.UnregisterAgent(clientA, ""), ErrInvalidParams)
	require.NoError(t, h.net.UnregisterAgent(clientA, "unknown"))

	require.NoError(t, h.net.UnregisterAgent(clientA, agentA))
	assert.Empty(t, h.net.Agents())
	assert.Empty(t, h.net.Kinds())
	agents, containers := eventKinds(h.tick())
	assert.Equal(t, []string{"agent-a:removed"}, agents)
	assert.Equal(t, []string{"c1:removed"}, containers)
}

func TestAgentMovingToAnotherClient(t *testing.T) {
	h := newHarness(t)
	h.register(clientA, agentA, []string{"echo"})
	h.register(clientB, agentA, []string{"echo"})

	h.clock.Advance(2 * time.Second)
	h.net.ClientSeen(clientA) // the old session no longer counts
	h.clock.Advance(2 * time.Second)
	h.tick()
	assert.Empty(t, h.net.Agents())

	h.register(clientB, agentA, []string{"echo"})
	require.NoError(t, h.net.UnregisterAgent(clientA, agentA))
	assert.Len(t, h.net.Agents(), 1, "a late au from the old session is ignored")
	h.get(clientX, "echo", GetOptions{})
	assert.Equal(t, clientB, h.caller.getCalls()[0].To.Client, "back-requests go to the new session")
}

func TestRoute(t *testing.T) {
	h := newHarness(t)
	h.register(clientA, agentA, []string{"echo"}, record(agentA, "c1", "echo"))
	out, err := h.net.Route(context.Background(), "c1", "echo", json.RawMessage(`{"hello":"world"}`))
	require.NoError(t, err)
	assert.JSONEq(t, `{"hello":"world"}`, string(out))
	require.Len(t, h.caller.reqs, 1)
	assert.Equal(t, reqCall{To: AgentTarget{Client: clientA, Agent: agentA}, UUID: "c1", Op: "echo", Data: json.RawMessage(`{"hello":"world"}`)}, h.caller.reqs[0])

	_, err = h.net.Route(context.Background(), "no-such", "op", nil)
	require.Error(t, err)
	assert.Equal(t, "Container no-such not found", err.Error())
	assert.ErrorIs(t, err, ErrContainerNotFound)

	agentErr := errors.New("boom")
	h.caller.reqFn = func(AgentTarget, ContainerUUID, string, json.RawMessage) (json.RawMessage, error) {
		return nil, agentErr
	}
	_, err = h.net.Route(context.Background(), "c1", "fail", nil)
	assert.Same(t, agentErr, err, "the agent's error is relayed as is")
}

func TestListings(t *testing.T) {
	h := newHarness(t)
	assert.Empty(t, h.net.Agents())
	assert.Empty(t, h.net.Kinds())
	assert.NotNil(t, h.net.Kinds())
	assert.Empty(t, h.net.Containers(""))
	assert.NotNil(t, h.net.Containers(""), "cl answers [] rather than null")

	h.register(clientA, "agent-2", []string{"kv", "echo"}, record("agent-2", "z", "kv"))
	h.register(clientB, "agent-1", []string{"echo"}, record("agent-1", "a", "echo"), record("agent-1", "m", "echo"))
	_, err := h.net.RegisterAgent(clientB, AgentRegistration{UUID: "agent-3"})
	require.NoError(t, err)

	assert.Equal(t, []AgentInfo{
		{AgentID: "agent-2", Endpoint: agentRefFor("agent-2").String(), Kinds: []string{"kv", "echo"}, Containers: 1},
		{AgentID: "agent-1", Endpoint: agentRefFor("agent-1").String(), Kinds: []string{"echo"}, Containers: 2},
		{AgentID: "agent-3", Kinds: []string{}},
	}, h.net.Agents(), "al lists in registration order")
	assert.Equal(t, []string{"echo", "kv"}, h.net.Kinds(), "ak: unique and sorted")

	var all, echo []ContainerUUID
	for _, r := range h.net.Containers("") {
		all = append(all, r.UUID)
	}
	for _, r := range h.net.Containers("echo") {
		echo = append(echo, r.UUID)
	}
	assert.Equal(t, []ContainerUUID{"a", "m", "z"}, all, "cl without a kind lists every container")
	assert.Equal(t, []ContainerUUID{"a", "m"}, echo)
	assert.Empty(t, h.net.Containers("nothing"))

	// A re-registration that changes a container's kind moves it.
	h.register(clientA, "agent-2", []string{"kv", "echo"}, record("agent-2", "z", "echo"))
	assert.Len(t, h.net.Containers("echo"), 3)
	assert.Empty(t, h.net.Containers("kv"))

	st := h.net.Stats()
	assert.Equal(t, Stats{Clients: 2, Agents: 3, Kinds: 2, Containers: 3}, st)
}

func TestNewWithoutCallerFailsBackRequestsCleanly(t *testing.T) {
	n := New(Options{Logger: quietLogger()})
	_, err := n.RegisterAgent(clientA, AgentRegistration{UUID: agentA, Kinds: []string{"echo"}, Containers: []ContainerRecord{{UUID: "c1"}}})
	require.NoError(t, err)
	_, _, err = n.Get(context.Background(), clientX, "echo", GetOptions{})
	assert.ErrorIs(t, err, ErrNoCaller)
	_, err = n.Route(context.Background(), "c1", "op", nil)
	assert.ErrorIs(t, err, ErrNoCaller)
}

func TestGetRejectsInvalidExtra(t *testing.T) {
	h := newHarness(t)
	h.register(clientA, agentA, []string{"echo"})
	_, _, err := h.net.Get(context.Background(), clientX, "echo", GetOptions{Extra: json.RawMessage(`{"a":`)})
	require.ErrorIs(t, err, ErrInvalidParams)
	assert.Empty(t, h.caller.getCalls())
}

func TestGetHonoursCancelledContext(t *testing.T) {
	h := newHarness(t)
	h.register(clientA, agentA, []string{"echo"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := h.net.Get(ctx, clientX, "echo", GetOptions{})
	assert.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, h.caller.getCalls())
}

func TestTickStopsTerminatingWhenCancelled(t *testing.T) {
	h := newHarness(t)
	h.register(clientA, agentA, []string{"echo"})
	u, _ := h.get(clientX, "echo", GetOptions{})
	h.net.Release(clientX, u)
	h.clock.Advance(6 * time.Second)
	h.net.ClientSeen(clientA)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ev := h.net.Tick(ctx)
	_, containers := eventKinds(ev)
	assert.Equal(t, []string{string(u) + ":removed"}, containers, "the state is updated regardless")
	assert.Empty(t, h.caller.termCalls())
}

func TestRegistrationThatArrivedBeforeAGetAnswerKeepsItsContainer(t *testing.T) {
	h := newHarness(t)
	var arrivals atomic.Uint64
	h.net = New(Options{Clock: h.clock, Caller: h.caller, Logger: quietLogger(), Arrivals: arrivals.Load})
	h.register(clientA, agentA, []string{"echo"})

	// The agent sends ar (arrival 5), then answers a gg (arrival 6); the
	// server handles the gg answer first.
	arrivals.Store(6)
	uuid, _ := h.get(clientX, "echo", GetOptions{})
	stale := AgentRegistration{UUID: agentA, Kinds: []string{"echo"}}
	_, err := h.net.RegisterAgentArrived(clientA, stale, 5)
	require.NoError(t, err)
	_, ok := h.net.Container(uuid)
	assert.True(t, ok, "a registration older than the container does not drop it")

	// A registration that arrived after the container and leaves it out
	// drops it, as before.
	arrivals.Store(9)
	_, err = h.net.RegisterAgentArrived(clientA, stale, 8)
	require.NoError(t, err)
	_, ok = h.net.Container(uuid)
	assert.False(t, ok)
}
