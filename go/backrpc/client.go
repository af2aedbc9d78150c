package backrpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/transport"
)

// Client defaults.
const (
	// DefaultRetryTick is the unit of a retry's wait. The reference client
	// waits N ticks of its tick manager; its captured retry of 26 ticks took
	// 13 s, so one tick is half a second.
	DefaultRetryTick = 500 * time.Millisecond
	// DefaultMaxRetryDelay caps a retry's wait, so that a server asking for
	// 26 ticks does not stall us for 13 s.
	DefaultMaxRetryDelay = 2 * time.Second
	// DefaultServerTimeout is ten missed pongs.
	DefaultServerTimeout = 10 * time.Second
)

// ErrClientClosed fails the requests still pending when a Client closes. The
// text is the reference's, so logs read the same on both implementations.
var ErrClientClosed = errors.New("Client closed") //nolint:staticcheck // reference wording

// ClientOptions configure a Client. Zero values take the defaults.
type ClientOptions struct {
	// ClientID is announced in every hello; default a new UUID v4. It is
	// the prefix of every request id.
	ClientID string
	// AliveTimeout is announced in hello: the server drops us after this
	// long without a message. Default 3s; whole seconds on the wire unless
	// a fraction is given.
	AliveTimeout time.Duration
	// PingInterval is how often we ping. Default 1s.
	PingInterval time.Duration
	// RetryTick is the unit of the wait a retry asks for. Default 500ms.
	RetryTick time.Duration
	// MaxRetryDelay caps a retry's wait. Default 2s.
	MaxRetryDelay time.Duration
	// ServerTimeout: when the server has sent nothing (not even a pong)
	// for this long, the connection is taken for dead and made again. It
	// catches a server gone without closing its TCP connection. Default
	// 10s; negative disables.
	ServerTimeout time.Duration
	// Capabilities are announced in our hello (see HelloInfo); none by
	// default, which keeps the hello byte for byte the reference's.
	Capabilities []string
	// Transport configures the DEALER (backoff, frame size, queue).
	Transport transport.DealerOptions
	// Logger defaults to a discarding logger.
	Logger logrus.FieldLogger
}

func (o ClientOptions) withDefaults() ClientOptions {
	if o.ClientID == "" {
		o.ClientID = uuid.NewString()
	}
	if o.AliveTimeout <= 0 {
		o.AliveTimeout = DefaultAliveTimeout
	}
	if o.PingInterval <= 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.RetryTick <= 0 {
		o.RetryTick = DefaultRetryTick
	}
	if o.MaxRetryDelay <= 0 {
		o.MaxRetryDelay = DefaultMaxRetryDelay
	}
	if o.ServerTimeout == 0 {
		o.ServerTimeout = DefaultServerTimeout
	}
	if o.Logger == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		o.Logger = l
	}
	if o.Transport.Logger == nil {
		o.Transport.Logger = o.Logger
	}
	return o
}

// ClientHandler is what a Client calls; every field is optional.
type ClientHandler struct {
	// HandleRequest answers back-requests (requests the server sends us),
	// each on its own goroutine; the result is encoded as for
	// ServerHandler.HandleRequest. ctx ends when the client closes.
	// Without it back-requests are answered with an error.
	HandleRequest func(ctx context.Context, method string, params json.RawMessage) (any, error)
	// OnEvent receives event payloads (valid JSON only, unless
	// UncheckedEvents) on the connection's read goroutine, in order: it
	// must return quickly.
	OnEvent func(payload json.RawMessage)
	// UncheckedEvents hands OnEvent every non-empty event payload without
	// validating it first, for a handler that decodes (and so validates)
	// only the parts it needs: every client receives every network event,
	// and validating all of it was most of what a client did with 10,000
	// containers announced.
	UncheckedEvents bool
	// OnServerChanged runs on its own goroutine when a hello answer names a
	// server id other than the one we knew: first contact, a server restart,
	// or a server that forgot us (askHello). Re-register what the server
	// must know here; requests made from it are sent at once. Requests that
	// were pending before the change are resent (same ids) after it returns.
	// ctx ends when the client closes or the server changes again.
	// Client.Session (and ServerHello) already describe the new session:
	// what the server announced decides what to re-register and how.
	OnServerChanged func(ctx context.Context, serverID string)
	// OnDisconnect follows the loss of a transport connection; the client
	// reconnects by itself.
	OnDisconnect func(err error)
}

