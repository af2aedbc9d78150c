package client

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/network"
)

// Subscription says which network events a client asks for besides those
// that concern it: every event (All), or the containers of some kinds and
// uuids.
//
// A network server that delivers events by interest (it announces
// backrpc.CapInterest, as does this client unless WithCapabilities says
// otherwise) sends a client only the events of the containers it holds
// references to, of the agents it hosts and the containers they stand by
// for, of the kinds and uuids its gets wait for, every agent event, and
// what it subscribed to. A TS 0.7 server sends every client everything;
// FilterEvent keeps what a subscription asked for, with either server.
type Subscription = network.Subscription

// methodWatch replaces the client's subscription on a server that
// delivers by interest (server.MethodWatch).
const methodWatch = "go.watch"

// watchState is the client's subscriptions and the union last told to the
// server; guarded by Client.mu.
type watchState struct {
	subs map[int]Subscription
	next int
	all  bool          // Events made its All subscription
	kick chan struct{} // cap 1, made by Dial
	// gen counts changes of subs; applied is the gen the server knows
	// (or that needs no telling); appliedCh is closed when it moves.
	gen, applied uint64
	appliedCh    chan struct{}
}

// Subscribe asks the network for the events sub names, until the returned
// function is called. Subscriptions add up; the events arrive through
// OnEvent and Events, together with those that concern the client anyway
// (use FilterEvent to keep only what sub names). It does not wait for the
// server: the subscription is in effect shortly after, and again after
// every reconnection.
func (c *Client) Subscribe(sub Subscription) (unsubscribe func()) {
	sub = Subscription{All: sub.All, Kinds: slices.Clone(sub.Kinds), UUIDs: slices.Clone(sub.UUIDs)}
	c.mu.Lock()
	w := &c.watch
	if w.subs == nil {
		w.subs = map[int]Subscription{}
	}
	id := w.next
	w.next++
	w.subs[id] = sub
	w.gen++
	c.mu.Unlock()
	c.kickWatch()
	return func() {
		c.mu.Lock()
		_, had := w.subs[id]
		delete(w.subs, id)
		if had {
			w.gen++
		}
		c.mu.Unlock()
		if had {
			c.kickWatch()
		}
	}
}

// subscribeAll makes the All subscription behind Events, once.
func (c *Client) subscribeAll() {
	c.mu.Lock()
	done := c.watch.all
	c.watch.all = true
	c.mu.Unlock()
	if !done {
		c.Subscribe(Subscription{All: true})
	}
}

// WaitSubscribed waits until the server knows the subscriptions made so
// far (at once with a server that sends every event).
func (c *Client) WaitSubscribed(ctx context.Context) error {
	for {
		c.mu.Lock()
		w := &c.watch
		if w.applied >= w.gen {
			c.mu.Unlock()
			return nil
		}
		if w.appliedCh == nil {
			w.appliedCh = make(chan struct{})
		}
		ch := w.appliedCh
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for subscriptions: %w", ctx.Err())
		case <-c.ctx.Done():
			return ErrClosed
		}
	}
}

func (c *Client) markApplied(gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := &c.watch
	if gen <= w.applied {
		return
	}
	w.applied = gen
	if w.appliedCh != nil {
		close(w.appliedCh)
		w.appliedCh = nil
	}
}

// watchUnion is the union of the subscriptions, in a stable order, and
// the gen it reflects.
func (c *Client) watchUnion() (Subscription, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var u Subscription
	for _, s := range c.watch.subs {
		u.All = u.All || s.All
		u.Kinds = append(u.Kinds, s.Kinds...)
		u.UUIDs = append(u.UUIDs, s.UUIDs...)
	}
	slices.Sort(u.Kinds)
	u.Kinds = slices.Compact(u.Kinds)
	slices.Sort(u.UUIDs)
	u.UUIDs = slices.Compact(u.UUIDs)
	if u.All {
		u.Kinds, u.UUIDs = nil, nil
	}
	return u, c.watch.gen
}

// kickWatch asks the watch loop to tell the server the subscriptions now.
func (c *Client) kickWatch() {
	select {
	case c.watch.kick <- struct{}{}:
	default:
	}
}

// watchLoop sends the union of the subscriptions when it changed or the
// session did, to a server that delivers by interest, until the client
// closes. A failure is tried again a retry tick later.
func (c *Client) watchLoop(kick <-chan struct{}) {
	var sent *Subscription
	var sentSession backrpc.ServerSession
	var retry <-chan time.Time
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-kick:
		case <-retry:
		}
		retry = nil
		if err := c.rpc.WaitConnected(c.ctx); err != nil {
			return
		}
		sess := c.rpc.Session()
		u, gen := c.watchUnion()
		if !sess.Hello.Has(backrpc.CapInterest) || !slices.Contains(c.opts.capabilities, backrpc.CapInterest) {
			c.markApplied(gen) // the server sends everything
			continue
		}
		if sent != nil && sess.ServerID == sentSession.ServerID && sess.Seq == sentSession.Seq && equalSubscription(*sent, u) {
			c.markApplied(gen)
			continue
		}
		ctx, cancel := context.WithTimeout(c.ctx, c.opts.reacquireTimeout)
		_, err := c.rpc.Request(ctx, methodWatch, u)
		cancel()
		if err != nil {
			if c.ctx.Err() != nil {
				return
			}
			c.log.WithError(err).Warn("subscribe to network events")
			retry = time.After(c.opts.retryTick)
			continue
		}
		sent, sentSession = &u, sess
		c.markApplied(gen)
	}
}

func equalSubscription(a, b Subscription) bool {
	return a.All == b.All && slices.Equal(a.Kinds, b.Kinds) && slices.Equal(a.UUIDs, b.UUIDs)
}

// FilterEvent keeps of ev what sub names: everything for All; else the
// agents offering one of its kinds and the containers of its kinds and
// uuids.
func FilterEvent(sub Subscription, ev network.Event) network.Event {
	if sub.All {
		return ev
	}
	var out network.Event
	for _, a := range ev.Agents {
		for _, k := range a.Kinds {
			if slices.Contains(sub.Kinds, k) {
				out.Agents = append(out.Agents, a)
				break
			}
		}
	}
	for _, ce := range ev.Containers {
		if slices.Contains(sub.Kinds, ce.Container.Kind) || slices.Contains(sub.UUIDs, ce.Container.UUID) {
			out.Containers = append(out.Containers, ce)
		}
	}
	return out
}

// mergeEventsAt is how many undelivered events the client's event queue
// holds before it merges them (latest state per agent and container): a
// slow event handler then costs memory in the number of containers, not
// in the number of events.
const mergeEventsAt = 16

func mergeQueued(items []queued[network.Event]) []queued[network.Event] {
	out := items[:0]
	for _, it := range items {
		if n := len(out); n > 0 && out[n-1].internal == it.internal {
			out[n-1].v = network.MergeEvents(out[n-1].v, it.v)
			continue
		}
		out = append(out, it)
	}
	return out
}
