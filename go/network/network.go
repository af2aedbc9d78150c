package network

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// Defaults of the reference implementation (PROTOCOL.md §9).
const (
	DefaultAliveTimeout  = 3 * time.Second
	DefaultUnusedTimeout = 5 * time.Second
)

// maxGetAttempts bounds how often one Get starts over because the container
// it joined vanished or the start it joined was cancelled by its initiator.
const maxGetAttempts = 4

// AgentTarget says where a back-request goes: the client session that hosts
// the agent, and the agent's id (the first element of the back-request
// params).
type AgentTarget struct {
	Client ClientID
	Agent  AgentID
}

// AgentCaller performs the back-requests of PROTOCOL.md §5. The server glue
// implements it over the hosting client's session. Every method must return
// when ctx is done.
type AgentCaller interface {
	// GetContainer is back-request gg: [kind, getOptions] → [uuid, ref].
	GetContainer(ctx context.Context, to AgentTarget, kind string, opts GetOptions) (ContainerUUID, string, error)
	// TerminateContainer is back-request ct: [uuid] → "".
	TerminateContainer(ctx context.Context, to AgentTarget, uuid ContainerUUID) error
	// ContainerRequest is back-request cs: [uuid, op, data] → result.
	ContainerRequest(ctx context.Context, to AgentTarget, uuid ContainerUUID, op string, data json.RawMessage) (json.RawMessage, error)
}

// Options configure a Network. Zero values take the defaults.
type Options struct {
	// Clock defaults to the system clock.
	Clock Clock
	// AliveTimeout: an agent whose hosting client has not been seen for
	// longer is removed (default 3 s). A client can ask for a longer one
	// (SetClientAliveTimeout).
	AliveTimeout time.Duration
	// UnusedTimeout: an orphaned container older than this is terminated
	// (default 5 s).
	UnusedTimeout time.Duration
	// Caller performs back-requests. Without one every back-request fails.
	Caller AgentCaller
	// Arrivals counts the messages the server has received so far (see
	// RegisterAgentArrived). Default: always 0, which orders nothing.
	Arrivals func() uint64
	// Logger defaults to logrus's standard logger.
	Logger logrus.FieldLogger
}

// ErrNoSuitableAgents matches (errors.Is) the error of a Get for a kind that
// no agent offers.
var ErrNoSuitableAgents = errors.New("no suitable agents")

// ErrContainerNotFound matches (errors.Is) the error of a Route to an
// unknown container.
var ErrContainerNotFound = errors.New("container not found")

// ErrAgentUnreachable matches (errors.Is) the error of a Route to a
// container whose agent's hosting client has lost its connection.
var ErrAgentUnreachable = errors.New("agent unreachable")

// ErrAgentOwned matches (errors.Is) the refusal of an ar or au for an agent
// that another live session registered.
var ErrAgentOwned = errors.New("agent registered by another session")

// ErrNoCaller is returned by back-requests when Options.Caller was not set.
var ErrNoCaller = errors.New("network: no agent caller configured")

type noAgentsError struct {
	kind        string
	unreachable int
}

// Error is the reference's exact text, which clients may match.
func (e *noAgentsError) Error() string {
	if e.unreachable > 0 {
		return fmt.Sprintf("No suitable agents found for container %s: the %d agents offering it are unreachable", e.kind, e.unreachable)
	}
	return "No suitable agents found for container " + e.kind
}
func (e *noAgentsError) Is(target error) bool { return target == ErrNoSuitableAgents }

type unreachableError struct {
	uuid  ContainerUUID
	agent AgentID
}

func (e *unreachableError) Error() string {
	return "Container " + string(e.uuid) + " is unavailable: its agent " + string(e.agent) + " is unreachable (the connection of the client hosting it is gone)"
}
func (e *unreachableError) Is(target error) bool { return target == ErrAgentUnreachable }

type notFoundError struct{ uuid ContainerUUID }

// Error is the reference's exact text, which clients may match.
func (e *notFoundError) Error() string        { return "Container " + string(e.uuid) + " not found" }
func (e *notFoundError) Is(target error) bool { return target == ErrContainerNotFound }

// Stats are the network's counts, for STATUS= lines and metrics.
type Stats struct {
	Clients       int // clients with references or agents
	Agents        int
	Kinds         int
	Containers    int
	Orphans       int // containers without references, waiting for the unused timeout
	References    int // (client, container) pairs
	PendingStarts int // gg back-requests in flight that gets can still join
	// UnreachableAgents are hosted by clients whose connection is gone.
	UnreachableAgents int
	// RefusedClaims counts ar and au refused for an agent another live
	// session registered.
	RefusedClaims uint64
	// Failovers counts containers taken from an owner whose connection
	// went, for a standby to claim.
	Failovers uint64
	// UnreachableRoutes counts requests refused because the container's
	// agent was unreachable.
	UnreachableRoutes uint64
}

type agent struct {
	id       AgentID
	seq      uint64 // registration order, for stable listings and round-robin
	host     ClientID
	endpoint string
	kinds    []string // unique, in the order the agent gave them
	// containers owned by the agent.
	containers map[ContainerUUID]*container
	// lastSeen is Unix nanoseconds; atomic so that ClientSeen, which runs
	// for every message, needs only the read lock.
	lastSeen atomic.Int64
	// standbyFor are the containers the agent listed while another agent
	// owned them (its latest registration): it stands by to take them.
	standbyFor map[ContainerUUID]struct{}
}

