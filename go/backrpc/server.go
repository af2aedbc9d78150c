package backrpc

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/curve"
	"github.com/huly-net/huly-net/go/transport"
)

// Server defaults.
const (
	DefaultPingInterval = time.Second
	// DefaultMaxInflight is far above the reference's 25: there a client's
	// 27th concurrent request draws "retry 26", which makes a TypeScript
	// client wait 26 ticks (about 13 s) before it tries again.
	DefaultMaxInflight  = 1024
	DefaultDrainTimeout = 5 * time.Second
	// DefaultMaxAliveTimeout caps the alive timeout a hello may ask for:
	// a client silent for longer is gone, whatever it asked.
	DefaultMaxAliveTimeout = 5 * time.Minute
	// DefaultMaxClientIDLen bounds a hello's client id (a UUID, 36 bytes,
	// in practice).
	DefaultMaxClientIDLen = 256
	// DefaultMaxDetachedSessions bounds the sessions kept for clients
	// whose connection is gone, waiting for them to come back.
	DefaultMaxDetachedSessions = 10000
	// dropGrace is how long the connection of a dropped session (or of a
	// refused hello) stays open for what was sent last to be written.
	dropGrace = 100 * time.Millisecond
	retryOne  = "1" // the retry payload we send: one tick
)

// Server errors.
var (
	ErrServerClosed  = errors.New("backrpc: server closed")
	ErrUnknownClient = errors.New("backrpc: client not connected")
	ErrClientGone    = errors.New("backrpc: client went away before answering")
	ErrBadResponse   = errors.New("backrpc: response payload is not JSON")
	ErrNoHandler     = errors.New("backrpc: no request handler")
	// ErrClientIDTooLong is the answer to a hello whose client id is
	// longer than MaxClientIDLen.
	ErrClientIDTooLong = errors.New("backrpc: client id too long")
)

// ServerOptions configure a Server. Zero values take the defaults.
type ServerOptions struct {
	// ServerID is sent in hello, pong and askHello; default a new UUID v4.
	// Clients take a new id for a server restart.
	ServerID string
	// AliveTimeout applies to clients whose hello names none. Default 3s.
	AliveTimeout time.Duration
	// MaxAliveTimeout caps what a hello may ask for; the hello answer
	// says what was granted. Default 5m.
	MaxAliveTimeout time.Duration
	// MaxClientIDLen bounds a hello's client id in bytes; a longer one is
	// refused (responseError, no session, connection closed). Default 256.
	MaxClientIDLen int
	// MaxDetachedSessions bounds the sessions kept for clients whose
	// connection is gone; beyond it the one detached longest is dropped
	// (OnClientTimeout). Default 10000.
	MaxDetachedSessions int
	// Capabilities are announced in the hello answer (see HelloInfo).
	Capabilities []string
	// ReferenceHello answers hello with an empty payload, as the TS 0.7
	// server does: no granted alive timeout, no capabilities. For peers
	// that stand in for the reference.
	ReferenceHello bool
	// PingInterval is how often silent clients are looked for. Default 1s.
	PingInterval time.Duration
	// MaxInflight bounds a client's concurrent requests; beyond it the
	// request is answered "retry 1". Default 1024.
	MaxInflight int
	// MaxServerInflight bounds the requests in flight over all clients;
	// beyond it a request is answered "retry 1" at once (see overload.go).
	// Default DefaultMaxServerInflight.
	MaxServerInflight int
	// DrainTimeout bounds how long Close waits for running handlers.
	// Default 5s.
	DrainTimeout time.Duration
	// Transport configures the ROUTER (frame size, queues, timeouts).
	Transport transport.Options
	// Logger defaults to a discarding logger.
	Logger logrus.FieldLogger
}