// dealer is the part of a transport.Dealer the client uses.
type dealer interface {
	Send(frames ...[]byte) error
	Reconnect()
	CloseContext(ctx context.Context) error
}

type pendingReq struct {
	id         string
	method     string
	frames     [][]byte
	done       chan callResult // buffered 1
	sentConn   uint64          // connection it was last sent on; 0 = none
	sentServer string          // server id it was last sent to
	timer      *time.Timer     // a retry's wait
}

// ClientStats are counters of a Client since it started.
type ClientStats struct {
	Pending       int
	Connections   uint64
	Reconnects    uint64 // connections dropped because the server fell silent
	ServerChanges uint64
	Resent        uint64
	Retries       uint64
	BackRequests  uint64
	Events        uint64
}

// Client is the DEALER side of the protocol: one session with one server
// (a network server or an agent endpoint), reconnecting by itself.
type Client struct {
	opts ClientOptions
	h    ClientHandler
	log  logrus.FieldLogger
	id   string
	addr string

	hello     [][]byte
	helloSent bool // the transport sends hello on every connection
	pingMsg   [][]byte
	closeMsg  [][]byte
	dialed    chan struct{} // closed once d is set
	d         dealer
	ctx       context.Context
	cancel    context.CancelFunc
	workers   sync.WaitGroup
	pool      *workerPool // runs back-request handlers
	seq       atomic.Uint64
	lastPong  atomic.Int64
	lastRecv  atomic.Int64 // unix ns of the last message, or of the connection
	closeOnce sync.Once

	// silentLogged: a silent server was reported; a hello answer resets it.
	silentLogged atomic.Bool

	mu           sync.Mutex
	closed       bool
	connected    bool
	connGen      uint64 // transport connections so far
	helloGen     uint64 // the connection whose hello was answered
	serverID     string
	serverHello  HelloInfo     // what the server announced in its last hello answer
	session      uint64        // server sessions so far (server changes)
	ready        chan struct{} // closed while the session is usable
	changing     bool          // an OnServerChanged is running
	changeCancel context.CancelFunc
	pending      map[string]*pendingReq
	refusal      *RefusedError // the server refused our last handshake (security.go)
	refusedWake  chan struct{}

	connections, reconnects, changes, resent, retries, backRequests, events atomic.Uint64
}

// Dial starts a client session with the server at addr ("tcp://HOST:PORT"
// or "HOST:PORT"). It returns at once; the client connects, says hello and
// reconnects in the background until Close.
func Dial(addr string, opts ClientOptions, h ClientHandler) (*Client, error) {
	if err := checkAddr(addr); err != nil {
		return nil, err
	}
	c := newClient(addr, opts, h)
	// The transport sends our hello with its handshake, a round trip
	// sooner than onConnect could.
	topts := c.opts.Transport
	topts.Hello = c.hello
	c.helloSent = true
	d := transport.Dial(addr, transport.DealerHandler{
		OnConnect:      c.onConnect,
		OnMessage:      c.handleMessage,
		OnDisconnect:   c.onDisconnect,
		OnConnectError: c.onConnectError,
	}, topts)
	c.attach(d)
	return c, nil
}

func checkAddr(addr string) error {
	hp := strings.TrimPrefix(addr, "tcp://")
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return fmt.Errorf("backrpc: bad address %q: %w", addr, err)
	}
	if host == "" || host == "*" || port == "" {
		return fmt.Errorf("backrpc: bad address %q: need a host and a port to connect to", addr)
	}
	return nil
}