type container struct {
	rec   ContainerRecord
	agent *agent
	// refs are the clients holding a reference.
	refs map[ClientID]struct{}
	// orphanSince is Unix nanoseconds; meaningful while in Network.orphans.
	orphanSince int64
	// addedAt is Options.Arrivals when the container was added: an
	// agent's registration that arrived before it cannot list it.
	addedAt uint64
	// standbys are the agents that listed the container while another
	// owned it (stateless containers, the HA mechanism).
	standbys map[AgentID]struct{}
}

type client struct {
	id           ClientID
	refs         map[ContainerUUID]*container
	aliveTimeout time.Duration // 0: the network's
}

// pending is a gg back-request in flight. Gets that may be served by the same
// container join it instead of asking again.
type pending struct {
	kind  string
	opts  GetOptions
	agent AgentID
	done  chan struct{}
	// set before done is closed:
	uuid ContainerUUID
	err  error
}

type pendingKey struct {
	kind string
	uuid ContainerUUID
}

// Network is the state and rules of a huly network server: agents,
// containers, references, orphans, pending starts and the event batch. It is
// safe for concurrent use; it never holds its lock while calling an agent.
type Network struct {
	clock         Clock
	caller        AgentCaller
	arrivals      func() uint64
	log           logrus.FieldLogger
	aliveTimeout  time.Duration
	unusedTimeout time.Duration

	mu         sync.RWMutex
	agents     map[AgentID]*agent
	agentSeq   uint64
	kindAgents map[string][]*agent // agents offering a kind, by seq
	rr         map[string]uint64   // round-robin position per kind
	containers map[ContainerUUID]*container
	byKind     map[string]map[ContainerUUID]*container
	orphans    map[ContainerUUID]*container
	clients    map[ClientID]*client
	// hosted maps a client to the agents it hosts. It outlives the client's
	// record (ClientGone), so that a client that comes back before its
	// agents expire keeps them alive with its pings.
	hosted   map[ClientID]map[AgentID]*agent
	refCount int
	// pendingByUUID indexes starts of a given uuid, pendingByKind every
	// start of a kind (a get without uuid joins any start of its kind whose
	// labels cover the requested ones, as the reference does).
	pendingByUUID map[pendingKey]*pending
	pendingByKind map[string][]*pending
	pendingCount  int
	events        eventBatch
	// live are the clients with a session (ClientConnected until
	// ClientGone): an agent one of them registered is theirs.
	live map[ClientID]struct{}
	// down are the clients whose connection is gone (Unix nanoseconds
	// since): their agents get no work.
	down map[ClientID]int64

	refusedClaims, failovers, unreachableRoutes atomic.Uint64
}

// New returns an empty network.
func New(opts Options) *Network {
	n := &Network{
		clock:         opts.Clock,
		caller:        opts.Caller,
		arrivals:      opts.Arrivals,
		log:           opts.Logger,
		aliveTimeout:  opts.AliveTimeout,
		unusedTimeout: opts.UnusedTimeout,
		agents:        make(map[AgentID]*agent),
		kindAgents:    make(map[string][]*agent),
		rr:            make(map[string]uint64),
		containers:    make(map[ContainerUUID]*container),
		byKind:        make(map[string]map[ContainerUUID]*container),
		orphans:       make(map[ContainerUUID]*container),
		clients:       make(map[ClientID]*client),
		hosted:        make(map[ClientID]map[AgentID]*agent),
		pendingByUUID: make(map[pendingKey]*pending),
		pendingByKind: make(map[string][]*pending),
		live:          make(map[ClientID]struct{}),
		down:          make(map[ClientID]int64),
	}
	if n.clock == nil {
		n.clock = SystemClock()
	}
	if n.caller == nil {
		n.caller = noCaller{}
	}
	if n.arrivals == nil {
		n.arrivals = func() uint64 { return 0 }
	}
	if n.log == nil {
		n.log = logrus.StandardLogger()
	}
	if n.aliveTimeout <= 0 {
		n.aliveTimeout = DefaultAliveTimeout
	}
	if n.unusedTimeout <= 0 {
		n.unusedTimeout = DefaultUnusedTimeout
	}
	return n
}

func (n *Network) nowMillis() int64 { return n.clock.Now().UnixMilli() }

// clientLocked returns the client's record, creating it.
func (n *Network) clientLocked(id ClientID) *client {
	cl := n.clients[id]
	if cl == nil {
		cl = &client{id: id, refs: make(map[ContainerUUID]*container)}
		n.clients[id] = cl
	}
	return cl
}

// ---- agents ----

// RegisterAgent handles ar from client: it adds or replaces the agent
// record. Listed containers that another agent already owns are returned:
// the agent must terminate them (first registration wins; the HA mechanism).
// The others are added, or updated when the same agent lists them with a
// changed endpoint, kind, labels or extra. Containers the agent owned and no
// longer lists are removed. A record with an empty endpoint gets the
// container-on-agent reference of the agent's endpoint.
func (n *Network) RegisterAgent(clientID ClientID, reg AgentRegistration) ([]ContainerUUID, error) {
	return n.RegisterAgentArrived(clientID, reg, ^uint64(0))
}