func (o ServerOptions) withDefaults() ServerOptions {
	if o.ServerID == "" {
		o.ServerID = uuid.NewString()
	}
	if o.AliveTimeout <= 0 {
		o.AliveTimeout = DefaultAliveTimeout
	}
	if o.MaxAliveTimeout <= 0 {
		o.MaxAliveTimeout = DefaultMaxAliveTimeout
	}
	if o.AliveTimeout > o.MaxAliveTimeout {
		o.AliveTimeout = o.MaxAliveTimeout
	}
	if o.MaxClientIDLen <= 0 {
		o.MaxClientIDLen = DefaultMaxClientIDLen
	}
	if o.MaxDetachedSessions <= 0 {
		o.MaxDetachedSessions = DefaultMaxDetachedSessions
	}
	if o.PingInterval <= 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.MaxInflight <= 0 {
		o.MaxInflight = DefaultMaxInflight
	}
	if o.MaxServerInflight <= 0 {
		o.MaxServerInflight = DefaultMaxServerInflight
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = DefaultDrainTimeout
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

// ClientInfo identifies a client session on a Server.
type ClientInfo struct {
	ID           string           // the client id of its hello
	Peer         transport.PeerID // its current routing id
	AliveTimeout time.Duration    // granted: its hello's (capped), or the server default
	// Hello is what the client announced in its latest hello (the alive
	// timeout it asked for and its capabilities).
	Hello HelloInfo
	// Key is the CURVE public key the session belongs to: the key of the
	// connection that opened it (the zero key for a NULL-security peer).
	// A hello from a connection with another key cannot take the session
	// over (ErrSessionKey).
	Key curve.Key
	// Remote is the address of its current connection ("" without a
	// socket).
	Remote string
}

// ServerHandler is what a Server calls. Every field is optional; without
// HandleRequest every request is answered with an error. The callbacks other
// than HandleRequest run on a transport or housekeeping goroutine: they must
// return quickly (hand slow work, and any Call, to a goroutine).
type ServerHandler struct {
	// HandleRequest runs on its own goroutine per request. Its result is
	// encoded as JSON (a json.RawMessage is sent as it is; nil is null); an
	// error is answered as responseError (a *RemoteError keeps its message
	// and stack). ctx ends when the server closes; RequestIDFromContext
	// gives the request id.
	HandleRequest func(ctx context.Context, client ClientInfo, method string, params json.RawMessage) (any, error)
	// HandleRequestAsync, when set, is offered every request first, on
	// the goroutine that read it: it returns false to leave the request
	// to HandleRequest, or true after it has taken the request, which it
	// then answers by calling reply exactly once, from anywhere. It must
	// not block (forward with CallAsync). ctx ends when the server closes.
	HandleRequestAsync func(ctx context.Context, client ClientInfo, method string, params json.RawMessage, reply Reply) bool
	// OnClientConnected follows the first hello of a client id.
	OnClientConnected func(client ClientInfo)
	// OnClientClosed follows a client's close message (or a hello with
	// another client id on its connection).
	OnClientClosed func(client ClientInfo)
	// OnClientTimeout follows the drop of a client silent for longer than
	// its alive timeout, or of a disconnected client's session evicted
	// beyond MaxDetachedSessions; treat it as a close.
	OnClientTimeout func(client ClientInfo)
	// OnClientDisconnected follows the loss of a client's connection; its
	// session is kept for it to come back (within its alive timeout), but
	// nothing sent to it arrives until then.
	OnClientDisconnected func(client ClientInfo)
	// OnClientReconnected follows a hello that gave a known client's
	// session a new connection.
	OnClientReconnected func(client ClientInfo)
	// OnPing follows every ping of a known client.
	OnPing func(client ClientInfo)
}

type requestIDKey struct{}

type arrivalKey struct{}

// ArrivalFromContext returns the position of the request whose handler got
// ctx among the requests and responses the server received (Arrivals).
// Handlers run concurrently, so this, not the order they run in, says what
// came first.
func ArrivalFromContext(ctx context.Context) (uint64, bool) {
	n, ok := ctx.Value(arrivalKey{}).(uint64)
	return n, ok
}

// Arrivals is the number of requests and responses received so far.
func (s *Server) Arrivals() uint64 { return s.arrivals.Load() }

// RequestIDFromContext returns the id of the request whose handler got ctx.
func RequestIDFromContext(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(requestIDKey{}).(string)
	return id, ok
}

// sender is the part of a transport.Router the server uses; tests and
// fuzzing drive the server without sockets through it.
type sender interface {
	Send(peer transport.PeerID, frames ...[]byte) error
}

type session struct {
	info     ClientInfo
	lastSeen time.Time
	inflight map[string]struct{}
	// detached is the session's place in Server.detached while its
	// connection is gone; nil while connected.
	detached *list.Element
}

type callResult struct {
	raw json.RawMessage
	err error
}

type call struct {
	clientID string
	peer     transport.PeerID
	done     chan callResult // buffered 1: the resolver never blocks
	// fn, instead of done, takes the result of a CallAsync; timer is its
	// timeout.
	fn    func(callResult)
	timer *time.Timer
}

// ServerStats are counters of a Server since it started.
type ServerStats struct {
	Clients       int
	CallsInFlight int
	Hellos        uint64
	Pings         uint64
	Requests      uint64 // handlers started
	Duplicates    uint64 // requests ignored: same id already in flight
	Retries       uint64 // requests answered "retry"
	BadMessages   uint64 // undecodable messages and bad request payloads
	HandlerErrors uint64 // requests answered with responseError by the handler
	Closes        uint64
	Timeouts      uint64
	Calls         uint64 // back-requests sent
	// DetachedSessions are kept for clients whose connection is gone.
	DetachedSessions int
	// AliveCapped counts hellos that asked for more than MaxAliveTimeout.
	AliveCapped uint64
	// RefusedHellos counts hellos refused for a client id longer than
	// MaxClientIDLen.
	RefusedHellos uint64
	// Evictions counts detached sessions dropped beyond
	// MaxDetachedSessions.
	Evictions uint64
	Transport transport.RouterStats
	// SessionKeyRefusals counts hellos refused because their client id
	// belongs to a session of another CURVE key.
	SessionKeyRefusals uint64
}

// Server is the ROUTER side of the protocol.
type Server struct {
	opts ServerOptions
	h    ServerHandler
	log  logrus.FieldLogger
	id   []byte

	// arrivals counts requests and responses as they are read, on the
	// peers' read goroutines (see ArrivalFromContext).
	arrivals atomic.Uint64

	ctx    context.Context
	cancel context.CancelFunc

	startOnce sync.Once
	started   chan struct{} // closed once out is set
	out       sender
	router    *transport.Router
	bgDone    chan struct{}

	handlers sync.WaitGroup
	pool     *workerPool

	mu      sync.Mutex
	closing bool
	byPeer  map[transport.PeerID]*session
	byID    map[string]*session
	// detached lists the sessions without a connection, the one detached
	// longest first.
	detached *list.List
	calls    map[string]*call
	callSeq  uint64
	// overload is the server-wide bound on requests in flight
	// (overload.go); guarded by mu.
	overload overloadState

	hellos, pings, requests, duplicates, retries, bad, handlerErrs, closes, timeouts, callsSent atomic.Uint64
	aliveCapped, refusedHellos, evictions                                                       atomic.Uint64
	sessionKeyRefusals                                                                          atomic.Uint64
}

// NewServer prepares a server; Listen or Serve starts it.
func NewServer(opts ServerOptions, h ServerHandler) *Server {
	opts = opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		opts:     opts,
		h:        h,
		log:      opts.Logger.WithField("server_id", opts.ServerID),
		id:       []byte(opts.ServerID),
		ctx:      ctx,
		cancel:   cancel,
		started:  make(chan struct{}),
		bgDone:   make(chan struct{}),
		pool:     newWorkerPool(),
		byPeer:   map[transport.PeerID]*session{},
		byID:     map[string]*session{},
		detached: list.New(),
		calls:    map[string]*call{},
	}
}

// ID is the server id, a UUID v4 unless ServerOptions.ServerID said otherwise.
func (s *Server) ID() string { return string(s.id) }

var errAlreadyStarted = errors.New("backrpc: server already started")

// Listen binds addr ("tcp://HOST:PORT", HOST may be "*", or "HOST:PORT")
// and serves it. It returns once the socket is bound.
func (s *Server) Listen(addr string) error {
	err := errAlreadyStarted
	s.startOnce.Do(func() {
		var r *transport.Router
		r, err = transport.Listen(addr, s.routerHandler(), s.opts.Transport)
		if err != nil {
			err = fmt.Errorf("backrpc listen %s: %w", addr, err)
			close(s.bgDone)
			return
		}
		s.start(r, r)
	})
	return err
}

// Serve serves an existing listener (socket activation) and returns at once.
func (s *Server) Serve(ln net.Listener) error {
	if ln == nil {
		return errors.New("backrpc serve: nil listener")
	}
	err := errAlreadyStarted
	s.startOnce.Do(func() {
		r := transport.NewRouter(ln, s.routerHandler(), s.opts.Transport)
		s.start(r, r)
		err = nil
	})
	return err
}

// serveWith starts the server over any sender (tests and fuzzing).
func (s *Server) serveWith(out sender) {
	s.startOnce.Do(func() { s.start(out, nil) })
}

func (s *Server) routerHandler() transport.RouterHandler {
	return transport.RouterHandler{OnMessage: s.handleMessage, OnDisconnect: s.handleDisconnect}
}

func (s *Server) start(out sender, r *transport.Router) {
	s.out = out
	s.router = r
	close(s.started)
	go s.sweepLoop()
}

// Addr is the bound address, nil before Listen/Serve or without a socket.
func (s *Server) Addr() net.Addr {
	select {
	case <-s.started:
	default:
		return nil
	}
	if s.router == nil {
		return nil
	}
	return s.router.Addr()
}

// Close stops the server: the socket, the sweep, pending back-requests; it
// waits up to DrainTimeout for running handlers (their ctx is cancelled).
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.DrainTimeout)
	defer cancel()
	return s.Shutdown(ctx)
}