func newClient(addr string, opts ClientOptions, h ClientHandler) *Client {
	opts = opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	// {"aliveTimeout":N} alone without capabilities: the reference's hello.
	hello := EncodeHelloInfo(HelloInfo{AliveTimeout: opts.AliveTimeout, Capabilities: opts.Capabilities})
	c := &Client{
		opts:     opts,
		h:        h,
		log:      opts.Logger.WithFields(logrus.Fields{"client_id": opts.ClientID, "endpoint": addr}),
		id:       opts.ClientID,
		addr:     addr,
		hello:    EncodeClient(Message{Op: OpHello, ID: opts.ClientID, Payload: hello}),
		pingMsg:  EncodeClient(Message{Op: OpPing}),
		closeMsg: EncodeClient(Message{Op: OpClose}),
		dialed:   make(chan struct{}),
		pool:     newWorkerPool(),
		ctx:      ctx,
		cancel:   cancel,
		ready:    make(chan struct{}),
		pending:  map[string]*pendingReq{},
	}
	return c
}

// attach sets the transport and starts pinging.
func (c *Client) attach(d dealer) {
	c.d = d
	close(c.dialed)
	c.workers.Add(1)
	go c.pingLoop()
}

func (c *Client) dealer() dealer {
	<-c.dialed
	return c.d
}

// ID is the client id.
func (c *Client) ID() string { return c.id }

// Addr is the endpoint the client talks to.
func (c *Client) Addr() string { return c.addr }

// ServerID is the id of the server that answered our last hello ("" before
// the first answer, or after an askHello until the next).
func (c *Client) ServerID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.serverID
}

// ServerSession describes the session with the current server.
type ServerSession struct {
	// ServerID is the id of the server that answered our last hello.
	ServerID string
	// Seq counts server sessions: 0 before the first hello answer, then
	// one more at every server change (each OnServerChanged).
	Seq uint64
	// Hello is what the server announced in its hello answer: the zero
	// HelloInfo from a server that announces nothing (a TS 0.7 server).
	Hello HelloInfo
}

// Session returns the current server session. It is updated before
// OnServerChanged runs, so the handler sees the session it is called for.
func (c *Client) Session() ServerSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	return ServerSession{ServerID: c.serverID, Seq: c.session, Hello: c.serverHello}
}

// ServerHello is what the server announced in its answer to our hello
// (Session().Hello): its capabilities and the alive timeout it granted.
func (c *Client) ServerHello() HelloInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.serverHello
}

// Connected reports whether the session is usable now: connected, and hello
// answered on this connection.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readyLocked()
}

// LastPong is when the server last answered a ping (zero before the first).
func (c *Client) LastPong() time.Time {
	ns := c.lastPong.Load()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// Stats returns the client's counters.
func (c *Client) Stats() ClientStats {
	c.mu.Lock()
	n := len(c.pending)
	c.mu.Unlock()
	return ClientStats{
		Pending:       n,
		Connections:   c.connections.Load(),
		Reconnects:    c.reconnects.Load(),
		ServerChanges: c.changes.Load(),
		Resent:        c.resent.Load(),
		Retries:       c.retries.Load(),
		BackRequests:  c.backRequests.Load(),
		Events:        c.events.Load(),
	}
}

func (c *Client) readyLocked() bool {
	return !c.closed && c.connected && c.helloGen == c.connGen && c.serverID != ""
}

// WaitConnected waits until a server has answered our hello on the current
// connection.
func (c *Client) WaitConnected(ctx context.Context) error {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return ErrClientClosed
		}
		if c.readyLocked() {
			c.mu.Unlock()
			return nil
		}
		if err := c.refusedLocked(); err != nil {
			c.mu.Unlock()
			return err
		}
		ready := c.ready
		refused := c.refusedWakeLocked()
		c.mu.Unlock()
		select {
		case <-refused:
		case <-ready:
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w", c.addr, ctx.Err())
		case <-c.ctx.Done():
			return ErrClientClosed
		}
	}
}

