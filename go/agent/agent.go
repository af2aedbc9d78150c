// Package agent serves containers to a huly network (PROTOCOL.md §5, §6):
// factories per kind, the back-requests of the network server (gg, cl, cs,
// ct), the agent's own endpoint server (cc, cd, cs) that clients connect
// to, and stateless (HA) containers that several agents declare with one
// uuid: the first to register serves it, the others keep it as a standby
// and claim it when the owner goes away.
//
// An Agent is hosted on a client.Client (Attach); one client can host
// several agents.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/network"
	"github.com/huly-net/huly-net/go/stream"
)

// Defaults of Options.
const (
	DefaultPort             = 3738
	DefaultReclaimDelay     = 100 * time.Millisecond
	DefaultStandbyCheck     = 5 * time.Second
	DefaultHealthInterval   = 10 * time.Second
	DefaultTerminateTimeout = 10 * time.Second
	DefaultDrainGrace       = 200 * time.Millisecond
)

// ErrClosed is returned by calls on a closed Agent.
var ErrClosed = errors.New("agent closed")

// Options configure an Agent.
type Options struct {
	// ID is the agent id; default a new UUID v4. Keep it across restarts
	// so that the network sees the same agent come back.
	ID string
	// Endpoint is the advertised "host:port" of the agent's endpoint
	// server, which clients connect to; port 0 advertises the port bound.
	// Empty: no endpoint server, requests are routed through the network
	// (a noconnect agent).
	Endpoint string
	// Listen is where the endpoint server binds; default "0.0.0.0:PORT"
	// with the port of Endpoint (3738 when it names none).
	Listen string
	// Labels are added to the labels of every container the agent starts.
	Labels []string
	// ReclaimDelay is how long after an event removes a stateless
	// container the agent re-registers to claim it; default 100 ms.
	ReclaimDelay time.Duration
	// StandbyCheck is how often an agent with standby containers
	// re-registers anyway, in case it missed the event; default 5 s.
	StandbyCheck time.Duration
	// HealthInterval is how often running containers are pinged; default
	// 10 s, negative disables it.
	HealthInterval time.Duration
	// TerminateTimeout bounds one container's Terminate; default 10 s.
	TerminateTimeout time.Duration
	// StatePublish says whether the agent registers again within one
	// network server session to publish the state of its containers;
	// default StatePublishAuto.
	StatePublish StatePublish
	// EndpointServer configures the endpoint server (alive timeout, ping
	// interval, transport limits).
	EndpointServer backrpc.ServerOptions
	// Logger defaults to a discarding logger.
	Logger logrus.FieldLogger
	// DrainGrace is how long a closing agent, once unregistered, keeps
	// serving what the network routed to it just before (a request the
	// network sent while handling our au arrives after its answer);
	// default 200 ms.
	DrainGrace time.Duration
	// Streams bounds the streamed answers the agent serves (open
	// streams, idle timeout); zero values take package stream's defaults.
	Streams stream.Options
	// Capacity is how many containers of a kind the agent can hold (its
	// max_instances), reported in the registration so that the network
	// places no more there; kinds not listed have no limit.
	Capacity map[string]int
}

// StatePublish is Options.StatePublish.
type StatePublish int

const (
	// StatePublishAuto publishes state where the network server
	// announces backrpc.CapStatePublish in its hello answer. A server that
	// does not (a TypeScript 0.7 server) detaches the containers an agent
	// already hosted when it registers again (PROTOCOL.md §10), so that
	// they outlive the agent there as ghosts; with such a server the agent
	// registers the way a TS agent does, once per server session with all
	// its containers.
	StatePublishAuto StatePublish = iota
	// StatePublishOn publishes state whatever the server announces: for a
	// Go network server that predates capabilities.
	StatePublishOn
	// StatePublishOff registers once per server session with any server.
	StatePublishOff
)

// kickReason says why a registration is scheduled; with a server that takes
// one registration per session the reason decides whether it is sent.
type kickReason uint8

const (
	// kickPublish: the state of a container changed (started, endpoint,
	// labels, status, dropped). Sent only where state is published.
	kickPublish kickReason = 1 << iota
	// kickClaim: a stateless container may be claimed (its owner is
	// gone), or one that failed must be unlisted. Once per session it is
	// sent only while the agent hosts nothing a registration would detach.
	kickClaim
	// kickRejoin: the network may have forgotten the agent (it announced
	// the agent removed). Once per session it is sent only when the
	// network does not list the agent.
	kickRejoin
)

type state int