// RegisterAgentArrived is RegisterAgent for a registration that arrived when
// Options.Arrivals was arrived. The server handles one client's messages
// concurrently, so an ar sent before the agent answered a gg can be handled
// after that answer was: containers added after the ar arrived are kept
// though it does not list them (the agent's next registration will).
func (n *Network) RegisterAgentArrived(clientID ClientID, reg AgentRegistration, arrived uint64) ([]ContainerUUID, error) {
	if err := reg.Validate(); err != nil {
		return nil, err
	}
	kinds := uniqueStrings(reg.Kinds)
	var agentRef EndpointRef
	agentRefOK := false
	if reg.Endpoint != "" {
		r, err := ParseEndpointRef(reg.Endpoint)
		if err != nil {
			// Kept anyway: the reference treats it as an opaque string,
			// and clients may understand what we do not.
			n.log.WithError(err).WithField("agent", reg.UUID).Warn("agent registered with an unparsable endpoint")
		} else {
			agentRef, agentRefOK = r, true
		}
	}

	n.mu.Lock()
	defer n.mu.Unlock()
	now := n.clock.Now()

	a := n.agents[reg.UUID]
	if err := n.claimLocked("ar", a, clientID); err != nil {
		return nil, err
	}
	isNew := a == nil
	if isNew {
		n.agentSeq++
		a = &agent{id: reg.UUID, seq: n.agentSeq, containers: make(map[ContainerUUID]*container)}
		n.agents[a.id] = a
	} else if a.host != clientID {
		n.unhostLocked(a)
	}
	kindsChanged := isNew || !slices.Equal(a.kinds, kinds)
	endpointChanged := a.endpoint != reg.Endpoint
	oldKinds := a.kinds
	a.host = clientID
	a.endpoint = reg.Endpoint
	a.kinds = kinds
	a.lastSeen.Store(now.UnixNano())
	h := n.hosted[clientID]
	if h == nil {
		h = make(map[AgentID]*agent)
		n.hosted[clientID] = h
	}
	h[a.id] = a
	if kindsChanged {
		n.reindexKindsLocked(a, oldKinds)
	}

	listed := make(map[ContainerUUID]int, len(reg.Containers))
	for i, rec := range reg.Containers {
		if _, dup := listed[rec.UUID]; !dup {
			listed[rec.UUID] = i
		}
	}
	var gone []*container
	for uuid, c := range a.containers {
		if _, ok := listed[uuid]; !ok && c.addedAt <= arrived {
			gone = append(gone, c)
		}
	}
	sortContainers(gone)
	for _, c := range gone {
		n.removeContainerLocked(c)
	}

	terminate := []ContainerUUID{}
	for i, rec := range reg.Containers {
		if listed[rec.UUID] != i {
			continue // a duplicate in one registration: the first counts
		}
		rec.AgentID = a.id
		if rec.Endpoint == "" && agentRefOK {
			rec.Endpoint = ContainerOnAgentRef(agentRef, rec.UUID)
		}
		if rec.LastVisit == 0 {
			rec.LastVisit = now.UnixMilli()
		}
		existing := n.containers[rec.UUID]
		switch {
		case existing == nil:
			n.addContainerLocked(a, rec)
		case existing.agent == a:
			if recordChanged(existing.rec, rec) {
				n.replaceRecordLocked(existing, rec)
				n.events.addContainer(ContainerEvent{Container: rec, Event: EventUpdated})
			} else {
				existing.rec.LastVisit = rec.LastVisit
			}
		default:
			terminate = append(terminate, rec.UUID)
		}
	}

	switch {
	case isNew:
		n.events.addAgent(AgentEvent{ID: a.id, Kinds: kinds, Event: EventAdded})
	case kindsChanged || endpointChanged:
		n.events.addAgent(AgentEvent{ID: a.id, Kinds: kinds, Event: EventUpdated})
	}
	n.setStandbyLocked(a, terminate)
	return terminate, nil
}

// setStandbyLocked records the containers another agent owns that a listed
// in its latest registration: it stands by for them. The log says when
// that set changes, not at every registration.
func (n *Network) setStandbyLocked(a *agent, terminate []ContainerUUID) {
	next := make(map[ContainerUUID]struct{}, len(terminate))
	changed := false
	for _, uuid := range terminate {
		next[uuid] = struct{}{}
		if _, had := a.standbyFor[uuid]; !had {
			changed = true
		}
		if c := n.containers[uuid]; c != nil {
			if c.standbys == nil {
				c.standbys = make(map[AgentID]struct{})
			}
			c.standbys[a.id] = struct{}{}
		}
	}
	for uuid := range a.standbyFor {
		if _, still := next[uuid]; !still {
			changed = true
			if c := n.containers[uuid]; c != nil {
				delete(c.standbys, a.id)
			}
		}
	}
	a.standbyFor = next
	if !changed {
		return
	}
	if len(terminate) > 0 {
		n.log.WithFields(logrus.Fields{"agent": a.id, "containers": terminate}).Info("agent lists containers owned by other agents; told to terminate them (it stands by for them)")
	} else {
		n.log.WithField("agent", a.id).Info("agent no longer stands by for containers of other agents")
	}
}

// claimLocked is the one place that decides whether clientID may register
// (ar) or unregister (au) agent a (nil: a new agent): an agent belongs to
// the session that registered it while that session lives. The same client
// id over a new connection is the same session.
func (n *Network) claimLocked(op string, a *agent, clientID ClientID) error {
	if a == nil || a.host == clientID {
		return nil
	}
	if _, live := n.live[a.host]; !live {
		return nil
	}
	n.refusedClaims.Add(1)
	n.log.WithFields(logrus.Fields{
		"op": op, "agent": a.id, "client": shortClient(clientID), "host": shortClient(a.host),
	}).Warn("refused: the agent is registered by another live session")
	return fmt.Errorf("%s: agent %s: %w", op, a.id, ErrAgentOwned)
}