// Request sends method(params) and waits for the answer or the end of ctx.
// params is encoded as JSON (a json.RawMessage as it is). While there is no
// session the request waits and goes out after the next hello; it is resent
// with the same id after a server change or a reconnection, and after the
// wait a retry asks for. A responseError comes back as a *RemoteError.
func (c *Client) Request(ctx context.Context, method string, params any) (json.RawMessage, error) {
	payload, err := EncodeRequestPayload(method, params)
	if err != nil {
		return nil, err
	}
	id := RequestID(c.id, c.seq.Add(1)-1)
	p := &pendingReq{
		id:     id,
		method: method,
		frames: EncodeClient(Message{Op: OpRequest, ID: id, Payload: payload}),
		done:   make(chan callResult, 1),
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClientClosed
	}
	send := c.readyLocked()
	if !send {
		if err := c.refusedLocked(); err != nil {
			c.mu.Unlock()
			return nil, fmt.Errorf("%s: %w", method, err)
		}
	}
	c.pending[id] = p
	if send {
		p.sentConn, p.sentServer = c.connGen, c.serverID
	}
	c.mu.Unlock()
	if send {
		// On failure the connection is gone; the next hello resends it.
		_ = c.dealer().Send(p.frames...)
	}

	select {
	case r := <-p.done:
		if r.err != nil {
			return nil, fmt.Errorf("%s: %w", method, r.err)
		}
		return r.raw, nil
	case <-ctx.Done():
		c.mu.Lock()
		if c.pending[id] == p {
			delete(c.pending, id)
			if p.timer != nil {
				p.timer.Stop()
			}
		}
		c.mu.Unlock()
		return nil, fmt.Errorf("%s (%s): %w", method, id, ctx.Err())
	}
}

// Close ends the session: pending requests fail with ErrClientClosed, a
// close message is sent if there is a connection, and the transport is
// closed. It is bounded by ctx even when the server is gone.
func (c *Client) Close(ctx context.Context) error {
	var err error
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		pending := c.pending
		c.pending = map[string]*pendingReq{}
		connected := c.connected
		select {
		case <-c.ready:
		default:
			close(c.ready) // wake WaitConnected callers: they see closed
		}
		c.mu.Unlock()

		for _, p := range pending {
			if p.timer != nil {
				p.timer.Stop()
			}
			p.done <- callResult{err: ErrClientClosed}
		}
		c.cancel()
		d := c.dealer()
		if connected {
			_ = d.Send(c.closeMsg...)
		}
		// The transport writes what is queued (the close) until ctx ends.
		if cerr := d.CloseContext(ctx); cerr != nil {
			err = fmt.Errorf("close %s: %w", c.addr, cerr)
		}
		done := make(chan struct{})
		go func() { c.workers.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("close %s: back-request handlers still running: %w", c.addr, ctx.Err())
			}
		}
		c.pool.stop(ctx)
	})
	return err
}

func (c *Client) onConnect() {
	c.connections.Add(1)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.connGen++
	c.connected = true
	c.refusal = nil
	c.mu.Unlock()
	c.lastRecv.Store(time.Now().UnixNano())
	if !c.helloSent {
		c.sendHello()
	}
}

func (c *Client) sendHello() {
	if err := c.dealer().Send(c.hello...); err != nil {
		c.log.WithError(err).Debug("hello not sent")
	}
}

func (c *Client) onDisconnect(err error) {
	c.mu.Lock()
	c.connected = false
	if !c.closed {
		select {
		case <-c.ready:
			c.ready = make(chan struct{})
		default:
		}
	}
	closed := c.closed
	c.mu.Unlock()
	if !closed {
		c.log.WithError(err).Debug("connection lost")
		if c.h.OnDisconnect != nil {
			c.h.OnDisconnect(err)
		}
	}
}