const (
	stateStarting state = iota
	stateRunning
	stateStandby // a stateless container another agent serves
)

func (s state) String() string {
	switch s {
	case stateStarting:
		return "starting"
	case stateRunning:
		return "running"
	case stateStandby:
		return "standby"
	}
	return "unknown"
}

type entry struct {
	uuid      string
	kind      string
	labels    []string
	extra     json.RawMessage
	stateless bool
	factory   Factory
	endpoint  string
	lastVisit int64

	state      state
	c          Container
	ready      chan struct{} // closed when the current start ends
	err        error         // of the last start
	failedAt   time.Time     // a stateless start failed: not registered for a while
	clients    map[string]struct{}
	generation int // bumps at every start and stop, so a late start can tell
	// ownedElsewhere: a standby whose owner the network named in the
	// answer to our last registration; the removal event of the container
	// (or a lost connection, which may have lost that event) ends it.
	ownedElsewhere bool
}

// ContainerInfo describes a container the agent knows.
type ContainerInfo struct {
	UUID      string
	Kind      string
	Labels    []string
	Stateless bool
	// State is "starting", "running" or "standby".
	State   string
	Clients int
}

// Agent serves containers. Create it with New, add kinds with Register and
// stateless containers with AddStateless, then Attach it to a client.
type Agent struct {
	opts      Options
	log       logrus.FieldLogger
	id        string
	ref       string // the agent's endpoint reference
	parsedRef network.EndpointRef
	srv       *backrpc.Server

	ctx     context.Context
	cancel  context.CancelFunc
	workers sync.WaitGroup
	regSeq  uint64 // guarded by mu: registrations sent
	regDone uint64 // guarded by mu: the newest registration applied
	// regs counts registrations (ar) in flight; Close waits for them
	// before it unregisters, or an ar the server handles after our au
	// would register the agent again on a client that no longer hosts
	// it (and, pinged by that client, it would never time out).
	regs sync.WaitGroup
	// reqs counts the container requests being served (drain.go).
	reqs requestTracker
	// streams are the streamed answers being read (stream.go).
	streams streams

	mu        sync.Mutex
	closed    bool
	c         *client.Client
	detach    []func()
	factories map[string]Factory
	kinds     []string
	entries   map[string]*entry
	subs      map[string]map[string]struct{} // endpoint client id → container uuids
	kickTimer *time.Timer
	vouches   vouchTable // keys the network vouched for (vouch.go)
	kickWhy   kickReason // reasons of the scheduled registration
	kicks     int        // scheduled registrations fired and still running
	regFailed bool       // the last scheduled registration failed (logged once)
	// standbyChecks counts the rounds of standbyLoop.
	standbyChecks int

	// Registration once per server session (a server without
	// CapStatePublish): regSem serializes those registrations, regWant is
	// the newest session one waits for, regHolder the one running (a
	// registration for a newer session cancels it), regSession the
	// session of the last registration sent, skipLogged the session whose
	// skipped re-registrations were logged.
	regSem     chan struct{}
	regWant    uint64
	regHolder  *regHold
	regSession uint64
	skipLogged uint64
}

type regHold struct {
	seq    uint64
	cancel context.CancelFunc
}

// New creates an agent and, when it has an Endpoint, binds its endpoint
// server.
func New(opts Options) (*Agent, error) {
	if opts.ID == "" {
		opts.ID = uuid.NewString()
	}
	if opts.Logger == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		opts.Logger = l
	}
	if opts.ReclaimDelay <= 0 {
		opts.ReclaimDelay = DefaultReclaimDelay
	}
	if opts.StandbyCheck <= 0 {
		opts.StandbyCheck = DefaultStandbyCheck
	}
	if opts.HealthInterval == 0 {
		opts.HealthInterval = DefaultHealthInterval
	}
	if opts.TerminateTimeout <= 0 {
		opts.TerminateTimeout = DefaultTerminateTimeout
	}
	if opts.DrainGrace <= 0 {
		opts.DrainGrace = DefaultDrainGrace
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &Agent{
		opts:      opts,
		log:       opts.Logger.WithField("agent", opts.ID),
		id:        opts.ID,
		ctx:       ctx,
		cancel:    cancel,
		factories: map[string]Factory{},
		entries:   map[string]*entry{},
		subs:      map[string]map[string]struct{}{},
		regSem:    make(chan struct{}, 1),
	}
	if opts.Endpoint == "" {
		if opts.Listen != "" {
			cancel()
			return nil, errors.New("agent: Listen needs an Endpoint to advertise")
		}
		a.ref = network.AgentNoConnectRef(network.AgentID(a.id))
	} else if err := a.listen(); err != nil {
		cancel()
		return nil, err
	}
	pr, err := network.ParseEndpointRef(a.ref)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("agent: own endpoint reference: %w", err)
	}
	a.parsedRef = pr
	return a, nil
}