// Shutdown is Close bounded by ctx instead of DrainTimeout.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	calls := s.calls
	s.calls = map[string]*call{}
	s.mu.Unlock()

	// Settle Listen/Serve: one that never happened closes bgDone here.
	s.startOnce.Do(func() { close(s.bgDone) })
	var err error
	if s.router != nil {
		// The socket first: nothing is answered once shutdown began.
		if cerr := s.router.Close(); cerr != nil {
			err = fmt.Errorf("close router: %w", cerr)
		}
	}
	s.cancel()
	for _, c := range calls {
		c.resolve(callResult{err: ErrServerClosed}, true)
	}
	select {
	case <-s.bgDone:
	case <-ctx.Done():
	}
	done := make(chan struct{})
	go func() { s.handlers.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		if err == nil {
			err = fmt.Errorf("backrpc server shutdown: handlers still running: %w", ctx.Err())
		}
	}
	s.pool.stop(ctx)
	return err
}

// Stats returns the server's counters.
func (s *Server) Stats() ServerStats {
	s.mu.Lock()
	st := ServerStats{Clients: len(s.byID), CallsInFlight: len(s.calls), DetachedSessions: s.detached.Len()}
	s.mu.Unlock()
	st.Hellos = s.hellos.Load()
	st.Pings = s.pings.Load()
	st.Requests = s.requests.Load()
	st.Duplicates = s.duplicates.Load()
	st.Retries = s.retries.Load()
	st.BadMessages = s.bad.Load()
	st.HandlerErrors = s.handlerErrs.Load()
	st.Closes = s.closes.Load()
	st.Timeouts = s.timeouts.Load()
	st.Calls = s.callsSent.Load()
	st.AliveCapped = s.aliveCapped.Load()
	st.RefusedHellos = s.refusedHellos.Load()
	st.Evictions = s.evictions.Load()
	st.SessionKeyRefusals = s.sessionKeyRefusals.Load()
	select {
	case <-s.started:
		if s.router != nil {
			st.Transport = s.router.Stats()
		}
	default:
	}
	return st
}

