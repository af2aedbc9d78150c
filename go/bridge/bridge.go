// Package bridge forwards TCP and unix-socket connections to a target: the
// core of the huly-bridge daemon, and what the agent uses to bring an nspawn
// container's port to the host (see TwoTier).
//
// Each accepted connection gets a dial to its target (bounded retries with
// backoff, so a target that is down at start or restarting is normal) and
// two copies joined before both sockets close. Copies are io.Copy between
// *net.TCPConn, so Linux moves the bytes with splice(2) without passing them
// through user space; the idle timeout reads the kernel's TCP_INFO instead
// of refreshing a deadline per read, for the same reason.
package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// DefaultDrainTimeout is how long Run lets active connections finish after
// its context ends, when Options.DrainTimeout is zero.
const DefaultDrainTimeout = 10 * time.Second

// Options configure a Bridge.
type Options struct {
	Forwards []Forward
	// Listeners are already-open listeners by forward name (socket
	// activation). A forward with one needs no Listen address; the Bridge
	// owns them from New on.
	Listeners map[string][]net.Listener
	// DrainTimeout bounds how long Run waits for active connections after
	// its context is done (0: DefaultDrainTimeout; negative: do not wait).
	DrainTimeout time.Duration
	Log          logrus.FieldLogger
}

// Bridge serves a set of forwards.
type Bridge struct {
	log          logrus.FieldLogger
	drainTimeout time.Duration
	forwards     []*forward
	byName       map[string]*forward

	listenMu sync.Mutex
	listened bool
	ran      atomic.Bool

	// hardCtx aborts pending dials when the drain deadline passes.
	hardCtx    context.Context
	hardCancel context.CancelFunc

	connMu sync.Mutex
	conns  map[*proxyConn]struct{}
	connWG sync.WaitGroup
}