func (a *Agent) listen() error {
	host, port, err := splitEndpoint(a.opts.Endpoint)
	if err != nil {
		return err
	}
	listen := a.opts.Listen
	if listen == "" {
		listen = net.JoinHostPort("0.0.0.0", strconv.Itoa(port))
	}
	so := a.opts.EndpointServer
	if so.Logger == nil {
		so.Logger = a.opts.Logger
	}
	so.Capabilities = append(slices.Clone(so.Capabilities), backrpc.CapStream)
	so.Transport = a.endpointTransport(so.Transport)
	a.srv = backrpc.NewServer(so, backrpc.ServerHandler{
		HandleRequest:   a.handleEndpoint,
		OnClientClosed:  a.endpointClientGone,
		OnClientTimeout: a.endpointClientGone,
	})
	if err := a.srv.Listen(listen); err != nil {
		return fmt.Errorf("agent endpoint: %w", err)
	}
	if port == 0 {
		if ta, ok := a.srv.Addr().(*net.TCPAddr); ok {
			port = ta.Port
		}
	}
	a.ref = network.AgentDirectRef(host, port, network.AgentID(a.id))
	return nil
}

// splitEndpoint reads "host:port" or "host" (port 3738).
func splitEndpoint(ep string) (string, int, error) {
	host, p, err := net.SplitHostPort(ep)
	if err != nil {
		// No port: the whole string is the host.
		if _, _, err2 := net.SplitHostPort(ep + ":0"); err2 != nil {
			return "", 0, fmt.Errorf("agent: bad endpoint %q: %w", ep, err)
		}
		return ep, DefaultPort, nil
	}
	if host == "" {
		return "", 0, fmt.Errorf("agent: endpoint %q has no host to advertise", ep)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("agent: bad endpoint port in %q", ep)
	}
	return host, port, nil
}

// ID is the agent id.
func (a *Agent) ID() string { return a.id }

// AgentID is ID, for client.AgentHost.
func (a *Agent) AgentID() string { return a.id }

// EndpointRef is the agent's endpoint reference string as registered.
func (a *Agent) EndpointRef() string { return a.ref }

// Addr is the endpoint server's bound address; nil without an endpoint.
func (a *Agent) Addr() net.Addr {
	if a.srv == nil {
		return nil
	}
	return a.srv.Addr()
}

// EndpointClients is the number of client sessions on the endpoint server.
func (a *Agent) EndpointClients() int {
	if a.srv == nil {
		return 0
	}
	return a.srv.Stats().Clients
}

// Register makes the agent offer kind, started by f. Kinds registered after
// Attach are announced at the next registration.
func (a *Agent) Register(kind string, f Factory) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.factories[kind]; !ok {
		a.kinds = append(a.kinds, kind)
	}
	a.factories[kind] = f
}