// Clients lists the known client sessions.
func (s *Server) Clients() []ClientInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ClientInfo, 0, len(s.byID))
	for _, ss := range s.byID {
		out = append(out, ss.info)
	}
	return out
}

// Client returns the session of a client id.
func (s *Server) Client(clientID string) (ClientInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.byID[clientID]
	if !ok {
		return ClientInfo{}, false
	}
	return ss.info, true
}

// handleMessage dispatches one message from a peer: the transport's
// OnMessage. It never blocks on a handler and never panics on bad input.
func (s *Server) handleMessage(peer transport.PeerID, frames [][]byte) {
	<-s.started
	m, err := Decode(frames)
	if err != nil {
		s.bad.Add(1)
		s.log.WithError(err).WithField("peer", fmt.Sprintf("%x", peer)).Debug("dropping malformed message")
		// The reference stays silent here, leaving the caller waiting for
		// ever; with an id there is someone to answer.
		if m.Op == OpRequest && len(frames) >= 2 {
			s.send(peer, OpResponseError, m.ID, EncodeErrorPayload(fmt.Errorf("bad request: %w", err)))
		}
		return
	}
	now := time.Now()
	var info ClientInfo
	s.mu.Lock()
	ss := s.byPeer[peer]
	if ss != nil {
		ss.lastSeen = now
		info = ss.info
	}
	s.mu.Unlock()

	switch m.Op {
	case OpHello:
		s.onHello(peer, m, now)
	case OpPing:
		s.pings.Add(1)
		s.send(peer, OpPong, string(s.id), nil)
		if ss == nil {
			// A ping from nobody: we restarted or timed the client out.
			s.send(peer, OpAskHello, string(s.id), nil)
		} else if s.h.OnPing != nil {
			s.h.OnPing(info)
		}
	case OpClose:
		if ss != nil {
			s.closes.Add(1)
			if info, ok := s.drop(ss); ok {
				if s.h.OnClientClosed != nil {
					s.h.OnClientClosed(info)
				}
				s.disconnectLater(peer)
			}
		}
	case OpRequest:
		s.onRequest(peer, ss, m)
	case OpResponse, OpResponseError:
		s.onResponse(ss, m)
	default:
		// Client events (op 4) are ignored, as by the reference; the other
		// ops are server → client only.
		s.log.WithField("op", m.Op.String()).Debug("ignoring message")
	}
}

