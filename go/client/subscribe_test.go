package client_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/client/clienttest"
	"github.com/huly-net/huly-net/go/network"
)

// A Go client receives events by interest: it announced it, the server
// too.
func TestClientReceivesByInterest(t *testing.T) {
	s := clienttest.StartServer(t)
	c := clienttest.Dial(t, s.Addr())
	require.NoError(t, c.WaitConnected(clienttest.Ctx(t)))
	assert.True(t, c.ServerHello().Has(backrpc.CapInterest))
	info, ok := s.Client(c.ID())
	require.True(t, ok)
	assert.True(t, info.Hello.Has(backrpc.CapInterest))
	assert.True(t, s.Network().ReceivesByInterest(network.ClientID(c.ID())))

	plain := clienttest.Dial(t, s.Addr(), client.WithCapabilities())
	require.NoError(t, plain.WaitConnected(clienttest.Ctx(t)))
	assert.False(t, s.Network().ReceivesByInterest(network.ClientID(plain.ID())), "announcing nothing: everything, as a TS 0.7 client")
}

// A get waiting for a kind nobody offers is woken by the agent's arrival:
// with retry waits of an hour, only the event can end it in time.
func TestPendingGetWokenByAnAgentArriving(t *testing.T) {
	s := clienttest.StartServer(t)
	c := clienttest.Dial(t, s.Addr(), client.WithRetryTick(time.Hour), client.WithMaxGetWait(time.Hour))
	ctx := clienttest.Ctx(t)
	done := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx, "late", client.GetOptions{})
		done <- err
	}()
	require.Eventually(t, func() bool { return s.Stats().Interest.Waits > 0 }, clienttest.WaitFor, 10*time.Millisecond,
		"the failed get is remembered waiting")
	clienttest.StartAgent(t, s.Addr(), clienttest.AgentSetup{Kinds: map[string]agent.Factory{"late": agent.NewEcho}})
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-ctx.Done():
		t.Fatal("the get was not woken by the agent's arrival")
	}
}

// A client without a reference gets no event of a container another
// client holds; Subscribe and Events bring them.
func TestNoReferenceNoEventsUntilSubscribed(t *testing.T) {
	s := clienttest.StartServer(t)
	clienttest.StartAgent(t, s.Addr(), clienttest.AgentSetup{Kinds: clienttest.EchoKinds()})
	holder := clienttest.Dial(t, s.Addr())
	other := clienttest.Dial(t, s.Addr())
	byUUID := clienttest.Dial(t, s.Addr())
	all := clienttest.Dial(t, s.Addr())
	ctx := clienttest.Ctx(t)

	type box struct{ ch chan network.ContainerEvent }
	watchFor := func(c *client.Client) box {
		b := box{make(chan network.ContainerEvent, 64)}
		c.OnEvent(func(ev network.Event) {
			for _, ce := range ev.Containers {
				b.ch <- ce
			}
		})
		return b
	}
	hb, ob, ub := watchFor(holder), watchFor(other), watchFor(byUUID)
	defer byUUID.Subscribe(client.Subscription{UUIDs: []network.ContainerUUID{"held-1"}})()
	require.NoError(t, byUUID.WaitSubscribed(ctx))
	evs := all.Events()
	require.NoError(t, all.WaitSubscribed(ctx))

	_, err := holder.Get(ctx, "echo", client.GetOptions{UUID: "held-1"})
	require.NoError(t, err)
	_, err = holder.Get(ctx, "echo", client.GetOptions{UUID: "held-2"})
	require.NoError(t, err)
	got := func(ch chan network.ContainerEvent, uuid network.ContainerUUID) {
		t.Helper()
		for {
			select {
			case ce := <-ch:
				if ce.Container.UUID == uuid {
					return
				}
			case <-ctx.Done():
				t.Fatalf("no event of %s", uuid)
			}
		}
	}
	got(hb.ch, "held-2")
	got(ub.ch, "held-1")
	for seenBoth := map[network.ContainerUUID]bool{}; !seenBoth["held-1"] || !seenBoth["held-2"]; {
		select {
		case ev := <-evs:
			for _, ce := range ev.Containers {
				seenBoth[ce.Container.UUID] = true
			}
		case <-ctx.Done():
			t.Fatal("Events did not see every container")
		}
	}
	// The holder's and the subscriber's events arrived; the other
	// client's would have come in the same batches.
	assert.Empty(t, ob.ch, "a client with no reference gets none of its events")
	for len(ub.ch) > 0 {
		assert.Equal(t, network.ContainerUUID("held-1"), (<-ub.ch).Container.UUID)
	}
}

// FilterEvent keeps what a subscription names.
func TestFilterEvent(t *testing.T) {
	ev := network.Event{
		Agents: []network.AgentEvent{{ID: "a", Kinds: []string{"k1"}}, {ID: "b", Kinds: []string{"k2"}}},
		Containers: []network.ContainerEvent{
			{Container: network.ContainerRecord{UUID: "u1", Kind: "k1"}},
			{Container: network.ContainerRecord{UUID: "u2", Kind: "k2"}},
			{Container: network.ContainerRecord{UUID: "u3", Kind: "k3"}},
		},
	}
	assert.Equal(t, ev, client.FilterEvent(client.Subscription{All: true}, ev))
	f := client.FilterEvent(client.Subscription{Kinds: []string{"k1"}, UUIDs: []network.ContainerUUID{"u3"}}, ev)
	require.Len(t, f.Agents, 1)
	assert.Equal(t, network.AgentID("a"), f.Agents[0].ID)
	require.Len(t, f.Containers, 2)
	assert.Equal(t, network.ContainerUUID("u1"), f.Containers[0].Container.UUID)
	assert.Equal(t, network.ContainerUUID("u3"), f.Containers[1].Container.UUID)
	assert.True(t, client.FilterEvent(client.Subscription{}, ev).Empty())
}