// AddStateless declares a stateless (HA) container: a fixed uuid that
// several agents may declare. Whichever registers it first serves it; the
// others keep it as a standby and claim it, about ReclaimDelay after an
// event removes it, when its owner goes away. f starts it (kind need not be
// offered with Register: an HA agent usually offers no kind).
func (a *Agent) AddStateless(kind, uuid string, labels []string, f Factory) error {
	if kind == "" || uuid == "" || f == nil {
		return errors.New("agent: stateless container needs a kind, a uuid and a factory")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	if _, dup := a.entries[uuid]; dup {
		return fmt.Errorf("agent: container %s already declared", uuid)
	}
	e := &entry{
		uuid: uuid, kind: kind, labels: mergeLabels(labels, a.opts.Labels),
		stateless: true, factory: f, state: stateStandby,
		ready: make(chan struct{}), clients: map[string]struct{}{},
	}
	e.endpoint = a.containerRef(uuid, nil)
	a.entries[uuid] = e
	if a.c != nil {
		a.kickLocked(0, kickClaim)
	}
	return nil
}

func (a *Agent) containerRef(uuid string, c Container) string {
	// A secured agent hands out its own endpoint, where the network's
	// vouches apply; programs' endpoints then admit only the agent.
	if d, ok := c.(DirectEndpoint); ok && !a.secured() {
		host, port := d.DirectEndpoint()
		return network.ContainerDirectRef(host, port, network.ContainerUUID(uuid), network.AgentID(a.id))
	}
	return network.ContainerOnAgentRef(a.parsedRef, network.ContainerUUID(uuid))
}

func mergeLabels(a, b []string) []string {
	out := slices.Clone(a)
	for _, l := range b {
		if !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out
}

// Containers lists the containers the agent knows, by uuid.
func (a *Agent) Containers() []ContainerInfo {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]ContainerInfo, 0, len(a.entries))
	for _, e := range a.entries {
		out = append(out, ContainerInfo{
			UUID: e.uuid, Kind: e.kind, Labels: slices.Clone(e.labels),
			Stateless: e.stateless, State: e.state.String(), Clients: len(e.clients),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UUID < out[j].UUID })
	return out
}

// Attach hosts the agent on c and registers it (ar); it returns once the
// network has answered, or with ctx's error. The agent registers again by
// itself after every change of network server.
func (a *Agent) Attach(ctx context.Context, c *client.Client) error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return ErrClosed
	}
	if a.c != nil {
		a.mu.Unlock()
		return errors.New("agent: already attached")
	}
	a.c = c
	a.mu.Unlock()

	unhost, err := c.Host(a)
	if err != nil {
		a.mu.Lock()
		a.c = nil
		a.mu.Unlock()
		return fmt.Errorf("attach agent %s: %w", a.id, err)
	}
	unsub := c.OnEvent(a.onNetworkEvent)
	a.mu.Lock()
	a.detach = append(a.detach, unhost, unsub)
	a.mu.Unlock()
	a.goWorker(a.standbyLoop)
	if a.opts.HealthInterval > 0 {
		a.goWorker(a.healthLoop)
	}
	if err := a.RegisterWithNetwork(ctx); err != nil {
		return fmt.Errorf("attach agent %s: %w", a.id, err)
	}
	return nil
}

func (a *Agent) goWorker(fn func()) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false
	}
	a.workers.Add(1)
	go func() {
		defer a.workers.Done()
		fn()
	}()
	return true
}

func (a *Agent) client() *client.Client {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.c
}

// registration builds the ar params: every container started or starting,
// and every stateless one (standbys included, so that the network hands
// them over when their owner is gone), except stateless ones whose last
// start failed recently.
func (a *Agent) registration() (network.AgentRegistration, uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.regSeq++
	reg := network.AgentRegistration{
		UUID:       network.AgentID(a.id),
		Kinds:      slices.Clone(a.kinds),
		Containers: make([]network.ContainerRecord, 0, len(a.entries)),
	}
	if a.parsedRef.Kind != network.RefNoConnect {
		reg.Endpoint = a.ref
	}
	reg.Capacity = a.opts.Capacity
	now := time.Now()
	for _, e := range a.entries {
		if e.stateless && !e.failedAt.IsZero() && now.Sub(e.failedAt) < a.opts.StandbyCheck {
			continue
		}
		extra, listed := recordLocked(e)
		if !listed {
			continue
		}
		reg.Containers = append(reg.Containers, network.ContainerRecord{
			AgentID:   network.AgentID(a.id),
			UUID:      network.ContainerUUID(e.uuid),
			Kind:      e.kind,
			Endpoint:  e.endpoint,
			LastVisit: e.lastVisit,
			Labels:    e.labels,
			Extra:     extra,
		})
	}
	sort.Slice(reg.Containers, func(i, j int) bool { return reg.Containers[i].UUID < reg.Containers[j].UUID })
	return reg, a.regSeq
}

// RegisterWithNetwork registers the agent with the network (ar) and applies the
// answer: containers another agent owns are stopped (stateless ones become
// standbys), stateless standbys the network gave us are started. With a
// server that does not announce state publishing (see StatePublishAuto) it
// registers once per server session: called again within the session (the
// client's check after a long disconnection), it registers only when the
// network no longer lists the agent.
func (a *Agent) RegisterWithNetwork(ctx context.Context) error {
	c := a.client()
	if c == nil {
		return errors.New("agent: not attached")
	}
	if a.opts.StatePublish != StatePublishOn {
		// What the server announced decides how we register.
		if err := c.WaitConnected(ctx); err != nil {
			return fmt.Errorf("register agent %s: %w", a.id, err)
		}
	}
	if a.publishes(c) {
		return a.register(ctx, c)
	}
	return a.registerOnce(ctx, c, kickRejoin)
}

// publishes reports whether the agent registers again to publish state in
// c's current server session.
func (a *Agent) publishes(c *client.Client) bool {
	switch a.opts.StatePublish {
	case StatePublishOn:
		return true
	case StatePublishOff:
		return false
	}
	return c.ServerHello().Has(backrpc.CapStatePublish)
}

