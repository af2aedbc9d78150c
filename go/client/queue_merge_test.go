package client

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/network"
)

// Events that a slow handler has not taken yet are merged: the queue
// stays short however many arrive, and the handler then sees the latest
// state of each container.
func TestSlowEventHandlerSeesMergedEvents(t *testing.T) {
	q := newQueue[network.Event](8)
	q.merge, q.mergeAt = mergeQueued, mergeEventsAt
	for i := range 1000 {
		q.push(network.Event{Containers: []network.ContainerEvent{{
			Container: network.ContainerRecord{UUID: network.ContainerUUID("u" + strconv.Itoa(i%3)), Endpoint: strconv.Itoa(i)},
			Event:     network.EventUpdated,
		}}})
		q.mu.Lock()
		n := len(q.items)
		q.mu.Unlock()
		require.Less(t, n, mergeEventsAt, "bounded while nobody takes them")
	}
	got := map[network.ContainerUUID]string{}
	calls, closed := 0, false
	final := make(chan struct{})
	q.subscribe(func(ev network.Event) {
		calls++
		for _, ce := range ev.Containers {
			got[ce.Container.UUID] = ce.Container.Endpoint
		}
		if got["u0"] == "999" && !closed {
			closed = true
			close(final)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.run(ctx); close(done) }()
	q.push(network.Event{}) // a signal for run: the pushes above were before it
	select {
	case <-final:
	case <-time.After(10 * time.Second):
		t.Fatal("the merged events were not delivered")
	}
	cancel()
	<-done
	assert.Equal(t, map[network.ContainerUUID]string{"u0": "999", "u1": "997", "u2": "998"}, got)
	assert.Less(t, calls, 1000/mergeEventsAt+2, "merged, not one call per event")
}