func (c *Client) pingLoop() {
	defer c.workers.Done()
	t := time.NewTicker(c.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case now := <-t.C:
			c.mu.Lock()
			connected := c.connected && !c.closed
			c.mu.Unlock()
			if !connected {
				continue
			}
			silent := now.Sub(time.Unix(0, c.lastRecv.Load()))
			if c.opts.ServerTimeout > 0 && silent > c.opts.ServerTimeout {
				c.reconnects.Add(1)
				// Said at warning once while the server stays silent
				// (until it answers a hello again).
				if c.silentLogged.CompareAndSwap(false, true) {
					c.log.WithField("silent", silent).Warn("server silent; reconnecting")
				} else {
					c.log.WithField("silent", silent).Debug("server still silent; reconnecting")
				}
				c.lastRecv.Store(now.UnixNano())
				c.dealer().Reconnect()
				continue
			}
			_ = c.dealer().Send(c.pingMsg...)
		}
	}
}

// handleMessage dispatches one message from the server: the transport's
// OnMessage. Bad input is logged and dropped, never fatal.
func (c *Client) handleMessage(frames [][]byte) {
	c.lastRecv.Store(time.Now().UnixNano())
	m, err := Decode(frames)
	if err != nil {
		c.log.WithError(err).Debug("dropping malformed message")
		if m.Op == OpRequest && len(frames) >= 2 {
			c.reply(OpResponseError, m.ID, EncodeErrorPayload(fmt.Errorf("bad request: %w", err)))
		}
		return
	}
	switch m.Op {
	case OpHello:
		c.onHello(m.ID, m.Payload)
	case OpAskHello:
		// The server does not know us (restart or timeout): forget its id
		// so that the answer to this hello counts as a change.
		c.mu.Lock()
		c.serverID = ""
		c.mu.Unlock()
		c.sendHello()
	case OpPong:
		c.lastPong.Store(time.Now().UnixNano())
	case OpRequest:
		c.onBackRequest(m)
	case OpResponse, OpResponseError:
		c.onResponse(m)
	case OpRetry:
		c.onRetry(m)
	case OpEvent:
		c.events.Add(1)
		raw, ok := json.RawMessage(m.Payload), len(m.Payload) > 0
		if !c.h.UncheckedEvents {
			raw, ok = ParseJSON(m.Payload)
		}
		if !ok {
			c.log.Debug("dropping event whose payload is not JSON")
			return
		}
		if c.h.OnEvent != nil {
			c.h.OnEvent(raw)
		}
	default:
		c.log.WithField("op", m.Op.String()).Debug("ignoring message")
	}
}

func (c *Client) onHello(serverID string, payload []byte) {
	hello := ParseHelloInfo(payload)
	c.silentLogged.Store(false)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	changed := serverID != c.serverID
	firstOnConn := c.helloGen != c.connGen
	c.serverID = serverID
	c.serverHello = hello
	if changed {
		c.session++
	}
	c.helloGen = c.connGen
	if c.connected {
		select {
		case <-c.ready:
		default:
			close(c.ready)
		}
	}
	if !changed {
		c.mu.Unlock()
		if firstOnConn {
			// Same server, new connection: answers sent on the old one
			// may be lost, so send again what is pending (the server
			// ignores ids it still has in flight).
			c.resendStale(false)
		}
		return
	}
	c.changes.Add(1)
	if c.changeCancel != nil {
		c.changeCancel()
	}
	ctx, cancel := context.WithCancel(c.ctx)
	c.changeCancel = cancel
	c.changing = true
	c.workers.Add(1)
	c.mu.Unlock()

	c.log.WithField("server_id", serverID).Debug("new server")
	go func() {
		defer c.workers.Done()
		defer cancel()
		if c.h.OnServerChanged != nil {
			c.safeRun("OnServerChanged", func() { c.h.OnServerChanged(ctx, serverID) })
		}
		if ctx.Err() != nil {
			return // closed, or a newer change took over
		}
		c.mu.Lock()
		c.changing = false
		c.mu.Unlock()
		c.resendStale(true)
	}()
}

