package network

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sirupsen/logrus"
)

// Interest-based delivery. A client that receives events by interest (its
// hello announced it, and the server supports it: SetInterest) is sent,
// of every batch, the agent entries (agents are few, and a client waiting
// in a get wakes on them) and only the container entries that concern it:
//
//   - containers it holds a reference to (also when the entry removes one:
//     the holders are remembered at the removal);
//   - containers of the agents it hosts, and containers its agents stand
//     by for (the HA standby claims a container when its removal is
//     announced);
//   - the container of a uuid that a get of the client failed to obtain
//     lately (it is waiting: WaitTTL). A get waiting for a kind wakes on
//     the agent entries, which every such client receives: sending it the
//     containers of the kind would send, when every container is of one
//     kind, every container event to every client whose get failed once;
//   - what it subscribed to (Watch): everything, kinds, uuids.
//
// Other clients (every TS 0.7 client) are sent the whole batch, as the
// reference does. The cost of a batch is the number of entries times the
// clients each concerns, never clients × entries.

// Defaults of the interest rules.
const (
	// DefaultMaxSubscriptions bounds the kinds and uuids one client may
	// subscribe to, and the gets it may be remembered waiting for.
	DefaultMaxSubscriptions = 1024
	// WaitTTL is how long a failed get keeps its client interested in the
	// kind and uuid it asked for: the client retries within it.
	WaitTTL = time.Minute
)

// ErrTooManySubscriptions matches (errors.Is) the refusal of a Watch with
// more kinds and uuids than the limit.
var ErrTooManySubscriptions = errors.New("too many subscriptions")

// Subscription is what a client asks to receive besides what concerns it:
// every event (All), or the containers of some kinds and uuids.
type Subscription struct {
	All   bool            `json:"all,omitempty"`
	Kinds []string        `json:"kinds,omitempty"`
	UUIDs []ContainerUUID `json:"uuids,omitempty"`
}

// Size is the number of kinds and uuids.
func (s Subscription) Size() int { return len(s.Kinds) + len(s.UUIDs) }

// Delivery is a batch of events and who receives which part of it.
type Delivery struct {
	// Event is the whole batch, for clients that do not receive by
	// interest.
	Event Event
	// Containers gives, per client that receives by interest, the indexes
	// of the entries of Event.Containers that concern it, ascending.
	// Such a client receives Event.Agents and these entries; nothing when
	// both are empty.
	Containers map[ClientID][]int
}

type interestClient struct {
	sub       Subscription
	kinds     map[string]struct{}
	uuids     map[ContainerUUID]struct{}
	waitKinds map[string]int64 // until, Unix nanoseconds
	waitUUIDs map[ContainerUUID]int64
}

// interestState is the index of interest; guarded by Network.mu.
type interestState struct {
	max     int
	clients map[ClientID]*interestClient
	all     map[ClientID]struct{}
	// kind and uuid → clients subscribed or waiting (a client is in a
	// set once per reason: subscribed, waiting).
	subKind  map[string]map[ClientID]struct{}
	subUUID  map[ContainerUUID]map[ClientID]struct{}
	waitKind map[string]map[ClientID]struct{}
	waitUUID map[ContainerUUID]map[ClientID]struct{}
	// removed remembers, for the containers removed in the current batch,
	// the interest clients they concerned.
	removed map[ContainerUUID][]ClientID
	// waitsDropped counts waits forgotten beyond the limit.
	waitsDropped uint64
}

func (st *interestState) init() {
	if st.clients != nil {
		return
	}
	if st.max <= 0 {
		st.max = DefaultMaxSubscriptions
	}
	st.clients = map[ClientID]*interestClient{}
	st.all = map[ClientID]struct{}{}
	st.subKind = map[string]map[ClientID]struct{}{}
	st.subUUID = map[ContainerUUID]map[ClientID]struct{}{}
	st.waitKind = map[string]map[ClientID]struct{}{}
	st.waitUUID = map[ContainerUUID]map[ClientID]struct{}{}
	st.removed = map[ContainerUUID][]ClientID{}
}

func addTo[K comparable](m map[K]map[ClientID]struct{}, k K, id ClientID) {
	s := m[k]
	if s == nil {
		s = map[ClientID]struct{}{}
		m[k] = s
	}
	s[id] = struct{}{}
}

func removeFrom[K comparable](m map[K]map[ClientID]struct{}, k K, id ClientID) {
	if s := m[k]; s != nil {
		delete(s, id)
		if len(s) == 0 {
			delete(m, k)
		}
	}
}

// SetMaxSubscriptions sets the limit of Watch and of remembered waits per
// client (DefaultMaxSubscriptions when n <= 0).
func (n *Network) SetMaxSubscriptions(max int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.interest.init()
	if max <= 0 {
		max = DefaultMaxSubscriptions
	}
	n.interest.max = max
}