// register sends a registration and applies its answer.
func (a *Agent) register(ctx context.Context, c *client.Client) error {
	// No lock is held across the call: after a server change the
	// re-registration must not wait for an ar still pending at the old
	// server (it is resent only after the re-registration).
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return fmt.Errorf("register agent %s: %w", a.id, ErrClosed)
	}
	a.regs.Add(1)
	a.mu.Unlock()
	defer a.regs.Done()
	reg, seq := a.registration()
	res, err := c.Call(ctx, "ar", reg)
	if err != nil {
		return fmt.Errorf("register agent %s: %w", a.id, err)
	}
	var term []string
	if err := json.Unmarshal(res, &term); err != nil {
		return fmt.Errorf("register agent %s: answer %.200s: %w", a.id, res, err)
	}
	a.log.WithFields(logrus.Fields{"containers": len(reg.Containers), "terminate": len(term)}).Debug("registered with the network")
	listed := make(map[string]bool, len(reg.Containers))
	for _, r := range reg.Containers {
		listed[string(r.UUID)] = true
	}
	a.apply(seq, listed, term)
	return nil
}

// registerOnce registers with a server that takes one registration per
// session: the first of a session is sent; a later one only when it cannot
// detach containers the server tied to the agent: for why kickRejoin when
// the network no longer lists the agent, for kickClaim while the agent
// hosts no container; kickPublish alone is never sent.
func (a *Agent) registerOnce(ctx context.Context, c *client.Client, why kickReason) error {
	sess := c.Session()
	if sess.Seq == 0 {
		return nil // no session yet: its first hello answer registers us
	}
	rctx, release, ok, err := a.lockRegistration(ctx, sess.Seq)
	if err != nil || !ok {
		return err
	}
	defer release()
	if why == kickClaim && !a.claimable() {
		return nil // the answer to a registration meanwhile named the owners
	}
	a.mu.Lock()
	first := a.regSession != sess.Seq
	a.mu.Unlock()
	if first {
		a.log.WithField("server_id", sess.ServerID).Debug("network server does not announce state publishing: registering once per server session")
	} else {
		send, reason, err := a.reregisterHarmless(rctx, c, why)
		if err != nil {
			if rctx.Err() != nil && ctx.Err() == nil {
				return nil // a newer session registers instead
			}
			return fmt.Errorf("register agent %s: %w", a.id, err)
		}
		if !send {
			a.mu.Lock()
			log := a.skipLogged != sess.Seq
			a.skipLogged = sess.Seq
			a.mu.Unlock()
			if log {
				a.log.WithFields(logrus.Fields{"server_id": sess.ServerID, "reason": reason}).
					Debug("not registering again in this server session: the server would detach our containers")
			}
			return nil
		}
	}
	a.mu.Lock()
	a.regSession = sess.Seq
	a.mu.Unlock()
	err = a.register(rctx, c)
	if err != nil && rctx.Err() != nil && ctx.Err() == nil {
		return nil // a newer session registers instead
	}
	return err
}

// reregisterHarmless says whether a second registration in this session
// detaches nothing (see registerOnce), and if not, why.
func (a *Agent) reregisterHarmless(ctx context.Context, c *client.Client, why kickReason) (bool, string, error) {
	if why&kickRejoin != 0 {
		agents, err := c.Agents(ctx)
		if err != nil {
			return false, "", err
		}
		for _, ag := range agents {
			if string(ag.AgentID) == a.id {
				return false, "the network lists the agent", nil
			}
		}
		return true, "", nil
	}
	if why&kickClaim != 0 {
		a.mu.Lock()
		defer a.mu.Unlock()
		for _, e := range a.entries {
			if e.state != stateStandby {
				return false, "a stateless container cannot be claimed while the agent serves others", nil
			}
		}
		return true, "", nil
	}
	return false, "state publishing is off", nil
}

// lockRegistration serializes once-per-session registrations. A
// registration for a newer session cancels the one running (its request
// would otherwise be resent to the new server after ours) and goes first;
// ok is false for a registration a newer session superseded.
func (a *Agent) lockRegistration(ctx context.Context, seq uint64) (context.Context, func(), bool, error) {
	a.mu.Lock()
	if seq > a.regWant {
		a.regWant = seq
	}
	if h := a.regHolder; h != nil && h.seq < seq {
		h.cancel()
	}
	a.mu.Unlock()
	select {
	case a.regSem <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, false, fmt.Errorf("register agent %s: %w", a.id, ctx.Err())
	}
	a.mu.Lock()
	if a.regWant > seq {
		a.mu.Unlock()
		<-a.regSem
		return nil, nil, false, nil
	}
	rctx, cancel := context.WithCancel(ctx)
	h := &regHold{seq: seq, cancel: cancel}
	a.regHolder = h
	a.mu.Unlock()
	return rctx, func() {
		a.mu.Lock()
		if a.regHolder == h {
			a.regHolder = nil
		}
		a.mu.Unlock()
		cancel()
		<-a.regSem
	}, true, nil
}

