package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
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
			// EMFILE and friends: back off instead of spinning, as
			// net/http does, so the process stays responsive.
			r.acceptErrors.Add(1)
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff *= 2; backoff > time.Second {
				backoff = time.Second
			}
			r.log.WithError(err).Warnf("accept failed; retrying in %s", backoff)
			r.sleep(r.ctx, backoff)
			continue
		}
		backoff = 0
		r.accepted.Add(1)
		// No SetNoDelay/SetKeepAlive: Go's TCP accept already sets
		// both (also on a listener systemd passed), and the two extra
		// system calls were part of every connect.
		r.wg.Add(1)
		go r.serveConn(c)
	}
}

func (r *Router) serveConn(nc net.Conn) {
	defer r.wg.Done()
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

	reason := cn.readLoop(func(frames [][]byte) { r.h.OnMessage(id, frames) })
	cn.wait()

	r.mu.Lock()
	current := r.peers[id] == cn
	if current {
		delete(r.peers, id)
	}
	r.mu.Unlock()

	switch {
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
		Rejected:            r.rejected.Load(),
	}
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
