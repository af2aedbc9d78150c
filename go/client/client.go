// Package client is the Go client of a huly network (PROTOCOL.md §2, §4,
// §6, §8): it lists agents, kinds and containers, gets containers and holds
// references to them, routes requests to containers through the network or
// over a connection to their agent or their own endpoint, delivers network
// and container events, and hosts agents (package agent) on its session.
//
// A Client survives network server restarts: it reconnects by itself,
// re-registers the agents it hosts, re-gets the containers it holds
// references to (following them when their uuid or endpoint changes) and
// resends the requests that were waiting for an answer.
//
//	c, err := client.Dial("127.0.0.1:3737")
//	defer c.Close(context.Background())
//	ref, err := c.Get(ctx, "echo", client.GetOptions{})
//	res, err := ref.Request(ctx, "echo", map[string]any{"hello": "world"})
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/huly-net/huly-net/go/internal/jsonsplit"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/network"
)

// GetOptions are the options of Get: a container uuid to get (or start)
// exactly, labels the container must carry, and extra data for a container
// that is started.
type GetOptions = network.GetOptions

// RemoteError is an error answered by the network, an agent or a container;
// errors.As finds it in the errors of every request.
type RemoteError = backrpc.RemoteError

// ErrClosed is returned by calls on a closed Client or Connection, and by
// requests still waiting when it closed. It is backrpc's error (with the
// reference's wording, "Client closed"), so errors.Is matches either way.
var ErrClosed = backrpc.ErrClientClosed

// Defaults of the options.
const (
	DefaultRetryTick        = 500 * time.Millisecond
	DefaultMaxGetWait       = 5 * time.Second
	DefaultCloseTimeout     = 3 * time.Second
	DefaultReacquireTimeout = 5 * time.Second
	DefaultEventBuffer      = 256
)

type options struct {
	clientID         string
	aliveTimeout     time.Duration
	pingInterval     time.Duration
	retryTick        time.Duration
	maxGetWait       time.Duration
	closeTimeout     time.Duration
	reacquireTimeout time.Duration
	eventBuffer      int
	logger           logrus.FieldLogger
	capabilities     []string
	capsSet          bool
	curve            *curveKeys // security.go
}

// Option configures Dial.
type Option func(*options)

// WithClientID sets the client id announced in hello (default a new UUID
// v4). Request ids are derived from it.
func WithClientID(id string) Option { return func(o *options) { o.clientID = id } }

// WithAliveTimeout sets how long the server keeps this client (and the
// agents it hosts) without hearing from it; default 3 s. A development
// client that stops in a debugger may ask for an hour.
func WithAliveTimeout(d time.Duration) Option { return func(o *options) { o.aliveTimeout = d } }

// WithPingInterval sets how often the client pings; default 1 s. Keep it
// well under the alive timeout.
func WithPingInterval(d time.Duration) Option { return func(o *options) { o.pingInterval = d } }

// WithLogger sets the logger; default a discarding one.
func WithLogger(l logrus.FieldLogger) Option { return func(o *options) { o.logger = l } }

// WithRetryTick sets the unit of Get's growing waits (1, 2, 3 … ticks) and
// of a retry answer's wait; default 500 ms.
func WithRetryTick(d time.Duration) Option { return func(o *options) { o.retryTick = d } }

// WithMaxGetWait caps one wait between Get attempts; default 5 s.
func WithMaxGetWait(d time.Duration) Option { return func(o *options) { o.maxGetWait = d } }

// WithCloseTimeout bounds Close when its ctx has a later deadline (or
// none); default 3 s.
func WithCloseTimeout(d time.Duration) Option { return func(o *options) { o.closeTimeout = d } }

// WithReacquireTimeout bounds how long, after a server restart, requests
// that were waiting for an answer are held back while the references are
// re-obtained (so that they find their containers registered again);
// default 5 s. References not re-obtained by then keep being followed in
// the background.
func WithReacquireTimeout(d time.Duration) Option {
	return func(o *options) { o.reacquireTimeout = d }
}

// WithCapabilities sets the protocol extensions announced in the client's
// hellos (backrpc.HelloInfo) besides the ones the client itself uses
// (operator commands and streams), which it always announces; default
// backrpc.CapInterest (events by interest, see Subscription).
// WithCapabilities() turns events by interest off.
func WithCapabilities(caps ...string) Option {
	return func(o *options) { o.capabilities, o.capsSet = append([]string(nil), caps...), true }
}

// WithEventBuffer sets the size of the channels returned by Events and
// Connection.Events; default 256. A full channel drops events.
func WithEventBuffer(n int) Option { return func(o *options) { o.eventBuffer = n } }