// apply acts on the answer to registration seq; answers older than one
// already applied are stale and ignored.
func (a *Agent) apply(seq uint64, listed map[string]bool, terminate []string) {
	term := make(map[string]bool, len(terminate))
	for _, u := range terminate {
		term[u] = true
	}
	var stop []*entry
	var start []*entry
	var stopped []Container
	a.mu.Lock()
	if a.closed || seq < a.regDone {
		a.mu.Unlock()
		return
	}
	a.regDone = seq
	for _, e := range a.entries {
		switch {
		case term[e.uuid] && e.stateless:
			e.ownedElsewhere = true
			if e.state != stateStandby {
				a.log.WithField("container", e.uuid).Info("stateless container served by another agent; standing by")
				if e.c != nil {
					stopped = append(stopped, e.c)
				}
				a.toStandbyLocked(e)
			}
		case term[e.uuid]:
			a.log.WithField("container", e.uuid).Info("container owned by another agent; terminating our copy")
			stop = append(stop, e)
			a.forgetLocked(e)
		case e.stateless && e.state == stateStandby && listed[e.uuid]:
			e.ownedElsewhere = false
			a.log.WithField("container", e.uuid).Info("claimed stateless container")
			a.beginStartLocked(e)
			start = append(start, e)
		}
	}
	a.mu.Unlock()
	for _, e := range stop {
		if e.c != nil {
			stopped = append(stopped, e.c)
		}
	}
	for _, c := range stopped {
		a.terminateAsync(c)
	}
	for _, e := range start {
		gen := e.generation
		a.goWorker(func() { a.start(a.ctx, e, gen) })
	}
}

func (a *Agent) toStandbyLocked(e *entry) {
	e.c = nil
	e.state = stateStandby
	e.generation++
	e.err = errors.New("container " + e.uuid + " is served by another agent")
	select {
	case <-e.ready:
	default:
		close(e.ready)
	}
	a.dropClientsLocked(e)
}

func (a *Agent) forgetLocked(e *entry) {
	if a.entries[e.uuid] == e {
		delete(a.entries, e.uuid)
	}
	e.generation++
	if e.err == nil {
		e.err = errors.New("container " + e.uuid + " terminated")
	}
	select {
	case <-e.ready:
	default:
		close(e.ready)
	}
	a.dropClientsLocked(e)
}

func (a *Agent) dropClientsLocked(e *entry) {
	for cid := range e.clients {
		if s := a.subs[cid]; s != nil {
			delete(s, e.uuid)
			if len(s) == 0 {
				delete(a.subs, cid)
			}
		}
	}
	e.clients = map[string]struct{}{}
}

func (a *Agent) beginStartLocked(e *entry) {
	e.state = stateStarting
	e.err = nil
	e.generation++
	e.ready = make(chan struct{})
}

// start runs the factory of e (outside the lock) and records the outcome,
// unless e was stopped or restarted meanwhile.
func (a *Agent) start(ctx context.Context, e *entry, gen int) {
	c, err := e.factory(ctx, e.uuid, network.GetOptions{
		UUID:   network.ContainerUUID(e.uuid),
		Labels: e.labels,
		Extra:  e.extra,
	})
	a.mu.Lock()
	if e.generation != gen || a.closed {
		a.mu.Unlock()
		if c != nil {
			a.terminateAsync(c)
		}
		return
	}
	if err != nil {
		e.err = fmt.Errorf("start container %s of kind %s: %w", e.uuid, e.kind, err)
		if e.stateless && !e.failedAt.IsZero() {
			// Retried at every standby check: said at warning once.
			a.log.WithError(err).WithField("container", e.uuid).Debug("container failed to start again")
		} else {
			a.log.WithError(err).WithField("container", e.uuid).Warn("container failed to start")
		}
		if e.stateless {
			e.state = stateStandby
			e.failedAt = time.Now()
			close(e.ready)
			a.kickLocked(a.opts.ReclaimDelay, kickClaim) // unlist it, so another agent can serve it
		} else {
			a.forgetLocked(e)
		}
		a.mu.Unlock()
		return
	}
	e.c = c
	e.state = stateRunning
	e.failedAt = time.Time{}
	e.lastVisit = time.Now().UnixMilli()
	if ep := a.containerRef(e.uuid, c); ep != e.endpoint {
		e.endpoint = ep
		a.kickLocked(0, kickPublish) // announce the direct endpoint
	} else if _, ok := c.(StatusReporter); ok {
		// Announce its state, after the network has recorded the answer
		// to the get that started it (which carries no state).
		a.kickLocked(a.opts.ReclaimDelay, kickPublish)
	}
	close(e.ready)
	a.mu.Unlock()
}