func shortClient(id ClientID) string {
	const max = 40
	if len(id) > max {
		return fmt.Sprintf("%s…(%d bytes)", id[:max], len(id))
	}
	return string(id)
}

func recordChanged(old, rec ContainerRecord) bool {
	return old.Endpoint != rec.Endpoint || old.Kind != rec.Kind ||
		!slices.Equal(old.Labels, rec.Labels) || !bytes.Equal(old.Extra, rec.Extra)
}

// UnregisterAgent handles au: the agent and its containers are removed. An
// unknown agent is fine to ignore, as is an agent that another client hosts
// now (a late au from a session the agent has moved away from).
func (n *Network) UnregisterAgent(clientID ClientID, id AgentID) error {
	if id == "" {
		return fmt.Errorf("%w: no agent uuid", ErrInvalidParams)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	a := n.agents[id]
	if a == nil {
		return nil
	}
	if err := n.claimLocked("au", a, clientID); err != nil {
		return err
	}
	if a.host != clientID {
		n.log.WithFields(logrus.Fields{"agent": id, "client": clientID, "host": a.host}).Warn("ignoring unregister from a client that does not host the agent")
		return nil
	}
	n.removeAgentLocked(a)
	return nil
}

// removeAgentLocked removes an agent with all its containers and forgets its
// pending starts, so that no new get joins them; the gets already waiting
// get an error when the back-request returns.
func (n *Network) removeAgentLocked(a *agent) {
	cs := make([]*container, 0, len(a.containers))
	for _, c := range a.containers {
		cs = append(cs, c)
	}
	sortContainers(cs)
	for _, c := range cs {
		n.removeContainerLocked(c)
	}
	var stale []*pending
	for _, ps := range n.pendingByKind {
		for _, p := range ps {
			if p.agent == a.id {
				stale = append(stale, p)
			}
		}
	}
	for _, p := range stale {
		n.unindexPendingLocked(p)
	}
	for uuid := range a.standbyFor {
		if c := n.containers[uuid]; c != nil {
			delete(c.standbys, a.id)
		}
	}
	delete(n.agents, a.id)
	n.reindexKindsLocked(a, a.kinds)
	n.unhostLocked(a)
	n.events.addAgent(AgentEvent{ID: a.id, Kinds: a.kinds, Event: EventRemoved})
}

func (n *Network) unhostLocked(a *agent) {
	if h := n.hosted[a.host]; h != nil && h[a.id] == a {
		delete(h, a.id)
		if len(h) == 0 {
			delete(n.hosted, a.host)
			if _, live := n.live[a.host]; !live {
				delete(n.down, a.host)
			}
		}
	}
}

// reindexKindsLocked rebuilds the kind → agents lists touched by a change of
// a's kinds (or its removal).
func (n *Network) reindexKindsLocked(a *agent, oldKinds []string) {
	for _, k := range oldKinds {
		n.kindAgents[k] = slices.DeleteFunc(n.kindAgents[k], func(x *agent) bool { return x == a })
		if len(n.kindAgents[k]) == 0 {
			delete(n.kindAgents, k)
			delete(n.rr, k)
		}
	}
	if n.agents[a.id] != a {
		return
	}
	for _, k := range a.kinds {
		list := n.kindAgents[k]
		i := sort.Search(len(list), func(i int) bool { return list[i].seq >= a.seq })
		if i < len(list) && list[i] == a {
			continue
		}
		n.kindAgents[k] = slices.Insert(list, i, a)
	}
}

// Agents answers al, in registration order.
func (n *Network) Agents() []AgentInfo {
	n.mu.RLock()
	as := make([]*agent, 0, len(n.agents))
	for _, a := range n.agents {
		as = append(as, a)
	}
	sort.Slice(as, func(i, j int) bool { return as[i].seq < as[j].seq })
	out := make([]AgentInfo, len(as))
	for i, a := range as {
		out[i] = AgentInfo{AgentID: a.id, Endpoint: a.endpoint, Kinds: slices.Clone(a.kinds), Containers: len(a.containers)}
	}
	n.mu.RUnlock()
	return out
}

// Kinds answers ak: every kind some agent offers, once, sorted. (The
// reference repeats a kind per agent.)
func (n *Network) Kinds() []string {
	n.mu.RLock()
	out := make([]string, 0, len(n.kindAgents))
	for k := range n.kindAgents {
		out = append(out, k)
	}
	n.mu.RUnlock()
	sort.Strings(out)
	return out
}

// Containers answers cl: the containers of a kind, or all of them for ""
// (the reference answers [] to a null kind), sorted by uuid. Records share
// their Labels and Extra with the network: read them, do not modify them.
func (n *Network) Containers(kind string) []ContainerRecord {
	n.mu.RLock()
	var out []ContainerRecord
	if kind == "" {
		out = make([]ContainerRecord, 0, len(n.containers))
		for _, c := range n.containers {
			out = append(out, c.rec)
		}
	} else {
		m := n.byKind[kind]
		out = make([]ContainerRecord, 0, len(m))
		for _, c := range m {
			out = append(out, c.rec)
		}
	}
	n.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].UUID < out[j].UUID })
	return out
}