// resendStale sends every pending request not yet sent on this connection
// to this server. While an OnServerChanged runs only its own goroutine
// (afterChange) may do it, so that old requests follow the re-registration.
func (c *Client) resendStale(afterChange bool) {
	c.mu.Lock()
	if !c.readyLocked() || (c.changing && !afterChange) {
		c.mu.Unlock()
		return
	}
	var out [][][]byte
	for _, p := range c.pending {
		if p.sentConn == c.connGen && p.sentServer == c.serverID {
			continue
		}
		if p.timer != nil {
			p.timer.Stop()
			p.timer = nil
		}
		p.sentConn, p.sentServer = c.connGen, c.serverID
		out = append(out, p.frames)
	}
	c.mu.Unlock()
	d := c.dealer()
	for _, f := range out {
		c.resent.Add(1)
		_ = d.Send(f...)
	}
}

func (c *Client) onRetry(m Message) {
	ticks := ParseRetryPayload(m.Payload)
	delay := time.Duration(ticks) * c.opts.RetryTick
	if delay > c.opts.MaxRetryDelay || delay <= 0 {
		delay = c.opts.MaxRetryDelay
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pending[m.ID]
	if p == nil {
		return
	}
	c.retries.Add(1)
	if p.timer != nil {
		p.timer.Stop()
	}
	// Not in flight at the server: a reconnection meanwhile resends it.
	p.sentConn = 0
	p.timer = time.AfterFunc(delay, func() { c.resendOne(p) })
}

func (c *Client) resendOne(p *pendingReq) {
	c.mu.Lock()
	if c.pending[p.id] != p || !c.readyLocked() || c.changing {
		c.mu.Unlock()
		return
	}
	p.timer = nil
	p.sentConn, p.sentServer = c.connGen, c.serverID
	c.mu.Unlock()
	c.resent.Add(1)
	_ = c.dealer().Send(p.frames...)
}

func (c *Client) onResponse(m Message) {
	c.mu.Lock()
	p := c.pending[m.ID]
	if p != nil {
		delete(c.pending, m.ID)
		if p.timer != nil {
			p.timer.Stop()
		}
	}
	c.mu.Unlock()
	if p == nil {
		c.log.WithField("id", m.ID).Debug("response to no pending request")
		return
	}
	var r callResult
	if m.Op == OpResponseError {
		r.err = DecodeErrorPayload(m.Payload)
	} else if raw, ok := ParseJSON(m.Payload); ok {
		r.raw = raw
	} else {
		r.err = ErrBadResponse
	}
	p.done <- r
}

func (c *Client) onBackRequest(m Message) {
	method, params, err := DecodeRequestPayload(m.Payload)
	if err != nil {
		c.reply(OpResponseError, m.ID, EncodeErrorPayload(err))
		return
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.workers.Add(1)
	c.mu.Unlock()
	c.backRequests.Add(1)
	c.pool.run(func() {
		defer c.workers.Done()
		var res any
		err := ErrNoHandler
		if c.h.HandleRequest != nil {
			ctx := context.WithValue(c.ctx, requestIDKey{}, m.ID)
			var herr error
			if perr := c.safeRun(method, func() { res, herr = c.h.HandleRequest(ctx, method, params) }); perr != nil {
				herr = perr
			}
			err = herr
		}
		var payload []byte
		if err == nil {
			payload, err = MarshalJSON(res)
		}
		if err != nil {
			c.reply(OpResponseError, m.ID, EncodeErrorPayload(err))
			return
		}
		c.reply(OpResponse, m.ID, payload)
	})
}

// safeRun runs f, turning a panic into an error (and a log line).
func (c *Client) safeRun(what string, f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			c.log.WithFields(logrus.Fields{"handler": what, "panic": r}).Errorf("handler panicked\n%s", debug.Stack())
			err = fmt.Errorf("internal error in %s", what)
		}
	}()
	f()
	return nil
}

func (c *Client) reply(op Op, id string, payload []byte) {
	if err := c.dealer().Send(EncodeClient(Message{Op: op, ID: id, Payload: payload})...); err != nil {
		c.log.WithError(err).WithFields(logrus.Fields{"op": op.String(), "id": id}).Debug("answer not sent")
	}
}