func (s *Server) onHello(peer transport.PeerID, m Message, now time.Time) {
	s.hellos.Add(1)
	if len(m.ID) > s.opts.MaxClientIDLen {
		s.refuseHello(peer, m.ID)
		return
	}
	hello := ParseHelloInfo(m.Payload)
	alive := hello.AliveTimeout
	if alive <= 0 {
		alive = s.opts.AliveTimeout
	}
	if alive > s.opts.MaxAliveTimeout {
		s.aliveCapped.Add(1)
		s.log.WithFields(logrus.Fields{
			"client": ShortID(m.ID), "peer": fmt.Sprintf("%x", peer),
			"asked": alive, "max_alive_timeout": s.opts.MaxAliveTimeout,
		}).Warn("hello asked for an alive timeout above the limit; granting the limit")
		alive = s.opts.MaxAliveTimeout
	}
	var replaced *ClientInfo
	first, reattached := false, false
	key, remote := s.peerSecurity(peer)

	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	ss := s.byPeer[peer]
	if ss != nil && ss.info.ID != m.ID {
		// The connection now speaks for another client id: the old one is
		// gone. (The reference would keep the old id for this connection.)
		old := ss.info
		s.dropLocked(ss)
		replaced = &old
		ss = nil
	}
	if ss == nil {
		if prev := s.byID[m.ID]; prev != nil {
			if prev.info.Key != key {
				s.mu.Unlock()
				s.refuseForeignHello(peer, m.ID, key, prev.info.Key, replaced)
				return
			}
			// The same client over a new connection: move the session with
			// its requests in flight, so their answers reach it there.
			prev.info.Remote = remote
			if s.byPeer[prev.info.Peer] == prev {
				delete(s.byPeer, prev.info.Peer)
			}
			prev.info.Peer = peer
			ss = prev
			reattached = true
		} else {
			ss = &session{info: ClientInfo{ID: m.ID, Peer: peer, Key: key, Remote: remote}, inflight: map[string]struct{}{}}
			s.byID[m.ID] = ss
			first = true
		}
		s.byPeer[peer] = ss
	}
	if ss.detached != nil {
		s.detached.Remove(ss.detached)
		ss.detached = nil
		reattached = true
	}
	ss.info.AliveTimeout = alive
	ss.info.Hello = hello
	ss.lastSeen = now
	info := ss.info
	s.mu.Unlock()

	// The handlers run before the answer goes out: a client acts on the
	// answer, and by then the server must know the session (its interest,
	// its liveness), or its first requests race the bookkeeping.
	if replaced != nil && s.h.OnClientClosed != nil {
		s.h.OnClientClosed(*replaced)
	}
	switch {
	case first && s.h.OnClientConnected != nil:
		s.h.OnClientConnected(info)
	case reattached && s.h.OnClientReconnected != nil:
		s.h.OnClientReconnected(info)
	}
	var answer []byte
	if !s.opts.ReferenceHello {
		answer = EncodeHelloInfo(HelloInfo{AliveTimeout: alive, Capabilities: s.opts.Capabilities})
	}
	s.send(peer, OpHello, string(s.id), answer)
}