// Container returns the record of one container.
func (n *Network) Container(uuid ContainerUUID) (ContainerRecord, bool) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	c := n.containers[uuid]
	if c == nil {
		return ContainerRecord{}, false
	}
	return c.rec, true
}

// ---- containers ----

func (n *Network) addContainerLocked(a *agent, rec ContainerRecord) *container {
	c := &container{rec: rec, agent: a, refs: make(map[ClientID]struct{}), addedAt: n.arrivals()}
	n.containers[rec.UUID] = c
	a.containers[rec.UUID] = c
	n.indexKindLocked(c)
	n.events.addContainer(ContainerEvent{Container: rec, Event: EventAdded})
	return c
}

func (n *Network) indexKindLocked(c *container) {
	m := n.byKind[c.rec.Kind]
	if m == nil {
		m = make(map[ContainerUUID]*container)
		n.byKind[c.rec.Kind] = m
	}
	m[c.rec.UUID] = c
}

func (n *Network) unindexKindLocked(c *container) {
	if m := n.byKind[c.rec.Kind]; m != nil {
		delete(m, c.rec.UUID)
		if len(m) == 0 {
			delete(n.byKind, c.rec.Kind)
		}
	}
}

func (n *Network) replaceRecordLocked(c *container, rec ContainerRecord) {
	if rec.Kind != c.rec.Kind {
		n.unindexKindLocked(c)
		c.rec = rec
		n.indexKindLocked(c)
		return
	}
	c.rec = rec
}

// removeContainerLocked forgets a container and every reference to it.
func (n *Network) removeContainerLocked(c *container) {
	uuid := c.rec.UUID
	if n.containers[uuid] != c {
		return
	}
	delete(n.containers, uuid)
	delete(c.agent.containers, uuid)
	delete(n.orphans, uuid)
	n.unindexKindLocked(c)
	for id := range c.refs {
		if cl := n.clients[id]; cl != nil {
			delete(cl.refs, uuid)
		}
	}
	n.refCount -= len(c.refs)
	c.refs = nil
	n.events.addContainer(ContainerEvent{Container: c.rec, Event: EventRemoved})
}

func (n *Network) addRefLocked(cl *client, c *container) {
	if _, held := c.refs[cl.id]; !held {
		c.refs[cl.id] = struct{}{}
		cl.refs[c.rec.UUID] = c
		n.refCount++
	}
	delete(n.orphans, c.rec.UUID) // a new reference rescues an orphan
	c.rec.LastVisit = n.nowMillis()
}

// orphanLocked starts the unused timeout of a container nobody references.
func (n *Network) orphanLocked(c *container) {
	if len(c.refs) > 0 || n.containers[c.rec.UUID] != c {
		return
	}
	if _, already := n.orphans[c.rec.UUID]; already {
		return
	}
	c.orphanSince = n.clock.Now().UnixNano()
	n.orphans[c.rec.UUID] = c
}

// Release handles cr: the client drops its reference; a container left
// without references becomes an orphan. Releasing what one does not hold is
// a no-op (the reference would orphan the container anyway).
func (n *Network) Release(clientID ClientID, uuid ContainerUUID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	cl := n.clients[clientID]
	if cl == nil {
		return
	}
	n.releaseLocked(cl, uuid)
}

func (n *Network) releaseLocked(cl *client, uuid ContainerUUID) {
	c := cl.refs[uuid]
	if c == nil {
		return
	}
	delete(cl.refs, uuid)
	if _, held := c.refs[cl.id]; held {
		delete(c.refs, cl.id)
		n.refCount--
	}
	n.orphanLocked(c)
}

// ---- get ----

// Get handles gg for client (PROTOCOL.md §7): with a uuid, an existing
// container of that uuid is returned, else a pending start of that uuid and
// kind is joined; without one, a pending start of the kind whose labels
// include the requested ones is joined. Otherwise an agent offering the kind
// is chosen round-robin and asked (back-request gg, without holding the
// lock). The client holds a reference to the result until Release or
// ClientGone. The error for a kind nobody offers is the reference's text,
// "No suitable agents found for container KIND" (errors.Is
// ErrNoSuitableAgents).
func (n *Network) Get(ctx context.Context, clientID ClientID, kind string, opts GetOptions) (ContainerUUID, string, error) {
	if opts.Extra != nil && !json.Valid(opts.Extra) {
		return "", "", fmt.Errorf("%w: get container of kind %s: extra is not valid JSON", ErrInvalidParams, kind)
	}
	var lastErr error
	for attempt := 0; attempt < maxGetAttempts; attempt++ {
		if err := ctx.Err(); err != nil {
			return "", "", fmt.Errorf("get container of kind %s: %w", kind, err)
		}
		uuid, ref, retry, err := n.getOnce(ctx, clientID, kind, opts)
		if !retry {
			return uuid, ref, err
		}
		lastErr = err
	}
	return "", "", fmt.Errorf("get container of kind %s: gave up after %d attempts: %w", kind, maxGetAttempts, lastErr)
}