func (a *Agent) terminateAsync(c Container) {
	run := func() {
		ctx, cancel := context.WithTimeout(context.Background(), a.opts.TerminateTimeout)
		defer cancel()
		if err := c.Terminate(ctx); err != nil {
			a.log.WithError(err).Warn("terminate container")
		}
	}
	if !a.goWorker(run) {
		run()
	}
}

// kickLocked schedules a registration after delay (coalescing requests).
func (a *Agent) kickLocked(delay time.Duration, why kickReason) {
	if a.closed || a.c == nil {
		return
	}
	a.kickWhy |= why
	if a.kickTimer != nil {
		return
	}
	a.kickTimer = time.AfterFunc(delay, func() {
		a.mu.Lock()
		a.kickTimer = nil
		why := a.kickWhy
		a.kickWhy = 0
		a.kicks++
		a.mu.Unlock()
		done := func() {
			a.mu.Lock()
			a.kicks--
			a.mu.Unlock()
		}
		if !a.goWorker(func() {
			defer done()
			ctx, cancel := context.WithTimeout(a.ctx, a.opts.StandbyCheck)
			defer cancel()
			a.kicked(ctx, why)
		}) {
			done()
		}
	})
}

// kicked runs a scheduled registration. A failure is logged at warning
// once, then at debug until a registration succeeds again.
func (a *Agent) kicked(ctx context.Context, why kickReason) {
	c := a.client()
	if c == nil {
		return
	}
	var err error
	if a.publishes(c) {
		if why == kickClaim && !a.claimable() {
			return // the answer to a registration meanwhile named the owners
		}
		err = a.register(ctx, c)
	} else {
		err = a.registerOnce(ctx, c, why)
	}
	if a.ctx.Err() != nil {
		return
	}
	a.mu.Lock()
	was := a.regFailed
	a.regFailed = err != nil
	a.mu.Unlock()
	switch {
	case err != nil && !was:
		a.log.WithError(err).Warn("register agent")
	case err != nil:
		a.log.WithError(err).Debug("register agent")
	case was:
		a.log.Info("registered with the network again")
	}
}

// onNetworkEvent claims stateless containers whose removal is announced:
// their owner is gone (or the network forgot us), so register again.
func (a *Agent) onNetworkEvent(ev network.Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, ce := range ev.Containers {
		if ce.Event != network.EventRemoved {
			continue
		}
		if e := a.entries[string(ce.Container.UUID)]; e != nil && e.stateless {
			e.ownedElsewhere = false
			a.kickLocked(a.opts.ReclaimDelay, kickClaim)
		}
	}
	for _, ae := range ev.Agents {
		if ae.Event == network.EventRemoved && string(ae.ID) == a.id {
			// We are alive: whoever removed us was wrong.
			a.kickLocked(a.opts.ReclaimDelay, kickRejoin)
			return
		}
	}
}

var _ client.AgentReconnectHandler = (*Agent)(nil)

// AgentReconnected is told by the client of a reconnection within the same
// server session. While our connection was lost the network may have handed
// a stateless container we serve to its standby (and announced it while we
// could not hear it): registering again, we learn it from the answer and
// stand by. The handover at a lost connection is done by servers that
// publish state; a server that takes one registration per session is not
// sent this one (kickPublish).
func (a *Agent) AgentReconnected(context.Context) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range a.entries {
		if e.stateless && e.state != stateStandby {
			a.kickLocked(0, kickPublish)
			return
		}
	}
}

// claimable reports whether a stateless standby's owner is not known.
func (a *Agent) claimable() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range a.entries {
		if e.stateless && e.state == stateStandby && !e.ownedElsewhere {
			return true
		}
	}
	return false
}

