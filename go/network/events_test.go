package network

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func cev(uuid ContainerUUID, endpoint string, kind EventKind) Event {
	return Event{Containers: []ContainerEvent{{Container: ContainerRecord{UUID: uuid, Endpoint: endpoint}, Event: kind}}}
}

func aev(id AgentID, kinds []string, kind EventKind) Event {
	return Event{Agents: []AgentEvent{{ID: id, Kinds: kinds, Event: kind}}}
}

func TestMergeRemovalWinsOverLaterUpdates(t *testing.T) {
	e := MergeEvents(
		cev("c1", "old", EventUpdated),
		cev("c1", "gone", EventRemoved),
		cev("c1", "later", EventUpdated),
		cev("c1", "again", EventRemoved),
		aev("a1", []string{"echo"}, EventRemoved),
		aev("a1", []string{"kv"}, EventUpdated),
	)
	assert.Equal(t, []ContainerEvent{{Container: ContainerRecord{UUID: "c1", Endpoint: "gone"}, Event: EventRemoved}}, e.Containers)
	assert.Equal(t, []AgentEvent{{ID: "a1", Kinds: []string{"echo"}, Event: EventRemoved}}, e.Agents)
}

func TestMergeAdditionSwallowsUpdatesKeepingNewestData(t *testing.T) {
	e := MergeEvents(
		cev("c1", "first", EventAdded),
		cev("c1", "second", EventUpdated),
		aev("a1", []string{"echo"}, EventAdded),
		aev("a1", []string{"echo", "kv"}, EventUpdated),
	)
	assert.Equal(t, []ContainerEvent{{Container: ContainerRecord{UUID: "c1", Endpoint: "second"}, Event: EventAdded}}, e.Containers)
	assert.Equal(t, []AgentEvent{{ID: "a1", Kinds: []string{"echo", "kv"}, Event: EventAdded}}, e.Agents)
}

func TestMergeAdditionThenRemovalIsARemoval(t *testing.T) {
	// A getter may hold a reference from its gg answer before any event
	// reached it: the removal must reach it.
	e := MergeEvents(cev("c1", "x", EventAdded), cev("c1", "x", EventRemoved))
	assert.Equal(t, []ContainerEvent{{Container: ContainerRecord{UUID: "c1", Endpoint: "x"}, Event: EventRemoved}}, e.Containers)
}

func TestMergeRemovalThenAdditionIsNotLost(t *testing.T) {
	e := MergeEvents(
		cev("c1", "on-a", EventRemoved),
		cev("c1", "on-b", EventAdded),
		aev("a1", []string{"echo"}, EventRemoved),
		aev("a1", []string{"echo"}, EventAdded),
	)
	assert.Equal(t, []ContainerEvent{{Container: ContainerRecord{UUID: "c1", Endpoint: "on-b"}, Event: EventUpdated}}, e.Containers,
		"holders follow an update to the new endpoint")
	assert.Equal(t, []AgentEvent{{ID: "a1", Kinds: []string{"echo"}, Event: EventAdded}}, e.Agents,
		"waiting getters retry on an added agent")
}

func TestMergeKeepsFirstOccurrenceOrder(t *testing.T) {
	e := MergeEvents(
		cev("b", "", EventAdded),
		cev("a", "", EventAdded),
		cev("b", "", EventRemoved),
		cev("c", "", EventUpdated),
	)
	_, containers := eventKinds(e)
	assert.Equal(t, []string{"b:removed", "a:added", "c:updated"}, containers)
	assert.True(t, MergeEvents().Empty())
	assert.False(t, e.Empty())
}