func (n *Network) getOnce(ctx context.Context, clientID ClientID, kind string, opts GetOptions) (uuid ContainerUUID, ref string, retry bool, err error) {
	n.mu.Lock()
	cl := n.clientLocked(clientID)
	if opts.UUID != "" {
		if c := n.containers[opts.UUID]; c != nil {
			n.addRefLocked(cl, c)
			uuid, ref = c.rec.UUID, c.rec.Endpoint
			n.mu.Unlock()
			return uuid, ref, false, nil
		}
	}
	if p := n.findPendingLocked(kind, opts); p != nil {
		n.mu.Unlock()
		return n.join(ctx, cl, p)
	}
	list := n.kindAgents[kind]
	if len(list) == 0 {
		n.mu.Unlock()
		return "", "", false, &noAgentsError{kind: kind}
	}
	// Round-robin over the agents that can be reached.
	var a *agent
	for i := 0; i < len(list) && a == nil; i++ {
		cand := list[n.rr[kind]%uint64(len(list))]
		n.rr[kind]++
		if n.reachableLocked(cand) {
			a = cand
		}
	}
	if a == nil {
		n.mu.Unlock()
		return "", "", false, &noAgentsError{kind: kind, unreachable: len(list)}
	}
	p := &pending{kind: kind, opts: opts, agent: a.id, done: make(chan struct{})}
	n.indexPendingLocked(p)
	to := AgentTarget{Client: a.host, Agent: a.id}
	n.mu.Unlock()

	gotUUID, gotRef, callErr := n.caller.GetContainer(ctx, to, kind, opts)
	c, dup, err := n.completeStart(p, cl, to, gotUUID, gotRef, callErr)
	if dup != "" {
		// The agent answered with a uuid another agent owns: first
		// registration wins, so its copy goes (as for ar).
		if terr := n.caller.TerminateContainer(ctx, to, dup); terr != nil {
			n.log.WithError(terr).WithFields(logrus.Fields{"agent": to.Agent, "container": dup}).Warn("terminate duplicate container")
		}
	}
	if err != nil {
		return "", "", false, err
	}
	return c.UUID, c.Endpoint, false, nil
}

func (n *Network) findPendingLocked(kind string, opts GetOptions) *pending {
	if opts.UUID != "" {
		return n.pendingByUUID[pendingKey{kind, opts.UUID}]
	}
	for _, p := range n.pendingByKind[kind] {
		if containsAll(p.opts.Labels, opts.Labels) {
			return p
		}
	}
	return nil
}

func (n *Network) indexPendingLocked(p *pending) {
	if p.opts.UUID != "" {
		key := pendingKey{p.kind, p.opts.UUID}
		if _, taken := n.pendingByUUID[key]; !taken {
			n.pendingByUUID[key] = p
		}
	}
	n.pendingByKind[p.kind] = append(n.pendingByKind[p.kind], p)
	n.pendingCount++
}

// unindexPendingLocked makes p unjoinable; it is idempotent.
func (n *Network) unindexPendingLocked(p *pending) {
	if p.opts.UUID != "" {
		key := pendingKey{p.kind, p.opts.UUID}
		if n.pendingByUUID[key] == p {
			delete(n.pendingByUUID, key)
		}
	}
	list := n.pendingByKind[p.kind]
	if i := slices.Index(list, p); i >= 0 {
		list = slices.Delete(list, i, i+1)
		if len(list) == 0 {
			delete(n.pendingByKind, p.kind)
		} else {
			n.pendingByKind[p.kind] = list
		}
		n.pendingCount--
	}
}

// completeStart records the outcome of a gg back-request and wakes the gets
// that joined it. It returns the container's record, or the uuid of a
// duplicate the answering agent must terminate.
func (n *Network) completeStart(p *pending, cl *client, to AgentTarget, uuid ContainerUUID, ref string, callErr error) (rec ContainerRecord, dup ContainerUUID, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	defer close(p.done)
	n.unindexPendingLocked(p)

	switch {
	case callErr != nil:
		err = fmt.Errorf("Failed to get endpoint for container %s: %w", p.kind, callErr)
	case uuid == "":
		err = fmt.Errorf("Failed to get endpoint for container %s: agent %s answered without a container uuid", p.kind, to.Agent)
	}
	a := n.agents[to.Agent]
	if err == nil && a == nil {
		err = fmt.Errorf("Failed to get endpoint for container %s: agent %s went away while starting it", p.kind, to.Agent)
	}
	if err != nil {
		p.err = err
		return ContainerRecord{}, "", err
	}

	c := n.containers[uuid]
	switch {
	case c == nil:
		c = n.addContainerLocked(a, ContainerRecord{
			AgentID:   a.id,
			UUID:      uuid,
			Kind:      p.kind,
			Endpoint:  ref,
			LastVisit: n.nowMillis(),
			Labels:    p.opts.Labels,
			Extra:     p.opts.Extra,
		})
	case c.agent == a:
		// The agent reused a container it already has.
		if ref != "" && ref != c.rec.Endpoint {
			c.rec.Endpoint = ref
			n.events.addContainer(ContainerEvent{Container: c.rec, Event: EventUpdated})
		}
	default:
		dup = uuid
	}
	// The client may have gone (ClientGone) while we waited; then it gets no
	// reference, and a container nobody references is an orphan.
	if n.clients[cl.id] == cl {
		n.addRefLocked(cl, c)
	} else {
		n.orphanLocked(c)
	}
	p.uuid = c.rec.UUID
	return c.rec, dup, nil
}

