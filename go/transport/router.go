package transport

import (
	"container/list"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
)

// PeerID is a ROUTER's routing id for one peer: opaque bytes.
type PeerID string

// RouterHandler receives what a Router's peers send.
type RouterHandler struct {
	// OnMessage is called on the peer's own read goroutine, in order. The
	// frames belong to the callee. It must not block for long: slow work
	// goes to a goroutine, or that peer's next messages wait.
	OnMessage func(peer PeerID, frames [][]byte)
	// OnDisconnect is called when a peer's connection ends, unless a newer
	// connection with the same identity has replaced it. Optional.
	OnDisconnect func(peer PeerID)
}

// RouterStats are cumulative counters and current gauges of a Router.
type RouterStats struct {
	Peers               int
	Accepted            uint64
	HandshakeFailures   uint64
	OversizeFrames      uint64
	SlowPeerDisconnects uint64
	Replaced            uint64
	AcceptErrors        uint64
	// Connections is the number of open connections, handshaking or
	// established (gauge); MaxConnections bounds it.
	Connections int
	// ConnectionsRefused counts connections closed at once because
	// MaxConnections were open and none of them was still silent.
	ConnectionsRefused uint64
	// ConnectionsEvicted counts connections that had not begun a message
	// (the oldest first) closed to make room for a new one when
	// MaxConnections were open.
	ConnectionsEvicted uint64
	// FirstMessageTimeouts counts connections closed for not beginning a
	// message within FirstMessageTimeout of their handshake.
	FirstMessageTimeouts uint64
	// StalledFrames counts connections closed because a message stopped
	// making progress for FrameProgressTimeout.
	StalledFrames uint64
	// BufferBudgetExceeded counts connections closed because their
	// unfinished message would go over MaxBufferedBytes.
	BufferBudgetExceeded uint64
	// BufferedBytes is the memory held for unfinished messages (gauge).
	BufferedBytes int64
	// Rejected counts handshakes refused by this side: unauthorized
	// keys, wrong mechanism, wrong socket type, identity held by
	// another key. They are also in HandshakeFailures.
	Rejected uint64
}

// Router is a ZeroMQ ROUTER socket bound to one listener.
type Router struct {
	ln   net.Listener
	h    RouterHandler
	opts Options
	log  logrus.FieldLogger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.RWMutex
	peers map[PeerID]*conn

	nextID atomic.Uint32
	sleep  func(context.Context, time.Duration)

	cookies *cookieJar // CURVE cookie keys (zmtp.go, curve.go)

	accepted, handshakeFailures, oversize, slow, replaced, acceptErrors, rejected atomic.Uint64

	open                                 atomic.Int64
	budget                               byteBudget
	warns                                warnLimiter
	refused, silent, stalled, overBudget atomic.Uint64

	// silentConns holds the connections that have not begun a message
	// yet, oldest first: at MaxConnections the oldest makes room for a
	// new one, so that a flood of silent connections cannot keep out a
	// client that speaks.
	smu         sync.Mutex
	silentConns list.List
	evicting    atomic.Int64
	evicted     atomic.Uint64
}

// maxEvicting bounds the evicted connections still being torn down: past
// it, new connections are refused until the descriptors come back.
const maxEvicting = 32

// silentConn is a Router connection that has not begun a message.
type silentConn struct {
	nc      net.Conn
	el      *list.Element // nil once it spoke, ended or was evicted
	evicted bool
}

// track adds a new connection to the silent ones.
func (r *Router) track(nc net.Conn) *silentConn {
	sc := &silentConn{nc: nc}
	r.smu.Lock()
	sc.el = r.silentConns.PushBack(sc)
	r.smu.Unlock()
	return sc
}

// spoke removes sc from the silent connections.
func (r *Router) spoke(sc *silentConn) {
	r.smu.Lock()
	if sc.el != nil {
		r.silentConns.Remove(sc.el)
		sc.el = nil
	}
	r.smu.Unlock()
}

// evictOldestSilent closes the oldest connection that has not begun a
// message, if any, and reports whether it did.
func (r *Router) evictOldestSilent() bool {
	if r.evicting.Load() >= maxEvicting {
		return false
	}
	r.smu.Lock()
	front := r.silentConns.Front()
	if front == nil {
		r.smu.Unlock()
		return false
	}
	sc := front.Value.(*silentConn)
	r.silentConns.Remove(front)
	sc.el = nil
	sc.evicted = true
	r.smu.Unlock()
	r.evicting.Add(1)
	r.evicted.Add(1)
	if tc, ok := sc.nc.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = sc.nc.Close()
	r.warns.warn(r.log.WithFields(logrus.Fields{"peer_addr": sc.nc.RemoteAddr().String(), "max_connections": r.opts.MaxConnections}),
		"evicted", "closed the oldest connection that had sent no message, to make room: max_connections are open")
	return true
}