// SetInterest says whether a client receives events by interest (on) or
// every event (off, the default, as every TS 0.7 client). Turning it off
// forgets the client's subscriptions and waits.
func (n *Network) SetInterest(clientID ClientID, on bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	st := &n.interest
	st.init()
	if !on {
		n.dropInterestLocked(clientID)
		return
	}
	if st.clients[clientID] == nil {
		st.clients[clientID] = &interestClient{
			kinds: map[string]struct{}{}, uuids: map[ContainerUUID]struct{}{},
			waitKinds: map[string]int64{}, waitUUIDs: map[ContainerUUID]int64{},
		}
	}
}

// ReceivesByInterest reports whether the client receives events by
// interest.
func (n *Network) ReceivesByInterest(clientID ClientID) bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.interest.clients[clientID] != nil
}

// DropInterest forgets a client's interest state (its session ended).
func (n *Network) DropInterest(clientID ClientID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.dropInterestLocked(clientID)
}

func (n *Network) dropInterestLocked(id ClientID) {
	st := &n.interest
	ic := st.clients[id]
	if ic == nil {
		return
	}
	n.setSubscriptionLocked(id, ic, Subscription{})
	for k := range ic.waitKinds {
		removeFrom(st.waitKind, k, id)
	}
	for u := range ic.waitUUIDs {
		removeFrom(st.waitUUID, u, id)
	}
	delete(st.clients, id)
}

// Watch replaces the subscription of a client that receives by interest.
// A subscription with more kinds and uuids than the limit is refused
// (ErrTooManySubscriptions); a client that does not receive by interest
// receives everything already, and its Watch changes nothing.
func (n *Network) Watch(clientID ClientID, sub Subscription) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	st := &n.interest
	st.init()
	if sub.Size() > st.max {
		return fmt.Errorf("watch: %d kinds and uuids, the limit is %d: %w", sub.Size(), st.max, ErrTooManySubscriptions)
	}
	ic := st.clients[clientID]
	if ic == nil {
		return nil
	}
	n.setSubscriptionLocked(clientID, ic, sub)
	return nil
}

func (n *Network) setSubscriptionLocked(id ClientID, ic *interestClient, sub Subscription) {
	st := &n.interest
	for k := range ic.kinds {
		removeFrom(st.subKind, k, id)
	}
	for u := range ic.uuids {
		removeFrom(st.subUUID, u, id)
	}
	clear(ic.kinds)
	clear(ic.uuids)
	delete(st.all, id)
	ic.sub = Subscription{All: sub.All, Kinds: slices.Clone(sub.Kinds), UUIDs: slices.Clone(sub.UUIDs)}
	if sub.All {
		st.all[id] = struct{}{}
	}
	for _, k := range sub.Kinds {
		ic.kinds[k] = struct{}{}
		addTo(st.subKind, k, id)
	}
	for _, u := range sub.UUIDs {
		ic.uuids[u] = struct{}{}
		addTo(st.subUUID, u, id)
	}
}

// Subscription returns a client's subscription (for status and tests).
func (n *Network) Subscription(clientID ClientID) (Subscription, bool) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	ic := n.interest.clients[clientID]
	if ic == nil {
		return Subscription{}, false
	}
	return ic.sub, true
}

// GetFailed records that a get of the client for kind (and uuid) failed:
// the client will ask again, and until then, for WaitTTL, it receives the
// events of the container of that uuid (the kind's wait is counted, and
// served by the agent entries every client receives). The oldest wait
// goes beyond the limit.
func (n *Network) GetFailed(clientID ClientID, kind string, uuid ContainerUUID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	st := &n.interest
	ic := st.clients[clientID]
	if ic == nil {
		return
	}
	until := n.clock.Now().Add(WaitTTL).UnixNano()
	if kind != "" {
		ic.waitKinds[kind] = until
		addTo(st.waitKind, kind, clientID)
	}
	if uuid != "" {
		ic.waitUUIDs[uuid] = until
		addTo(st.waitUUID, uuid, clientID)
	}
	for len(ic.waitKinds)+len(ic.waitUUIDs) > st.max {
		n.dropOldestWaitLocked(clientID, ic)
	}
}

func (n *Network) dropOldestWaitLocked(id ClientID, ic *interestClient) {
	st := &n.interest
	st.waitsDropped++
	var oldK string
	var oldU ContainerUUID
	best := int64(1<<63 - 1)
	isKind := false
	for k, t := range ic.waitKinds {
		if t < best {
			best, oldK, isKind = t, k, true
		}
	}
	for u, t := range ic.waitUUIDs {
		if t < best {
			best, oldU, isKind = t, u, false
		}
	}
	n.log.WithFields(logrus.Fields{"client": shortClient(id), "max_subscriptions": st.max}).
		Warn("a client waits on more kinds and uuids than the limit; forgot its oldest wait")
	if isKind {
		delete(ic.waitKinds, oldK)
		removeFrom(st.waitKind, oldK, id)
	} else {
		delete(ic.waitUUIDs, oldU)
		removeFrom(st.waitUUID, oldU, id)
	}
}