// join waits for a pending start another get made and takes a reference to
// its container.
func (n *Network) join(ctx context.Context, cl *client, p *pending) (ContainerUUID, string, bool, error) {
	select {
	case <-p.done:
	case <-ctx.Done():
		return "", "", false, fmt.Errorf("get container of kind %s: waiting for a pending start: %w", p.kind, ctx.Err())
	}
	if p.err != nil {
		// A start cancelled by its own caller says nothing about ours:
		// start over.
		if errors.Is(p.err, context.Canceled) || errors.Is(p.err, context.DeadlineExceeded) {
			return "", "", true, p.err
		}
		return "", "", false, p.err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	c := n.containers[p.uuid]
	if c == nil {
		return "", "", true, fmt.Errorf("container %s vanished right after it started", p.uuid)
	}
	if n.clients[cl.id] == cl {
		n.addRefLocked(cl, c)
	}
	return c.rec.UUID, c.rec.Endpoint, false, nil
}

// ---- routing ----

// Route handles cs: the request goes to the container's agent (back-request
// cs) without holding the lock. The agent's error is returned as is, so the
// glue can relay its message and stack; an unknown container gives the
// reference's text "Container UUID not found" (errors.Is
// ErrContainerNotFound).
func (n *Network) Route(ctx context.Context, uuid ContainerUUID, op string, data json.RawMessage) (json.RawMessage, error) {
	n.mu.RLock()
	c := n.containers[uuid]
	if c == nil {
		n.mu.RUnlock()
		return nil, &notFoundError{uuid: uuid}
	}
	to := AgentTarget{Client: c.agent.host, Agent: c.agent.id}
	reachable := n.reachableLocked(c.agent)
	n.mu.RUnlock()
	if !reachable {
		n.unreachableRoutes.Add(1)
		return nil, &unreachableError{uuid: uuid, agent: to.Agent}
	}
	return n.caller.ContainerRequest(ctx, to, uuid, op, data)
}

// reachableLocked reports whether a's hosting client has a connection.
func (n *Network) reachableLocked(a *agent) bool {
	_, down := n.down[a.host]
	return !down
}

// RouteTarget returns where a request to the container goes, for a glue that
// wants to forward the raw bytes itself.
func (n *Network) RouteTarget(uuid ContainerUUID) (AgentTarget, bool) {
	n.mu.RLock()
	c := n.containers[uuid]
	if c == nil {
		n.mu.RUnlock()
		return AgentTarget{}, false
	}
	to := AgentTarget{Client: c.agent.host, Agent: c.agent.id}
	n.mu.RUnlock()
	return to, true
}

// ---- clients and liveness ----

// ClientSeen records that a client is alive (any message from it): the
// agents it hosts are alive too. Cheap enough to call for every message.
func (n *Network) ClientSeen(clientID ClientID) {
	n.mu.RLock()
	if h := n.hosted[clientID]; len(h) > 0 {
		now := n.clock.Now().UnixNano()
		for _, a := range h {
			a.lastSeen.Store(now)
		}
	}
	n.mu.RUnlock()
}

// SetClientAliveTimeout records the alive timeout a client asked for in its
// hello; the agents it hosts are then given that long (at least the
// network's own) before they are considered dead.
func (n *Network) SetClientAliveTimeout(clientID ClientID, d time.Duration) {
	n.mu.Lock()
	n.clientLocked(clientID).aliveTimeout = d
	n.mu.Unlock()
}

// ClientConnected records that a client has a session and a connection
// (its hello, also after a reconnect): the agents it hosts serve again,
// and they are its own until ClientGone.
func (n *Network) ClientConnected(clientID ClientID) {
	n.mu.Lock()
	n.live[clientID] = struct{}{}
	_, wasDown := n.down[clientID]
	delete(n.down, clientID)
	hosted := len(n.hosted[clientID])
	n.mu.Unlock()
	if wasDown && hosted > 0 {
		n.log.WithFields(logrus.Fields{"client": shortClient(clientID), "agents": hosted}).Info("client is back; its agents serve again")
	}
}

// ClientDisconnected records that a client's connection is gone while its
// session is kept (it may come back within its alive timeout): its agents
// are not chosen for new containers and requests to their containers fail
// at once. A container of its agents that another agent stands by for
// (stateless, HA) is removed now, so the standby takes it over without
// waiting for the alive timeout. It reports whether events were queued.
func (n *Network) ClientDisconnected(clientID ClientID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, live := n.live[clientID]; !live && len(n.hosted[clientID]) == 0 {
		return false
	}
	n.down[clientID] = n.clock.Now().UnixNano()
	h := n.hosted[clientID]
	if len(h) == 0 {
		return false
	}
	var moved []*container
	for _, a := range h {
		for _, c := range a.containers {
			for sid := range c.standbys {
				if sa := n.agents[sid]; sa != nil && sa != a && n.reachableLocked(sa) {
					moved = append(moved, c)
					break
				}
			}
		}
	}
	sortContainers(moved)
	for _, c := range moved {
		n.failovers.Add(1)
		n.log.WithFields(logrus.Fields{"container": c.rec.UUID, "agent": c.agent.id, "client": shortClient(clientID)}).
			Warn("the owner's connection is gone; the container is left to its standby")
		n.removeContainerLocked(c)
	}
	n.log.WithFields(logrus.Fields{"client": shortClient(clientID), "agents": len(h), "failovers": len(moved)}).
		Info("client connection lost; its agents get no work until it comes back")
	return len(moved) > 0
}

// ClientGone handles a client that closed or timed out: its references are
// released (containers left without any become orphans). The agents it
// hosted stay until their alive timeout expires, as in the reference: a
// client that comes back in time keeps them with its pings or re-registers
// them. Until then they are unreachable, and another session may register
// them. The server glue must call it for every session that ends, or the
// client's references are held forever.
func (n *Network) ClientGone(clientID ClientID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.live, clientID)
	if len(n.hosted[clientID]) > 0 {
		if _, already := n.down[clientID]; !already {
			n.down[clientID] = n.clock.Now().UnixNano()
		}
	} else {
		delete(n.down, clientID)
	}
	cl := n.clients[clientID]
	if cl == nil {
		return
	}
	uuids := make([]ContainerUUID, 0, len(cl.refs))
	for uuid := range cl.refs {
		uuids = append(uuids, uuid)
	}
	for _, uuid := range uuids {
		n.releaseLocked(cl, uuid)
	}
	delete(n.clients, clientID)
}