// Listen binds addr ("tcp://HOST:PORT", HOST may be "*", or "HOST:PORT") and
// serves it.
func Listen(addr string, h RouterHandler, opts Options) (*Router, error) {
	hostport, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", hostport)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return NewRouter(ln, h, opts), nil
}

// NewRouter serves an existing listener, e.g. one passed by systemd.
func NewRouter(ln net.Listener, h RouterHandler, opts Options) *Router {
	return newRouter(ln, h, opts, sleepCtx)
}

// sleepCtx waits for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func newRouter(ln net.Listener, h RouterHandler, opts Options, sleep func(context.Context, time.Duration)) *Router {
	opts = opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	r := &Router{
		ln:     ln,
		h:      h,
		opts:   opts,
		log:    opts.Logger.WithField("listen", ln.Addr().String()),
		ctx:    ctx,
		cancel: cancel,
		peers:  make(map[PeerID]*conn),
		sleep:  sleep,
	}
	r.budget.limit = opts.MaxBufferedBytes
	if opts.CurveServer != nil {
		// A secret key X25519 refuses cannot be made (any 32 bytes
		// are a valid scalar), so this never fails in practice.
		jar, err := newCookieJar(opts.CurveServer)
		if err != nil {
			panic(fmt.Sprintf("transport: %v", err))
		}
		r.cookies = jar
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.cookies.supply(ctx)
		}()
	}
	// libzmq numbers the peers it names from a random start; so do we, so
	// that ids do not collide with a previous run's for long.
	r.nextID.Store(uint32(time.Now().UnixNano()))
	r.wg.Add(1)
	go r.acceptLoop()
	return r
}

// ParseAddr turns "tcp://HOST:PORT", "tcp://*:PORT" or "HOST:PORT" into a
// host:port for net.Listen and net.Dial.
func ParseAddr(addr string) (string, error) {
	a := strings.TrimPrefix(addr, "tcp://")
	if strings.Contains(a, "://") {
		return "", fmt.Errorf("address %q: only tcp:// is supported", addr)
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return "", fmt.Errorf("address %q: %w", addr, err)
	}
	if host == "*" {
		host = ""
	}
	return net.JoinHostPort(host, port), nil
}

// Addr is the bound address.
func (r *Router) Addr() net.Addr { return r.ln.Addr() }

func (r *Router) acceptLoop() {
	defer r.wg.Done()
	var backoff time.Duration
	for {
		c, err := r.ln.Accept()
		if err != nil {
			if r.ctx.Err() != nil {
				return
			}
			if errors.Is(err, net.ErrClosed) {
				r.log.WithError(err).Error("listener closed under the router")
				return
			}
			r.acceptErrors.Add(1)
			if (errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)) && r.evictOldestSilent() {
				// Out of descriptors: the oldest connection that has
				// said nothing gives its descriptor back, so that the
				// connection waiting in the backlog is served now.
				r.sleep(r.ctx, time.Millisecond) // while it closes
				continue
			}
			// EMFILE and friends: back off instead of spinning, as
			// net/http does, so the process stays responsive.
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff *= 2; backoff > time.Second {
				backoff = time.Second
			}
			r.warns.warn(r.log.WithError(err).WithField("retry_in", backoff), "accept", "accept failed; retrying")
			r.sleep(r.ctx, backoff)
			continue
		}
		backoff = 0
		r.accepted.Add(1)
		if limit := r.opts.MaxConnections; limit > 0 && r.open.Load()-r.evicting.Load() >= int64(limit) && !r.evictOldestSilent() {
			// Closed at once, with a reset: the descriptor comes back
			// now and a peer that keeps trying costs nothing else.
			r.refused.Add(1)
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			_ = c.Close()
			r.warns.warn(r.log.WithFields(logrus.Fields{"peer_addr": c.RemoteAddr().String(), "max_connections": limit}),
				"refused", "closed a new connection: max_connections are open and every one has sent a message")
			continue
		}
		r.open.Add(1)
		// No SetNoDelay/SetKeepAlive: Go's TCP accept already sets
		// both (also on a listener systemd passed), and the two extra
		// system calls were part of every connect.
		r.wg.Add(1)
		go r.serveConn(c, r.track(c))
	}
}