// refuseHello answers a hello whose client id is over the limit with an
// error, keeps no session for it and closes the connection shortly after.
func (s *Server) refuseHello(peer transport.PeerID, id string) {
	s.refusedHellos.Add(1)
	err := fmt.Errorf("%w: %d bytes, the limit is %d", ErrClientIDTooLong, len(id), s.opts.MaxClientIDLen)
	s.log.WithFields(logrus.Fields{
		"client": ShortID(id), "peer": fmt.Sprintf("%x", peer),
		"client_id_length": len(id), "max_client_id_length": s.opts.MaxClientIDLen,
	}).Warn("refused a hello: client id over the limit; closing the connection")
	s.send(peer, OpResponseError, "", EncodeErrorPayload(err))
	s.mu.Lock()
	ss := s.byPeer[peer]
	s.mu.Unlock()
	if ss != nil {
		// The connection spoke for another client before: that one has
		// lost it now.
		s.handleDisconnect(peer)
	}
	s.disconnectLater(peer)
}

// ShortID is a client id cut for a log line.
func ShortID(id string) string {
	const max = 40
	if len(id) > max {
		return fmt.Sprintf("%s…(%d bytes)", id[:max], len(id))
	}
	return id
}

// disconnecter is the part of a transport.Router that closes a peer's
// connection.
type disconnecter interface {
	Disconnect(peer transport.PeerID)
}

// disconnectLater closes the connection of a session that was dropped
// (or never made) after dropGrace, time for what was sent to it to be
// written, unless a hello on it made a session meanwhile.
func (s *Server) disconnectLater(peer transport.PeerID) {
	d, ok := s.out.(disconnecter)
	if !ok {
		return
	}
	time.AfterFunc(dropGrace, func() {
		s.mu.Lock()
		keep := s.byPeer[peer] != nil || s.closing
		s.mu.Unlock()
		if !keep {
			d.Disconnect(peer)
		}
	})
}

func (s *Server) onRequest(peer transport.PeerID, ss *session, m Message) {
	if ss == nil {
		// Requests need a session; the client says hello and sends again.
		s.retries.Add(1)
		s.send(peer, OpRetry, m.ID, []byte(retryOne))
		return
	}
	arrived := s.arrivals.Add(1)
	method, params, err := DecodeRequestPayload(m.Payload)

	s.mu.Lock()
	if _, dup := ss.inflight[m.ID]; dup {
		s.mu.Unlock()
		s.duplicates.Add(1)
		return
	}
	if err != nil {
		s.mu.Unlock()
		s.bad.Add(1)
		s.send(peer, OpResponseError, m.ID, EncodeErrorPayload(err))
		return
	}
	if len(ss.inflight) >= s.opts.MaxInflight {
		s.mu.Unlock()
		s.retries.Add(1)
		s.send(peer, OpRetry, m.ID, []byte(retryOne))
		return
	}
	if s.overloadedLocked(ss) {
		s.mu.Unlock()
		s.send(peer, OpRetry, m.ID, []byte(retryOne))
		return
	}
	if s.closing {
		s.mu.Unlock()
		return
	}
	ss.inflight[m.ID] = struct{}{}
	s.overload.inflight++
	info := ss.info
	s.handlers.Add(1)
	s.mu.Unlock()

	s.requests.Add(1)
	if s.h.HandleRequestAsync != nil && s.runAsync(ss, info, m.ID, method, params) {
		return
	}
	s.pool.run(func() { s.runHandler(ss, info, m.ID, arrived, method, params) })
}

func (s *Server) runHandler(ss *session, info ClientInfo, id string, arrived uint64, method string, params json.RawMessage) {
	res, err := s.callHandler(info, id, arrived, method, params)
	s.finishRequest(ss, info, id, method, res, err)
}