// standbyLoop registers again, every StandbyCheck, while a stateless
// standby may be claimable: its owner is not known (a start of ours
// failed, or it was released), or the connection to the network was lost
// meanwhile (and with it, maybe, the event that announced the owner gone).
// A standby whose owner the network named stays quiet: the owner's removal
// event claims it.
func (a *Agent) standbyLoop() {
	t := time.NewTicker(a.opts.StandbyCheck)
	defer t.Stop()
	var lastConns uint64
	if c := a.client(); c != nil {
		lastConns = c.Connections()
	}
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-t.C:
		}
		c := a.client()
		if c == nil {
			continue
		}
		conns := c.Connections()
		reconnected := lastConns != 0 && conns != lastConns
		lastConns = conns
		a.mu.Lock()
		claim := false
		for _, e := range a.entries {
			if !e.stateless || e.state != stateStandby {
				continue
			}
			if reconnected {
				e.ownedElsewhere = false // its removal may have been lost
			}
			if !e.ownedElsewhere {
				claim = true
			}
		}
		if claim {
			a.kickLocked(0, kickClaim)
		}
		a.standbyChecks++
		a.mu.Unlock()
	}
}

func (a *Agent) healthLoop() {
	t := time.NewTicker(a.opts.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-t.C:
		}
		a.checkHealth()
	}
}

func (a *Agent) checkHealth() {
	type probe struct {
		e   *entry
		c   Container
		gen int
	}
	a.mu.Lock()
	probes := make([]probe, 0, len(a.entries))
	for _, e := range a.entries {
		if e.state == stateRunning && e.c != nil {
			probes = append(probes, probe{e, e.c, e.generation})
		}
	}
	a.mu.Unlock()
	for _, p := range probes {
		ctx, cancel := context.WithTimeout(a.ctx, a.opts.HealthInterval)
		err := p.c.Ping(ctx)
		cancel()
		if err == nil || a.ctx.Err() != nil {
			continue
		}
		a.log.WithError(err).WithField("container", p.e.uuid).Warn("container failed its ping; dropping it")
		a.mu.Lock()
		if p.e.generation != p.gen {
			a.mu.Unlock()
			continue
		}
		if p.e.stateless {
			// Still ours: start it again.
			a.beginStartLocked(p.e)
			gen := p.e.generation
			a.mu.Unlock()
			a.terminateAsync(p.c)
			a.goWorker(func() { a.start(a.ctx, p.e, gen) })
			continue
		}
		a.forgetLocked(p.e)
		a.kickLocked(0, kickPublish) // the network drops it and tells the holders
		a.mu.Unlock()
		a.terminateAsync(p.c)
	}
}

// unregisterTimeout bounds the au request of Close.
const unregisterTimeout = 2 * time.Second

// Close stops the agent, draining it first: it unregisters (au) when the
// network is reachable, so that no new container is placed here and the
// holders of its containers follow them elsewhere, while the requests
// already sent here are still served; then it waits for the requests in
// flight (at most TerminateTimeout), terminates the containers and stops
// the endpoint server. Bounded by ctx.
func (a *Agent) Close(ctx context.Context) error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	if a.kickTimer != nil {
		a.kickTimer.Stop()
		a.kickTimer = nil
	}
	c := a.c
	detach := a.detach
	a.detach = nil
	a.mu.Unlock()
	// Let a registration already sent be answered before the au below
	// (the server handles one client's requests concurrently, so only
	// waiting for the answer orders them); its own deadline bounds it.
	regsDone := make(chan struct{})
	go func() { a.regs.Wait(); close(regsDone) }()
	select {
	case <-regsDone:
	case <-ctx.Done():
	}
	var errs []error
	if err := a.unregister(ctx, c); err != nil {
		errs = append(errs, err)
	} else {
		a.drainGrace(ctx)
	}
	a.mu.Lock()
	var running []Container
	for _, e := range a.entries {
		if e.c != nil {
			running = append(running, e.c)
		}
		a.forgetLocked(e)
	}
	a.mu.Unlock()
	a.finishRequests(ctx)
	a.cancel()

	var wg sync.WaitGroup
	var emu sync.Mutex
	for _, ct := range running {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tctx, cancel := context.WithTimeout(ctx, a.opts.TerminateTimeout)
			defer cancel()
			if err := ct.Terminate(tctx); err != nil {
				emu.Lock()
				errs = append(errs, fmt.Errorf("terminate container: %w", err))
				emu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, f := range detach {
		f()
	}
	if a.srv != nil {
		if err := a.srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop agent endpoint: %w", err))
		}
	}
	done := make(chan struct{})
	go func() { a.workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("close agent %s: background work still running: %w", a.id, ctx.Err()))
	}
	return errors.Join(errs...)
}