func (r *Router) serveConn(nc net.Conn, sc *silentConn) {
	defer r.wg.Done()
	defer r.open.Add(-1)
	defer func() {
		r.spoke(sc)
		r.smu.Lock()
		evicted := sc.evicted
		r.smu.Unlock()
		if evicted {
			r.evicting.Add(-1)
		}
	}()
	cn, err := handshake(r.ctx, nc, hsParams{server: true, socketType: socketRouter, opts: r.opts, cookies: r.cookies, admit: r.admit})
	if err != nil {
		r.handshakeFailures.Add(1)
		if errors.Is(err, ErrPeerRejected) || errors.Is(err, ErrMechanismMismatch) {
			r.rejected.Add(1)
			r.log.WithError(err).WithField("remote", nc.RemoteAddr().String()).Warn("refused a peer's handshake")
		} else {
			r.log.WithError(err).Debug("handshake failed")
		}
		_ = nc.Close()
		return
	}
	cn.g.budget = &r.budget
	if err := cn.g.armReadDeadlines(r.opts.FirstMessageTimeout, r.opts.FrameProgressTimeout); err != nil {
		r.log.WithError(err).Debug("connection lost after the handshake")
		_ = nc.Close()
		return
	}
	go cn.writeLoop()
	id := PeerID(cn.peerIdentity())
	if id == "" {
		// As libzmq does for a peer without a routing id: 0x00 and a
		// 32-bit counter.
		var b [5]byte
		binary.BigEndian.PutUint32(b[1:], r.nextID.Add(1))
		id = PeerID(b[:])
	}

	r.mu.Lock()
	if r.ctx.Err() != nil {
		r.mu.Unlock()
		cn.shutdown(ErrClosed)
		cn.wait()
		return
	}
	old := r.peers[id]
	if old != nil && !samePeerKey(old.info, cn.info) {
		// Checked in admit too; this catches two handshakes racing.
		r.mu.Unlock()
		r.rejected.Add(1)
		r.log.WithField("peer", fmt.Sprintf("%x", id)).Warn("refused a connection claiming an identity held by another key")
		cn.shutdown(errIdentityInUse)
		cn.wait()
		return
	}
	r.peers[id] = cn
	r.mu.Unlock()
	if old != nil {
		// A reconnecting peer replaces its old connection, whose replies
		// would otherwise go nowhere.
		r.replaced.Add(1)
		old.shutdown(fmt.Errorf("replaced by a new connection with the same identity"))
	}

	first := true
	reason := cn.readLoop(func(frames [][]byte) {
		if first {
			first = false
			r.spoke(sc)
		}
		r.h.OnMessage(id, frames)
	})
	cn.wait()

	r.mu.Lock()
	current := r.peers[id] == cn
	if current {
		delete(r.peers, id)
	}
	r.mu.Unlock()

	peerLog := func() logrus.FieldLogger {
		return r.log.WithError(reason).WithFields(logrus.Fields{"peer": fmt.Sprintf("%x", id), "peer_addr": nc.RemoteAddr().String()})
	}
	switch {
	case errors.Is(reason, ErrFirstMessageTimeout):
		r.silent.Add(1)
		r.warns.warn(peerLog().WithField("first_message_timeout", r.opts.FirstMessageTimeout), "silent",
			"closed a connection that sent no message after its handshake")
	case errors.Is(reason, ErrFrameStalled):
		r.stalled.Add(1)
		r.warns.warn(peerLog().WithField("frame_progress_timeout", r.opts.FrameProgressTimeout), "stalled",
			"closed a connection whose message stopped making progress")
	case errors.Is(reason, ErrBufferBudget):
		r.overBudget.Add(1)
		r.warns.warn(peerLog().WithField("max_buffered_bytes", r.opts.MaxBufferedBytes), "budget",
			"closed a connection whose unfinished message would go over the buffered-bytes budget")
	case errors.Is(reason, ErrFrameTooLarge):
		r.oversize.Add(1)
		r.log.WithError(reason).WithField("peer", fmt.Sprintf("%x", id)).Warn("closed a connection that announced an oversized frame")
	case errors.Is(reason, ErrQueueFull):
		r.slow.Add(1)
		r.log.WithField("peer", fmt.Sprintf("%x", id)).Warnf("disconnected a peer that stopped reading (%d messages queued)", r.opts.SendQueue)
	default:
		r.log.WithError(reason).WithField("peer", fmt.Sprintf("%x", id)).Debug("peer disconnected")
	}
	if current && r.h.OnDisconnect != nil {
		r.h.OnDisconnect(id)
	}
	if cn.g.abandoned >= returnMemoryAfter {
		returnMemory()
	}
}

// An unfinished message of at least returnMemoryAfter bytes dropped with
// its connection has the process give free memory back to the system soon
// after (drops within returnMemoryDelay of each other together, and at
// most once per returnMemoryEvery): otherwise the process keeps it until a
// collection that nothing may trigger for minutes, and a peer that sends
// large partial frames and goes away leaves the process large.
const (
	returnMemoryAfter = 8 << 20
	returnMemoryDelay = 100 * time.Millisecond
	returnMemoryEvery = 5 * time.Second
)

var memoryReturn struct {
	mu      sync.Mutex
	pending bool
	last    time.Time
}