func (s *Server) callHandler(info ClientInfo, id string, arrived uint64, method string, params json.RawMessage) (res any, err error) {
	if s.h.HandleRequest == nil {
		return nil, ErrNoHandler
	}
	defer func() {
		if r := recover(); r != nil {
			s.log.WithFields(logrus.Fields{"method": method, "client": info.ID, "panic": r}).
				Errorf("request handler panicked\n%s", debug.Stack())
			res, err = nil, fmt.Errorf("internal error in %s", method)
		}
	}()
	ctx := context.WithValue(context.WithValue(s.ctx, requestIDKey{}, id), arrivalKey{}, arrived)
	return s.h.HandleRequest(ctx, info, method, params)
}

func (s *Server) onResponse(ss *session, m Message) {
	if ss == nil {
		return
	}
	s.arrivals.Add(1)
	s.mu.Lock()
	c := s.calls[m.ID]
	if c == nil || c.clientID != ss.info.ID {
		s.mu.Unlock()
		s.log.WithField("id", m.ID).Debug("response to no back-request of this client")
		return
	}
	delete(s.calls, m.ID)
	s.mu.Unlock()
	s.arrivedResponse(c, m)
}

// arrivedResponse resolves a back-request with its answer.
func (s *Server) arrivedResponse(c *call, m Message) {
	var r callResult
	if m.Op == OpResponseError {
		r.err = DecodeErrorPayload(m.Payload)
	} else if raw, ok := ParseJSON(m.Payload); ok {
		r.raw = raw
	} else {
		r.err = ErrBadResponse
	}
	c.resolve(r, true)
}

func (s *Server) handleDisconnect(peer transport.PeerID) {
	// The session stays (the client may come back within its alive
	// timeout), but back-requests sent on that connection will not be
	// answered: fail them now rather than at their deadline.
	s.mu.Lock()
	var failed []*call
	for id, c := range s.calls {
		if c.peer == peer {
			delete(s.calls, id)
			failed = append(failed, c)
		}
	}
	var detached *ClientInfo
	var evicted []ClientInfo
	if ss := s.byPeer[peer]; ss != nil && ss.detached == nil && !s.closing {
		delete(s.byPeer, peer)
		ss.detached = s.detached.PushBack(ss)
		info := ss.info
		detached = &info
		for s.detached.Len() > s.opts.MaxDetachedSessions {
			old := s.detached.Front().Value.(*session)
			s.dropLocked(old)
			evicted = append(evicted, old.info)
		}
	}
	s.mu.Unlock()
	for _, c := range failed {
		c.resolve(callResult{err: fmt.Errorf("%w: connection lost", ErrClientGone)}, true)
	}
	if detached != nil && s.h.OnClientDisconnected != nil {
		s.h.OnClientDisconnected(*detached)
	}
	for _, info := range evicted {
		s.evictions.Add(1)
		s.log.WithFields(logrus.Fields{
			"client": ShortID(info.ID), "peer": fmt.Sprintf("%x", info.Peer),
			"max_detached_sessions": s.opts.MaxDetachedSessions,
		}).Warn("dropped the session of a disconnected client: too many disconnected clients kept")
		if s.h.OnClientTimeout != nil {
			s.h.OnClientTimeout(info)
		}
	}
}

// drop removes a session; false when it was already gone.
func (s *Server) drop(ss *session) (ClientInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byID[ss.info.ID] != ss {
		return ClientInfo{}, false
	}
	s.dropLocked(ss)
	return ss.info, true
}

func (s *Server) dropLocked(ss *session) {
	if s.byPeer[ss.info.Peer] == ss {
		delete(s.byPeer, ss.info.Peer)
	}
	if ss.detached != nil {
		s.detached.Remove(ss.detached)
		ss.detached = nil
	}
	if s.byID[ss.info.ID] == ss {
		delete(s.byID, ss.info.ID)
	}
	for id, c := range s.calls {
		if c.clientID == ss.info.ID {
			delete(s.calls, id)
			c.resolve(callResult{err: ErrClientGone}, false) // s.mu is held
		}
	}
}

func (s *Server) sweepLoop() {
	defer close(s.bgDone)
	t := time.NewTicker(s.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-t.C:
			s.sweep(now)
		}
	}
}

