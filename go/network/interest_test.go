package network

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func entriesFor(d Delivery, id ClientID) []string {
	var out []string
	for _, i := range d.Containers[id] {
		ce := d.Event.Containers[i]
		out = append(out, string(ce.Container.UUID)+":"+ce.Event.String())
	}
	return out
}

// A holder gets its container's removal (remembered as it is removed); a
// standby's host gets the removal of the container it stands by for; a
// client that does not receive by interest is in no list (it gets all).
func TestDeliveryHoldersStandbysAndRemovals(t *testing.T) {
	h := newHarness(t)
	const holder, standbyHost, legacy ClientID = "holder", "standby-host", "legacy"
	for _, id := range []ClientID{holder, standbyHost, clientA} {
		h.net.SetInterest(id, true)
	}
	h.register(clientA, agentA, []string{"leader"}, record(agentA, "l1", "leader"), record(agentA, "other", "leader"))
	h.register(standbyHost, agentB, []string{"leader"}, record(agentB, "l1", "leader"))
	_, _, err := h.net.Get(context.Background(), holder, "leader", GetOptions{UUID: "l1"})
	require.NoError(t, err)
	_, _, err = h.net.Get(context.Background(), legacy, "leader", GetOptions{UUID: "other"})
	require.NoError(t, err)
	d, _ := h.net.SweepDelivery()
	assert.Equal(t, []string{"l1:added"}, entriesFor(d, holder))
	assert.Equal(t, []string{"l1:added"}, entriesFor(d, standbyHost), "it stands by for l1")
	assert.Equal(t, []string{"l1:added", "other:added"}, entriesFor(d, clientA), "the owner's host")
	assert.NotContains(t, d.Containers, legacy)

	// The owner goes: l1 and other are removed.
	require.NoError(t, h.net.UnregisterAgent(clientA, agentA))
	d, _ = h.net.SweepDelivery()
	assert.Equal(t, []string{"l1:removed"}, entriesFor(d, holder), "remembered at the removal")
	assert.Equal(t, []string{"l1:removed"}, entriesFor(d, standbyHost))
	assert.Len(t, d.Event.Containers, 2, "the whole batch for the others")
}

// Subscriptions and waits are indexed; waits end with a successful get,
// expire, and are bounded (the oldest goes).
func TestDeliverySubscriptionsAndWaits(t *testing.T) {
	h := newHarness(t)
	h.net.SetMaxSubscriptions(2)
	h.net.SetInterest("w", true)
	h.net.SetInterest("s", true)
	require.NoError(t, h.net.Watch("s", Subscription{Kinds: []string{"k2"}}))
	require.ErrorIs(t, h.net.Watch("s", Subscription{Kinds: []string{"a", "b", "c"}}), ErrTooManySubscriptions)
	h.net.GetFailed("w", "k1", "")
	h.net.GetFailed("w", "k3", "")
	h.clock.Advance(1)
	h.net.GetFailed("w", "k4", "u9") // over the limit: k1 and k3 go
	assert.Equal(t, 2, h.net.InterestStats().Waits)
	assert.Equal(t, uint64(2), h.net.InterestStats().WaitsDropped)

	h.register(clientA, agentA, []string{"k1", "k2", "k4"}, record(agentA, "x", "k1"), record(agentA, "y", "k2"), record(agentA, "z", "k4"))
	d, _ := h.net.SweepDelivery()
	assert.Equal(t, []string{"y:added"}, entriesFor(d, "s"))
	assert.Empty(t, entriesFor(d, "w"), "a kind's wait is served by agent entries, not the kind's containers")
	h.register(clientA, agentA, []string{"k1", "k2", "k4"}, record(agentA, "x", "k1"), record(agentA, "y", "k2"), record(agentA, "z", "k4"), record(agentA, "u9", "k4"))
	d, _ = h.net.SweepDelivery()
	assert.Equal(t, []string{"u9:added"}, entriesFor(d, "w"), "the uuid a get waits for")

	h.net.GetSucceeded("w", "k4", "u9")
	assert.Equal(t, 0, h.net.InterestStats().Waits)
	h.net.GetFailed("w", "k1", "")
	h.clock.Advance(2 * WaitTTL)
	h.register(clientA, agentA, []string{"k1", "k2", "k4"}, record(agentA, "x", "k1"))
	d, _ = h.net.SweepDelivery()
	assert.Empty(t, entriesFor(d, "w"), "the wait expired")

	h.net.DropInterest("s")
	assert.Equal(t, InterestStats{Clients: 1, WaitsDropped: 2}, h.net.InterestStats())
}