// Termination is an unused container the network has forgotten and whose
// agent must now be told to terminate it (back-request ct).
type Termination struct {
	To   AgentTarget
	UUID ContainerUUID
}

// Tick runs the periodic check and then the terminations it decided, one
// after the other, bounded by ctx, and returns the events: Sweep followed by
// Terminate. A server that must not hold its events back while agents answer
// calls those two itself.
func (n *Network) Tick(ctx context.Context) Event {
	ev, terms := n.Sweep()
	n.Terminate(ctx, terms)
	return ev
}

// Sweep runs the periodic check; the server calls it every check period (the
// alive timeout in the reference). It removes agents not seen within their
// alive timeout, with their containers, and forgets orphans older than the
// unused timeout, returning them for Terminate. It returns the merged batch of
// events queued since the previous Sweep (the orphans' removals included);
// nothing to broadcast when Empty. It performs no back-request.
func (n *Network) Sweep() (Event, []Termination) {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := n.clock.Now()
	var dead []*agent
	for _, a := range n.agents {
		timeout := n.aliveTimeout
		if cl := n.clients[a.host]; cl != nil && cl.aliveTimeout > timeout {
			timeout = cl.aliveTimeout
		}
		if now.Sub(time.Unix(0, a.lastSeen.Load())) > timeout {
			dead = append(dead, a)
		}
	}
	sort.Slice(dead, func(i, j int) bool { return dead[i].seq < dead[j].seq })
	for _, a := range dead {
		n.log.WithFields(logrus.Fields{"agent": a.id, "containers": len(a.containers)}).Warn("agent not seen within its alive timeout; removing it")
		n.removeAgentLocked(a)
	}

	var expired []*container
	for _, c := range n.orphans {
		if now.Sub(time.Unix(0, c.orphanSince)) > n.unusedTimeout {
			expired = append(expired, c)
		}
	}
	sortContainers(expired)
	var terms []Termination
	for _, c := range expired {
		terms = append(terms, Termination{To: AgentTarget{Client: c.agent.host, Agent: c.agent.id}, UUID: c.rec.UUID})
		n.removeContainerLocked(c)
	}
	return n.events.take(), terms
}

// Terminate tells the agents to terminate the containers Sweep forgot (ct),
// one after the other, until ctx ends. Failures are logged: the network has
// forgotten those containers either way.
func (n *Network) Terminate(ctx context.Context, terms []Termination) {
	for i, t := range terms {
		if err := ctx.Err(); err != nil {
			n.log.WithError(err).WithField("left", len(terms)-i).Warn("cancelled before every unused container was terminated")
			return
		}
		if err := n.caller.TerminateContainer(ctx, t.To, t.UUID); err != nil {
			n.log.WithError(err).WithFields(logrus.Fields{"agent": t.To.Agent, "container": t.UUID}).Warn("terminate unused container")
		}
	}
}

// Stats returns the network's counts.
func (n *Network) Stats() Stats {
	n.mu.RLock()
	defer n.mu.RUnlock()
	clients := len(n.hosted)
	for id, cl := range n.clients {
		if _, hosts := n.hosted[id]; len(cl.refs) > 0 && !hosts {
			clients++
		}
	}
	unreachable := 0
	for id := range n.down {
		unreachable += len(n.hosted[id])
	}
	return Stats{
		UnreachableAgents: unreachable,
		RefusedClaims:     n.refusedClaims.Load(),
		Failovers:         n.failovers.Load(),
		UnreachableRoutes: n.unreachableRoutes.Load(),
		Clients:           clients,
		Agents:            len(n.agents),
		Kinds:             len(n.kindAgents),
		Containers:        len(n.containers),
		Orphans:           len(n.orphans),
		References:        n.refCount,
		PendingStarts:     n.pendingCount,
	}
}

// ---- helpers ----

type noCaller struct{}

func (noCaller) GetContainer(context.Context, AgentTarget, string, GetOptions) (ContainerUUID, string, error) {
	return "", "", ErrNoCaller
}

func (noCaller) TerminateContainer(context.Context, AgentTarget, ContainerUUID) error {
	return ErrNoCaller
}

func (noCaller) ContainerRequest(context.Context, AgentTarget, ContainerUUID, string, json.RawMessage) (json.RawMessage, error) {
	return nil, ErrNoCaller
}

func sortContainers(cs []*container) {
	sort.Slice(cs, func(i, j int) bool { return cs[i].rec.UUID < cs[j].rec.UUID })
}

// containsAll reports whether have includes every label of want (an empty
// want matches anything).
func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func uniqueStrings(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