// sweep drops the clients silent for longer than their alive timeout.
func (s *Server) sweep(now time.Time) {
	type timedOut struct {
		info      ClientInfo
		connected bool
	}
	var gone []timedOut
	s.mu.Lock()
	for _, ss := range s.byID {
		if now.Sub(ss.lastSeen) > ss.info.AliveTimeout {
			connected := ss.detached == nil
			s.dropLocked(ss)
			gone = append(gone, timedOut{ss.info, connected})
		}
	}
	s.mu.Unlock()
	for _, g := range gone {
		info := g.info
		s.timeouts.Add(1)
		if g.connected {
			// Silent but connected: the connection goes with the session.
			// askHello first, as a ping would draw: a client that was only
			// slow says hello again (on its next connection) and registers
			// anew.
			s.send(info.Peer, OpAskHello, string(s.id), nil)
			s.disconnectLater(info.Peer)
		}
		s.log.WithFields(logrus.Fields{"client": ShortID(info.ID), "alive_timeout": info.AliveTimeout}).Info("client timed out")
		if s.h.OnClientTimeout != nil {
			s.h.OnClientTimeout(info)
		}
	}
}

// Call sends a back-request to a connected client and waits for its answer.
// Its id is CLIENTID-N with N from a server-wide counter. A responseError
// comes back as a *RemoteError.
func (s *Server) Call(ctx context.Context, clientID, method string, params any) (json.RawMessage, error) {
	payload, err := EncodeRequestPayload(method, params)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil, ErrServerClosed
	}
	ss := s.byID[clientID]
	if ss == nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("call %s on %s: %w", method, clientID, ErrUnknownClient)
	}
	if ss.detached != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("call %s on %s: %w: its connection is gone", method, clientID, ErrClientGone)
	}
	id := RequestID(clientID, s.callSeq)
	s.callSeq++
	c := &call{clientID: clientID, peer: ss.info.Peer, done: make(chan callResult, 1)}
	s.calls[id] = c
	s.mu.Unlock()

	s.callsSent.Add(1)
	if err := s.out.Send(c.peer, EncodeServer(Message{Op: OpRequest, ID: id, Payload: payload})...); err != nil {
		s.forgetCall(id, c)
		return nil, fmt.Errorf("call %s on %s: %w", method, clientID, err)
	}
	select {
	case r := <-c.done:
		if r.err != nil {
			return nil, fmt.Errorf("call %s on %s: %w", method, clientID, r.err)
		}
		return r.raw, nil
	case <-ctx.Done():
		s.forgetCall(id, c)
		return nil, fmt.Errorf("call %s on %s: %w", method, clientID, ctx.Err())
	}
}

// forgetCall removes a back-request; false when someone else already had.
func (s *Server) forgetCall(id string, c *call) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls[id] == c {
		delete(s.calls, id)
		return true
	}
	return false
}

// SendEvent sends an event (op 4) to one client.
func (s *Server) SendEvent(clientID string, payload any) error {
	p, err := MarshalJSON(payload)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	s.mu.Lock()
	ss := s.byID[clientID]
	var peer transport.PeerID
	if ss != nil {
		peer = ss.info.Peer
	}
	s.mu.Unlock()
	if ss == nil {
		return fmt.Errorf("event to %s: %w", clientID, ErrUnknownClient)
	}
	if err := s.out.Send(peer, EncodeServer(Message{Op: OpEvent, Payload: p})...); err != nil {
		return fmt.Errorf("event to %s: %w", clientID, err)
	}
	return nil
}

// Broadcast sends one event to every connected client; it returns how many
// it was queued for.
func (s *Server) Broadcast(payload any) (int, error) {
	p, err := MarshalJSON(payload)
	if err != nil {
		return 0, fmt.Errorf("encode event: %w", err)
	}
	frames := EncodeServer(Message{Op: OpEvent, Payload: p})
	s.mu.Lock()
	peers := make([]transport.PeerID, 0, len(s.byID))
	for _, ss := range s.byID {
		if ss.detached == nil {
			peers = append(peers, ss.info.Peer)
		}
	}
	s.mu.Unlock()
	n := 0
	for _, peer := range peers {
		if s.out.Send(peer, frames...) == nil {
			n++
		}
	}
	return n, nil
}

func (s *Server) send(peer transport.PeerID, op Op, id string, payload []byte) {
	if err := s.out.Send(peer, EncodeServer(Message{Op: op, ID: id, Payload: payload})...); err != nil {
		s.log.WithError(err).WithFields(logrus.Fields{"op": op.String(), "id": id}).Debug("send failed")
	}
}