// New validates opts and returns a Bridge. Listening starts with Listen or
// Run. Listeners in opts that match no forward are an error: a socket unit
// naming a forward that does not exist is a configuration mistake.
func New(opts Options) (*Bridge, error) {
	if len(opts.Forwards) == 0 {
		return nil, errors.New("no forwards configured")
	}
	log := opts.Log
	if log == nil {
		log = logrus.StandardLogger()
	}
	drain := opts.DrainTimeout
	if drain == 0 {
		drain = DefaultDrainTimeout
	}
	b := &Bridge{
		log:          log,
		drainTimeout: drain,
		byName:       make(map[string]*forward, len(opts.Forwards)),
		conns:        make(map[*proxyConn]struct{}),
	}
	var errs []error
	for _, fw := range opts.Forwards {
		lns := opts.Listeners[fw.Name]
		if err := fw.Validate(len(lns) > 0); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, dup := b.byName[fw.Name]; dup {
			errs = append(errs, fmt.Errorf("forward %q: defined twice", fw.Name))
			continue
		}
		f := &forward{cfg: fw.withDefaults(), listeners: lns, activated: len(lns) > 0}
		f.target, _ = ParseAddress(fw.Target)
		if fw.Listen != "" {
			f.listenAddr, _ = ParseAddress(fw.Listen)
		}
		b.forwards = append(b.forwards, f)
		b.byName[fw.Name] = f
	}
	for name := range opts.Listeners {
		if _, ok := b.byName[name]; !ok {
			errs = append(errs, fmt.Errorf("listener %q matches no forward", name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	b.hardCtx, b.hardCancel = context.WithCancel(context.Background())
	return b, nil
}

// Listen opens every forward's listener that was not handed over. It is
// idempotent; on error the listeners it opened are closed.
func (b *Bridge) Listen(ctx context.Context) error {
	b.listenMu.Lock()
	defer b.listenMu.Unlock()
	if b.listened {
		return nil
	}
	var opened []net.Listener
	for _, f := range b.forwards {
		if f.activated {
			if f.cfg.Listen != "" {
				b.log.WithFields(logrus.Fields{"forward": f.cfg.Name, "listen": f.cfg.Listen}).
					Info("using the socket-activated listener; the configured listen address is ignored")
			}
			continue
		}
		ln, err := listen(ctx, f.listenAddr)
		if err != nil {
			for _, l := range opened {
				_ = l.Close()
			}
			return fmt.Errorf("forward %q: listen on %s: %w", f.cfg.Name, f.listenAddr, err)
		}
		opened = append(opened, ln)
		f.listeners = []net.Listener{ln}
	}
	b.listened = true
	for _, f := range b.forwards {
		b.log.WithFields(logrus.Fields{"forward": f.cfg.Name, "listen": f.listenString(), "target": f.target.String()}).Info("forwarding")
	}
	return nil
}

// Addrs returns the addresses forward name listens on (nil before Listen).
func (b *Bridge) Addrs(name string) []net.Addr {
	f := b.byName[name]
	if f == nil {
		return nil
	}
	b.listenMu.Lock()
	defer b.listenMu.Unlock()
	out := make([]net.Addr, 0, len(f.listeners))
	for _, ln := range f.listeners {
		out = append(out, ln.Addr())
	}
	return out
}

// Run listens (if Listen was not called) and serves until ctx is done. Then
// it stops accepting, lets active connections finish for up to the drain
// timeout, closes the rest, and returns once every connection's goroutines
// have ended. It returns an error only when listening fails. A Bridge runs
// once.
func (b *Bridge) Run(ctx context.Context) error {
	if !b.ran.CompareAndSwap(false, true) {
		return errors.New("bridge: Run called twice")
	}
	defer b.hardCancel()
	if err := b.Listen(ctx); err != nil {
		b.closeListeners()
		return err
	}
	var accepts sync.WaitGroup
	for _, f := range b.forwards {
		for _, ln := range f.listeners {
			accepts.Add(1)
			go func() {
				defer accepts.Done()
				b.acceptLoop(ctx, f, ln)
			}()
		}
	}
	<-ctx.Done()
	b.closeListeners()
	accepts.Wait()
	b.drain()
	return nil
}

func (b *Bridge) closeListeners() {
	b.listenMu.Lock()
	defer b.listenMu.Unlock()
	for _, f := range b.forwards {
		for _, ln := range f.listeners {
			_ = ln.Close()
		}
	}
}

func (b *Bridge) drain() {
	done := make(chan struct{})
	go func() {
		b.connWG.Wait()
		close(done)
	}()
	active := b.activeConnections()
	if active > 0 && b.drainTimeout > 0 {
		b.log.WithFields(logrus.Fields{"active": active, "timeout": b.drainTimeout}).Info("draining connections")
		t := time.NewTimer(b.drainTimeout)
		defer t.Stop()
		select {
		case <-done:
			return
		case <-t.C:
		}
	}
	if n := b.abortAll(); n > 0 {
		b.log.WithField("closed", n).Warn("drain deadline passed; closing remaining connections")
	}
	b.hardCancel()
	// Closing the sockets ends every copy and the cancelled context every
	// dial, so this wait is bounded.
	<-done
}

// Abort closes every connection now and cancels pending dials, without
// waiting for the drain timeout (a second SIGTERM). Run still returns only
// once they are gone.
func (b *Bridge) Abort() {
	b.abortAll()
	b.hardCancel()
}

func (b *Bridge) activeConnections() int64 {
	var n int64
	for _, f := range b.forwards {
		n += f.active.Load()
	}
	return n
}

func (b *Bridge) abortAll() int {
	b.connMu.Lock()
	conns := make([]*proxyConn, 0, len(b.conns))
	for pc := range b.conns {
		conns = append(conns, pc)
	}
	b.connMu.Unlock()
	for _, pc := range conns {
		pc.abort()
	}
	return len(conns)
}

func (b *Bridge) acceptLoop(ctx context.Context, f *forward, ln net.Listener) {
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and the like: retrying at once would spin a core.
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff *= 2; backoff > time.Second {
				backoff = time.Second
			}
			b.log.WithError(err).WithField("forward", f.cfg.Name).Warnf("accept failed; retrying in %s", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		backoff = 0
		if f.activated {
			// A listener from systemd was not made by our ListenConfig, so
			// Go enabled keepalive on the accepted connection.
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetKeepAlive(false)
			}
		}
		if max := f.cfg.MaxConnections; max > 0 && f.active.Load() >= int64(max) {
			f.rejected.Add(1)
			reject(c)
			continue
		}
		f.active.Add(1)
		f.total.Add(1)
		b.connWG.Add(1)
		go b.serve(f, c)
	}
}

// reject closes c with a reset, so the client learns at once that it was
// turned away instead of reading an orderly EOF it might take for a reply.
func reject(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

func (b *Bridge) track(pc *proxyConn) {
	b.connMu.Lock()
	b.conns[pc] = struct{}{}
	b.connMu.Unlock()
}

func (b *Bridge) untrack(pc *proxyConn) {
	b.connMu.Lock()
	delete(b.conns, pc)
	b.connMu.Unlock()
}

// serve dials the target for an accepted client and hands the two
// directions to two fresh goroutines, then returns. The dial path is deep
// enough to grow a goroutine's stack to 8 KiB; the copies need much less, and
// a stack never shrinks before a GC notices, so copying on the dialling
// goroutine would cost an idle connection several KiB more.
func (b *Bridge) serve(f *forward, client net.Conn) {
	pc := &proxyConn{client: client}
	b.track(pc)
	target, err := b.dial(b.hardCtx, f)
	if err != nil {
		f.dialFailures.Add(1)
		b.log.WithError(err).WithField("forward", f.cfg.Name).Debug("closing client: target unreachable")
		b.release(f, pc)
		return
	}
	if !pc.setTarget(target) {
		b.release(f, pc) // aborted while dialling
		return
	}
	if f.cfg.IdleTimeout > 0 {
		pc.idle = watchIdle(pc, f.cfg.IdleTimeout, func() { f.idleClosed.Add(1) })
	}
	pc.pumps.Store(2)
	go b.pump(f, pc, target, client, &f.bytesUp, 0)
	go b.pump(f, pc, client, target, &f.bytesDown, 1)
}

// pump copies one direction; the last of the two to finish closes the
// connection, so both directions are joined before the sockets close.
func (b *Bridge) pump(f *forward, pc *proxyConn, dst, src net.Conn, n *atomic.Uint64, dir int) {
	err := copyConn(dst, src, n, pc.idle.counter(dir))
	pc.finish(dst, err)
	if pc.pumps.Add(-1) == 0 {
		b.release(f, pc)
	}
}

func (b *Bridge) release(f *forward, pc *proxyConn) {
	pc.idle.stop()
	pc.abort()
	b.untrack(pc)
	f.active.Add(-1)
	b.connWG.Done()
}

// dial connects to f's target, retrying with doubling backoff.
func (b *Bridge) dial(ctx context.Context, f *forward) (net.Conn, error) {
	// TCP keepalive is off, as in socat, HAProxy and nginx by default: it
	// would cost four setsockopt calls on each side of every connection
	// (about a fifth of the syscalls of a short one), and a forward that
	// must drop dead peers has the idle timeout.
	d := net.Dialer{Timeout: f.cfg.DialTimeout, KeepAlive: -1}
	backoff := f.cfg.DialBackoff
	var lastErr error
	attempts := 0
	for attempts <= f.cfg.DialRetries {
		if attempts > 0 {
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, fmt.Errorf("dial %s: %w (last error: %v)", f.target, ctx.Err(), lastErr)
			case <-t.C:
			}
			if backoff *= 2; backoff > MaxDialBackoff {
				backoff = MaxDialBackoff
			}
		}
		attempts++
		c, err := d.DialContext(ctx, f.target.Network, f.target.Addr)
		if err == nil {
			f.markReachable(b.log)
			return c, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
		f.dialErrors.Add(1)
		f.markUnreachable(b.log, err)
	}
	return nil, fmt.Errorf("dial %s: gave up after %d attempts: %w", f.target, attempts, lastErr)
}

// proxyConn is one client connection and, once dialled, its target.
type proxyConn struct {
	idle  *idleWatcher // nil without an idle timeout
	pumps atomic.Int32 // copy goroutines still running

	mu      sync.Mutex
	client  net.Conn
	target  net.Conn
	aborted bool
}

// setTarget records the dialled target; false (and the target closed) when
// the connection was aborted meanwhile.
func (p *proxyConn) setTarget(t net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.aborted {
		_ = t.Close()
		return false
	}
	p.target = t
	return true
}

// abort closes both sockets; it is idempotent.
func (p *proxyConn) abort() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.aborted {
		return
	}
	p.aborted = true
	_ = p.client.Close()
	if p.target != nil {
		_ = p.target.Close()
	}
}

// finish ends one direction: on EOF it half-closes dst so the peer sees the
// EOF and the other direction goes on; on an error (a reset, a closed
// socket) both sides are closed, because the stream can no longer be
// delivered faithfully.
func (p *proxyConn) finish(dst net.Conn, err error) {
	if err != nil {
		p.abort()
		return
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() == nil {
			return
		}
	}
	p.abort()
}

// copyChunk is how many bytes one splice run may move before the byte
// counters are updated, so long transfers show in Stats while they run.
const copyChunk = 4 << 20

// copyConn copies src to dst until EOF (nil) or an error, adding the bytes
// to n. activity, when not nil, is bumped per read; it is used only for
// pairs of non-TCP sockets, which cannot splice anyway.
func copyConn(dst, src net.Conn, n *atomic.Uint64, activity *atomic.Uint64) error {
	var r io.Reader = src
	if activity != nil {
		r = &activityConn{Conn: src, n: activity}
	}
	if _, ok := dst.(*net.TCPConn); !ok || activity != nil {
		// TCPConn.WriteTo splices into a unix socket; a LimitedReader in
		// between would hide that.
		w, err := io.Copy(dst, r)
		n.Add(uint64(w))
		return err
	}
	lr := &io.LimitedReader{R: r}
	for {
		lr.N = copyChunk
		w, err := io.Copy(dst, lr)
		n.Add(uint64(w))
		if err != nil {
			return err
		}
		if lr.N > 0 {
			return nil
		}
	}
}

type activityConn struct {
	net.Conn
	n *atomic.Uint64
}

func (a *activityConn) Read(p []byte) (int, error) {
	k, err := a.Conn.Read(p)
	a.n.Add(uint64(k))
	return k, err
}

func (f *forward) listenString() string {
	var parts []string
	for _, ln := range f.listeners {
		parts = append(parts, ln.Addr().Network()+":"+ln.Addr().String())
	}
	return strings.Join(parts, ",")
}