// GetSucceeded ends the waits a failed get of kind (and uuid) started.
func (n *Network) GetSucceeded(clientID ClientID, kind string, uuid ContainerUUID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	st := &n.interest
	ic := st.clients[clientID]
	if ic == nil || len(ic.waitKinds)+len(ic.waitUUIDs) == 0 {
		return
	}
	if _, ok := ic.waitKinds[kind]; ok {
		delete(ic.waitKinds, kind)
		removeFrom(st.waitKind, kind, clientID)
	}
	if _, ok := ic.waitUUIDs[uuid]; ok {
		delete(ic.waitUUIDs, uuid)
		removeFrom(st.waitUUID, uuid, clientID)
	}
}

// expireWaitsLocked forgets waits past their time.
func (n *Network) expireWaitsLocked(now int64) {
	st := &n.interest
	for _, m := range []map[string]map[ClientID]struct{}{st.waitKind} {
		for k, ids := range m {
			for id := range ids {
				if ic := st.clients[id]; ic == nil || ic.waitKinds[k] < now {
					if ic != nil {
						delete(ic.waitKinds, k)
					}
					removeFrom(st.waitKind, k, id)
				}
			}
		}
	}
	for u, ids := range st.waitUUID {
		for id := range ids {
			if ic := st.clients[id]; ic == nil || ic.waitUUIDs[u] < now {
				if ic != nil {
					delete(ic.waitUUIDs, u)
				}
				removeFrom(st.waitUUID, u, id)
			}
		}
	}
}

// noteRemovedLocked remembers, as c is removed, the interest clients it
// concerned through its references, its agent and its standbys: after
// the removal nothing else says so.
func (n *Network) noteRemovedLocked(c *container) {
	st := &n.interest
	if len(st.clients) == 0 {
		return
	}
	var ids []ClientID
	n.containerHoldersLocked(c, func(id ClientID) { ids = append(ids, id) })
	if len(ids) > 0 {
		st.removed[c.rec.UUID] = append(st.removed[c.rec.UUID], ids...)
	}
}

// containerHoldersLocked calls fn for the interest clients that hold a
// reference to c, host its agent or host an agent standing by for it (a
// client may come more than once).
func (n *Network) containerHoldersLocked(c *container, fn func(ClientID)) {
	st := &n.interest
	for id := range c.refs {
		if st.clients[id] != nil {
			fn(id)
		}
	}
	if c.agent != nil && st.clients[c.agent.host] != nil {
		fn(c.agent.host)
	}
	for sid := range c.standbys {
		if sa := n.agents[sid]; sa != nil && st.clients[sa.host] != nil {
			fn(sa.host)
		}
	}
}

// SweepDelivery is Sweep, with the batch's recipients: see Delivery.
func (n *Network) SweepDelivery() (Delivery, []Termination) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ev, terms := n.sweepLocked()
	d := Delivery{Event: ev}
	st := &n.interest
	if len(st.clients) == 0 {
		clear(st.removed)
		return d, terms
	}
	n.expireWaitsLocked(n.clock.Now().UnixNano())
	d.Containers = map[ClientID][]int{}
	// last[id] is the last entry index given to id: entries are visited
	// in order, so a repeat is always the latest one.
	last := map[ClientID]int{}
	cur := 0
	give := func(id ClientID) {
		if j, ok := last[id]; ok && j == cur {
			return
		}
		last[id] = cur
		d.Containers[id] = append(d.Containers[id], cur)
	}
	for i, ce := range ev.Containers {
		cur = i
		uuid := ce.Container.UUID
		for _, id := range st.removed[uuid] {
			give(id)
		}
		if c := n.containers[uuid]; c != nil {
			n.containerHoldersLocked(c, give)
		}
		for id := range st.subUUID[uuid] {
			give(id)
		}
		for id := range st.waitUUID[uuid] {
			give(id)
		}
		for id := range st.subKind[ce.Container.Kind] {
			give(id)
		}
		for id := range st.all {
			give(id)
		}
	}
	clear(st.removed)
	return d, terms
}

// InterestStats are the counts of interest delivery.
type InterestStats struct {
	Clients       int    // clients that receive by interest
	Subscriptions int    // kinds and uuids subscribed, over all clients
	WatchAll      int    // clients subscribed to everything
	Waits         int    // kinds and uuids failed gets wait for
	WaitsDropped  uint64 // waits forgotten beyond the limit
}

// InterestStats returns the counts of interest delivery.
func (n *Network) InterestStats() InterestStats {
	n.mu.RLock()
	defer n.mu.RUnlock()
	st := &n.interest
	s := InterestStats{Clients: len(st.clients), WatchAll: len(st.all), WaitsDropped: st.waitsDropped}
	for _, ic := range st.clients {
		s.Subscriptions += len(ic.kinds) + len(ic.uuids)
		s.Waits += len(ic.waitKinds) + len(ic.waitUUIDs)
	}
	return s
}