// AgentHost is an agent served on a client's session (package agent
// implements it). The client routes back-requests addressed to AgentID to
// it and calls RegisterWithNetwork after every change of server.
type AgentHost interface {
	AgentID() string
	// HandleAgentRequest answers a back-request (gg, cl, cs, ct); args
	// is the second element of the back-request params.
	HandleAgentRequest(ctx context.Context, method string, args json.RawMessage) (any, error)
	// RegisterWithNetwork (re-)registers the agent with the network
	// (ar). It runs after a server change, before the client re-gets its
	// references and resends pending requests.
	RegisterWithNetwork(ctx context.Context) error
}

// AgentReconnectHandler is an AgentHost told of a reconnection to the same
// server session after a gap too short for the client to register its
// agents again. The server may have changed what the agents serve
// meanwhile (a stateless container it handed to a standby when our
// connection was lost), and the events that said so were sent while we
// could not receive them.
type AgentReconnectHandler interface {
	AgentReconnected(ctx context.Context)
}

// Client is a session with a huly network server. It is safe for
// concurrent use.
type Client struct {
	opts options
	log  logrus.FieldLogger
	rpc  *backrpc.Client

	ctx     context.Context // ends at Close
	cancel  context.CancelFunc
	workers sync.WaitGroup

	events *queue[network.Event]

	// sends in flight (send.go).
	sends sendState

	mu         sync.Mutex
	closed     bool
	refs       map[string]*ContainerRef // by current uuid
	hosts      map[string]AgentHost
	agentConns map[string]*agentConn // by "host:port"
	conns      map[*Connection]struct{}
	rejoining  bool
	changes    uint64                   // server changes seen
	kindWake   map[string]chan struct{} // closed when an agent offering the kind appears
	uuidWake   map[string]chan struct{} // closed when a container of the uuid appears
	watch      watchState               // subscriptions (subscribe.go)
	epKeys     endpointKeys             // security.go
}