func returnMemory() {
	memoryReturn.mu.Lock()
	defer memoryReturn.mu.Unlock()
	if memoryReturn.pending {
		return
	}
	memoryReturn.pending = true
	delay := max(returnMemoryDelay, time.Until(memoryReturn.last.Add(returnMemoryEvery)))
	time.AfterFunc(delay, func() {
		memoryReturn.mu.Lock()
		memoryReturn.pending = false
		memoryReturn.last = time.Now()
		memoryReturn.mu.Unlock()
		debug.FreeOSMemory()
	})
}

// Send queues a message for peer. It never blocks.
func (r *Router) Send(peer PeerID, frames ...[]byte) error {
	if len(frames) == 0 {
		return ErrNoFrames
	}
	r.mu.RLock()
	cn := r.peers[peer]
	r.mu.RUnlock()
	if cn == nil {
		if r.ctx.Err() != nil {
			return ErrClosed
		}
		return fmt.Errorf("%w %x", ErrUnknownPeer, string(peer))
	}
	return cn.enqueue(frames)
}

// Disconnect closes the connection of peer, if any.
func (r *Router) Disconnect(peer PeerID) {
	r.mu.RLock()
	cn := r.peers[peer]
	r.mu.RUnlock()
	if cn != nil {
		cn.shutdown(errors.New("disconnected by the server"))
	}
}

// Close stops accepting, closes every peer and waits for their goroutines.
func (r *Router) Close() error {
	r.cancel()
	err := r.ln.Close()
	r.mu.Lock()
	for _, cn := range r.peers {
		cn.shutdown(ErrClosed)
	}
	r.mu.Unlock()
	r.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// Stats reports counters and the number of connected peers.
func (r *Router) Stats() RouterStats {
	r.mu.RLock()
	n := len(r.peers)
	r.mu.RUnlock()
	return RouterStats{
		Peers:               n,
		Accepted:            r.accepted.Load(),
		HandshakeFailures:   r.handshakeFailures.Load(),
		OversizeFrames:      r.oversize.Load(),
		SlowPeerDisconnects: r.slow.Load(),
		Replaced:            r.replaced.Load(),
		AcceptErrors:        r.acceptErrors.Load(),

		Connections:          int(r.open.Load()),
		ConnectionsRefused:   r.refused.Load(),
		ConnectionsEvicted:   r.evicted.Load(),
		FirstMessageTimeouts: r.silent.Load(),
		StalledFrames:        r.stalled.Load(),
		BufferBudgetExceeded: r.overBudget.Load(),
		BufferedBytes:        r.budget.used.Load(),
		Rejected:             r.rejected.Load(),
	}
}

// warnInterval is the least time between two warnings of one kind: a
// flood of hostile connections makes one line a second, which says how
// many it stands for.
const warnInterval = time.Second

// warnLimiter rate-limits a Router's warnings by kind.
type warnLimiter struct {
	mu         sync.Mutex
	last       map[string]time.Time
	suppressed map[string]int
}

func (w *warnLimiter) warn(log logrus.FieldLogger, kind, msg string) {
	w.mu.Lock()
	if w.last == nil {
		w.last, w.suppressed = map[string]time.Time{}, map[string]int{}
	}
	now := time.Now()
	if t, ok := w.last[kind]; ok && now.Sub(t) < warnInterval {
		w.suppressed[kind]++
		w.mu.Unlock()
		return
	}
	w.last[kind] = now
	n := w.suppressed[kind]
	w.suppressed[kind] = 0
	w.mu.Unlock()
	if n > 0 {
		log = log.WithField("similar_suppressed", n)
	}
	log.Warn(msg)
}

// errIdentityInUse refuses a peer that claims the routing id of a connected
// peer with another key or mechanism: replacing that connection would give
// it the other peer's replies.
var errIdentityInUse = &rejectError{"identity in use by another key"}

func samePeerKey(a, b PeerInfo) bool {
	return a.Mechanism == b.Mechanism && a.PublicKey == b.PublicKey
}

// admit is the Router's last check of a peer before its READY: a peer may
// replace a connection with the same identity (a reconnect) only with the
// same key.
func (r *Router) admit(_ context.Context, info *PeerInfo) error {
	if info.Identity == "" {
		return nil
	}
	r.mu.RLock()
	old := r.peers[PeerID(info.Identity)]
	r.mu.RUnlock()
	if old != nil && !samePeerKey(old.info, *info) {
		return errIdentityInUse
	}
	return nil
}

// PeerInfo reports how a connected peer authenticated: its mechanism, its
// CURVE public key, its address. A peer id keeps its key for as long as it
// is connected: a connection with the same identity and another key is
// refused.
func (r *Router) PeerInfo(peer PeerID) (PeerInfo, bool) {
	r.mu.RLock()
	cn := r.peers[peer]
	r.mu.RUnlock()
	if cn == nil {
		return PeerInfo{}, false
	}
	return cn.info, true
}