// Dial starts a session with the network server at addr ("HOST:PORT" or
// "tcp://HOST:PORT"). It returns at once; the client connects and
// reconnects in the background until Close. WaitConnected waits for the
// first hello answer, but no call needs it: requests wait for a session.
func Dial(addr string, opts ...Option) (*Client, error) {
	o := options{
		retryTick:        DefaultRetryTick,
		maxGetWait:       DefaultMaxGetWait,
		closeTimeout:     DefaultCloseTimeout,
		reacquireTimeout: DefaultReacquireTimeout,
		eventBuffer:      DefaultEventBuffer,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.clientID == "" {
		o.clientID = uuid.NewString()
	}
	if !o.capsSet {
		o.capabilities = []string{backrpc.CapInterest}
	}
	if o.logger == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		o.logger = l
	}
	if o.retryTick <= 0 {
		o.retryTick = DefaultRetryTick
	}
	if o.maxGetWait <= 0 {
		o.maxGetWait = DefaultMaxGetWait
	}
	if o.closeTimeout <= 0 {
		o.closeTimeout = DefaultCloseTimeout
	}
	if o.reacquireTimeout <= 0 {
		o.reacquireTimeout = DefaultReacquireTimeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		opts:       o,
		log:        o.logger.WithField("client_id", o.clientID),
		ctx:        ctx,
		cancel:     cancel,
		events:     newQueue[network.Event](o.eventBuffer),
		refs:       map[string]*ContainerRef{},
		hosts:      map[string]AgentHost{},
		agentConns: map[string]*agentConn{},
		conns:      map[*Connection]struct{}{},
		kindWake:   map[string]chan struct{}{},
		uuidWake:   map[string]chan struct{}{},
		watch:      watchState{kick: make(chan struct{}, 1)},
	}
	// Following references comes first, before any user handler sees the
	// event.
	c.events.first = c.followEvent
	c.events.merge = mergeQueued
	c.events.mergeAt = mergeEventsAt
	rpc, err := backrpc.Dial(addr, c.networkRPCOptions(o.clientID), backrpc.ClientHandler{
		HandleRequest:   c.handleBackRequest,
		OnEvent:         c.onRawEvent,
		UncheckedEvents: true, // onRawEvent decodes (validates) what it reads
		OnServerChanged: c.onServerChanged,
		OnDisconnect:    c.onDisconnect,
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("dial network %s: %w", addr, err)
	}
	c.rpc = rpc
	c.goWorker(func() { c.watchLoop(c.watch.kick) })
	c.workers.Add(1)
	go func() {
		defer c.workers.Done()
		c.events.run(ctx)
	}()
	return c, nil
}

func (c *Client) rpcOptions(id string) backrpc.ClientOptions {
	return backrpc.ClientOptions{
		ClientID:     id,
		AliveTimeout: c.opts.aliveTimeout,
		PingInterval: c.opts.pingInterval,
		RetryTick:    c.opts.retryTick,
		Capabilities: append(slices.Clone(capabilities), c.opts.capabilities...),
		Logger:       c.opts.logger,
	}
}

// ID is the client id.
func (c *Client) ID() string { return c.opts.clientID }

// Addr is the network server's address as given to Dial.
func (c *Client) Addr() string { return c.rpc.Addr() }

// Connected reports whether the session is usable now.
func (c *Client) Connected() bool { return c.rpc.Connected() }

// ServerID is the id of the network server that answered the last hello.
func (c *Client) ServerID() string { return c.rpc.ServerID() }

// Session describes the session with the current network server: its id,
// a count of server changes, and what it announced in its hello answer
// (the zero HelloInfo for a TS 0.7 server). During a hosted agent's
// RegisterWithNetwork after a server change it is already the new one.
func (c *Client) Session() backrpc.ServerSession { return c.rpc.Session() }

// Connections counts the transport connections made so far: a change means
// the connection was lost meanwhile, and with it maybe events.
func (c *Client) Connections() uint64 { return c.rpc.Stats().Connections }

// ServerHello is what the network server announced in its hello answer.
func (c *Client) ServerHello() backrpc.HelloInfo { return c.rpc.ServerHello() }

// WaitConnected waits until the network server has answered our hello.
func (c *Client) WaitConnected(ctx context.Context) error {
	return c.rpc.WaitConnected(ctx)
}

// Call sends a raw network method (PROTOCOL.md §4) and returns its result:
// the escape hatch for methods this package has no wrapper for.
func (c *Client) Call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	if c.isClosed() {
		return nil, ErrClosed
	}
	return c.rpc.Request(ctx, method, params)
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Agents lists the registered agents (al).
func (c *Client) Agents(ctx context.Context) ([]network.AgentInfo, error) {
	var out []network.AgentInfo
	if err := c.callInto(ctx, "al", struct{}{}, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Kinds lists the container kinds some agent offers (ak).
func (c *Client) Kinds(ctx context.Context) ([]string, error) {
	var out []string
	if err := c.callInto(ctx, "ak", struct{}{}, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// List lists the containers of a kind, or every container for "" (cl).
// A 0.7 TypeScript server answers [] for "".
func (c *Client) List(ctx context.Context, kind string) ([]network.ContainerRecord, error) {
	params := map[string]any{"kind": nil}
	if kind != "" {
		params["kind"] = kind
	}
	var out []network.ContainerRecord
	if err := c.callInto(ctx, "cl", params, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Request sends a request to a container, routed through the network and
// its agent (cs). data is encoded as JSON (a json.RawMessage as it is).
func (c *Client) Request(ctx context.Context, uuid, op string, data any) (json.RawMessage, error) {
	if uuid == "" {
		return nil, errors.New("request: container uuid is required")
	}
	params, err := routeParams(uuid, op, data)
	if err != nil {
		return nil, fmt.Errorf("request %s on %s: %w", op, uuid, err)
	}
	res, err := c.Call(ctx, "cs", params)
	if err != nil {
		return nil, fmt.Errorf("request %s on %s: %w", op, uuid, err)
	}
	return res, nil
}

func (c *Client) callInto(ctx context.Context, method string, params, out any) error {
	res, err := c.Call(ctx, method, params)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(res, out); err != nil {
		return fmt.Errorf("%s: decode answer: %w", method, err)
	}
	return nil
}

// routeParams encodes [uuid, op, data] once: the data, already encoded
// when it is a json.RawMessage, is not decoded and encoded again.
func routeParams(uuid, op string, data any) (json.RawMessage, error) {
	raw, err := encodeData(data)
	if err != nil {
		return nil, err
	}
	u, err := backrpc.MarshalJSON(uuid)
	if err != nil {
		return nil, err
	}
	o, err := backrpc.MarshalJSON(op)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(u)+len(o)+len(raw)+4)
	out = append(out, '[')
	out = append(out, u...)
	out = append(out, ',')
	out = append(out, o...)
	out = append(out, ',')
	out = append(out, raw...)
	out = append(out, ']')
	return out, nil
}

func encodeData(data any) (json.RawMessage, error) {
	raw, err := backrpc.MarshalJSON(data)
	if err != nil {
		return nil, fmt.Errorf("encode data: %w", err)
	}
	return raw, nil
}

// OnEvent calls fn with every network event, in order, on the client's
// event goroutine (a slow fn delays later events, never the connection).
// The returned function unsubscribes.
func (c *Client) OnEvent(fn func(network.Event)) (unsubscribe func()) {
	return c.events.subscribe(fn)
}

// Events returns a channel of the network events that arrive from its
// first call on, closed when the client closes. Events are dropped when it
// is full (see WithEventBuffer, DroppedEvents); a client that never calls
// Events pays nothing for it. Its first call subscribes to every event
// (Subscribe) on a server that delivers by interest.
func (c *Client) Events() <-chan network.Event {
	c.subscribeAll()
	return c.events.channel()
}

// DroppedEvents counts the events the Events channel had no room for.
func (c *Client) DroppedEvents() uint64 { return c.events.dropped.Load() }

// onRawEvent decodes a network event. Every client receives every event,
// so with many containers and many clients decoding them all is what a
// client spends most on: without subscribers only the entries this client
// acts on (agents, containers it holds or waits for, containers removed or
// updated) are decoded, and the partial event goes to followEvent alone.
func (c *Client) onRawEvent(payload json.RawMessage) {
	if !c.events.hasSubscribers() {
		ev, err := scanEvent(payload, c.needsContainer)
		if err != nil {
			c.log.WithError(err).Debug("dropping network event that does not decode")
			return
		}
		if !ev.Empty() {
			c.events.pushInternal(ev)
		}
		return
	}
	var ev network.Event
	if err := json.Unmarshal(payload, &ev); err != nil {
		c.log.WithError(err).Debug("dropping network event that does not decode")
		return
	}
	c.events.push(ev)
}

// needsContainer reports whether followEvent or a waiting Get may act on
// an event about the container.
func (c *Client) needsContainer(uuid []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refs[string(uuid)] != nil || c.uuidWake[string(uuid)] != nil
}

// ---- hosting agents ----

// Host serves an agent on this client: back-requests addressed to its id
// reach it, and it is registered again after every server change. The
// returned function stops hosting it (without unregistering: that is the
// agent's au). Close unregisters every agent still hosted.
func (c *Client) Host(h AgentHost) (remove func(), err error) {
	id := h.AgentID()
	if id == "" {
		return nil, errors.New("host agent: empty agent id")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if _, dup := c.hosts[id]; dup {
		return nil, fmt.Errorf("host agent %s: already hosted on this client", id)
	}
	c.hosts[id] = h
	return func() {
		c.mu.Lock()
		if c.hosts[id] == h {
			delete(c.hosts, id)
		}
		c.mu.Unlock()
	}, nil
}

// agentNotFound is the reference's normal (not error) answer to a
// back-request for an agent this client does not host.
type agentNotFound struct {
	Error string `json:"error"`
}

func (c *Client) handleBackRequest(ctx context.Context, method string, params json.RawMessage) (any, error) {
	p, err := jsonsplit.Array(params)
	if err != nil || len(p) == 0 {
		return nil, fmt.Errorf("back-request %s: params must be [agentId, args]", method)
	}
	agentID, err := jsonsplit.String(p[0])
	if err != nil {
		return nil, fmt.Errorf("back-request %s: agent id must be a string", method)
	}
	c.mu.Lock()
	h := c.hosts[agentID]
	c.mu.Unlock()
	if h == nil {
		return agentNotFound{Error: "Agent " + agentID + " not found"}, nil
	}
	args := json.RawMessage("null")
	if len(p) > 1 {
		args = p[1]
	}
	return h.HandleAgentRequest(ctx, method, args)
}

func (c *Client) hostList() []AgentHost {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]AgentHost, 0, len(c.hosts))
	for _, h := range c.hosts {
		out = append(out, h)
	}
	return out
}

// onServerChanged runs on first contact and after every server restart:
// hosted agents first (so that our own re-gets can find their containers),
// then the references; pending requests are resent when it returns.
func (c *Client) onServerChanged(ctx context.Context, serverID string) {
	c.log.WithField("server_id", serverID).Debug("network server changed")
	c.mu.Lock()
	c.changes++
	c.mu.Unlock()
	c.resync(ctx)
}

// resync tells the server again what it must know of us: the agents we
// host, then the references we hold.
func (c *Client) resync(ctx context.Context) {
	c.kickWatch() // a new server knows nothing of our subscriptions
	hosts := c.hostList()
	var wg sync.WaitGroup
	for _, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := h.RegisterWithNetwork(ctx); err != nil && ctx.Err() == nil {
				c.log.WithError(err).WithField("agent", h.AgentID()).Warn("re-register agent after server change")
			}
		}()
	}
	wg.Wait()
	c.reacquireAll(ctx)
}

// onDisconnect watches for a reconnection to the same server after a gap
// long enough for it to have dropped us: it then kept its id, so there is
// no server change, yet it forgot our agents and references.
func (c *Client) onDisconnect(error) {
	lost := time.Now()
	c.mu.Lock()
	if c.closed || c.rejoining {
		c.mu.Unlock()
		return
	}
	c.rejoining = true
	changes := c.changes
	c.mu.Unlock()
	started := c.goWorker(func() {
		defer func() {
			c.mu.Lock()
			c.rejoining = false
			c.mu.Unlock()
		}()
		if err := c.rpc.WaitConnected(c.ctx); err != nil {
			return
		}
		alive := c.opts.aliveTimeout
		if alive <= 0 {
			alive = backrpc.DefaultAliveTimeout
		}
		c.mu.Lock()
		changed := c.changes != changes
		c.mu.Unlock()
		if changed {
			return
		}
		if time.Since(lost) < alive/2 {
			for _, h := range c.hostList() {
				if r, ok := h.(AgentReconnectHandler); ok {
					r.AgentReconnected(c.ctx)
				}
			}
			return
		}
		c.log.WithField("gap", time.Since(lost)).Info("reconnected after a long gap; registering again")
		ctx, cancel := context.WithTimeout(c.ctx, c.opts.reacquireTimeout)
		defer cancel()
		c.resync(ctx)
	})
	if !started {
		c.mu.Lock()
		c.rejoining = false
		c.mu.Unlock()
	}
}

// ---- close ----

// Close ends the session: connections close, references are released (cr),
// hosted agents are unregistered (au), the server is told (close), and the
// socket closes. Hosted agents are not closed: close them first (their
// containers keep running otherwise). It is bounded by ctx and by the close timeout even when
// the server is gone; requests still waiting fail with ErrClosed.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	refs := make([]*ContainerRef, 0, len(c.refs))
	for _, r := range c.refs {
		refs = append(refs, r)
	}
	c.refs = map[string]*ContainerRef{}
	hosts := make([]string, 0, len(c.hosts))
	for id := range c.hosts {
		hosts = append(hosts, id)
	}
	c.hosts = map[string]AgentHost{}
	conns := make([]*Connection, 0, len(c.conns))
	for conn := range c.conns {
		conns = append(conns, conn)
	}
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, c.opts.closeTimeout)
	defer cancel()

	for _, conn := range conns {
		conn.closeLocal(ctx)
	}
	for _, r := range refs {
		r.markReleased()
	}
	// Telling the server is a courtesy: it forgets our references and
	// agents at our close anyway (agents after their alive timeout), so it
	// is skipped when there is no session, and bounded when there is one.
	if c.rpc.Connected() {
		var wg sync.WaitGroup
		for _, r := range refs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = c.rpc.Request(ctx, "cr", map[string]string{"uuid": r.UUID()})
			}()
		}
		for _, id := range hosts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = c.rpc.Request(ctx, "au", map[string]string{"uuid": id})
			}()
		}
		wg.Wait()
	}
	c.cancel()
	err := c.rpc.Close(ctx)
	c.closeAgentConns(ctx)

	done := make(chan struct{})
	go func() { c.workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		if err == nil {
			err = fmt.Errorf("close client: background work still running: %w", ctx.Err())
		}
	}
	return err
}

// ---- wake-ups for Get ----

// wakeChan returns a channel closed when an event announces an agent
// offering kind or a container of uuid.
func (c *Client) wakeChans(kind, uuid string) (<-chan struct{}, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var kw, uw chan struct{}
	if kind != "" {
		kw = c.kindWake[kind]
		if kw == nil {
			kw = make(chan struct{})
			c.kindWake[kind] = kw
		}
	}
	if uuid != "" {
		uw = c.uuidWake[uuid]
		if uw == nil {
			uw = make(chan struct{})
			c.uuidWake[uuid] = uw
		}
	}
	return kw, uw
}

func (c *Client) wake(ev network.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range ev.Agents {
		if a.Event == network.EventRemoved {
			continue
		}
		for _, k := range a.Kinds {
			if ch := c.kindWake[k]; ch != nil {
				close(ch)
				delete(c.kindWake, k)
			}
		}
	}
	for _, ce := range ev.Containers {
		if ce.Event == network.EventRemoved {
			continue
		}
		u := string(ce.Container.UUID)
		if ch := c.uuidWake[u]; ch != nil {
			close(ch)
			delete(c.uuidWake, u)
		}
	}
}
