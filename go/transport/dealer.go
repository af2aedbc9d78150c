package transport

import (
	"context"
	"crypto/ecdh"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// DealerOptions configure a Dealer.
type DealerOptions struct {
	Options
	// Identity is the routing id announced to the ROUTER; empty announces
	// none (as the TypeScript client does) and the ROUTER assigns one.
	Identity []byte
	// Hello, when set, is the first message of every connection: it is
	// queued before the connection is announced, so nothing can overtake
	// it. Send it with Send instead and it is sent twice.
	Hello [][]byte
	// MinBackoff and MaxBackoff bound the wait between reconnection
	// attempts; it doubles from the first to the second. Defaults 50ms, 2s.
	MinBackoff time.Duration
	MaxBackoff time.Duration
}

// DealerHandler receives a Dealer's connection events and messages.
type DealerHandler struct {
	// OnConnect runs after every successful connection and handshake,
	// before any message of that connection is delivered.
	OnConnect func()
	// OnMessage is called on the connection's read goroutine, in order.
	OnMessage func(frames [][]byte)
	// OnDisconnect runs when an established connection ends. Optional.
	OnDisconnect func(err error)
	// OnConnectError runs when a connection attempt fails, before the
	// backoff. A server that refused us (unknown key, NULL peer at a
	// CURVE server) gives an error matching ErrRefused (its reason in a
	// *RefusedError) or ErrMechanismMismatch: show it, rather than wait.
	// Optional.
	OnConnectError func(err error)
}

// Dealer is a ZeroMQ DEALER connected to one endpoint. It reconnects by
// itself, with backoff, until closed: unlike zmq4's DEALER it never gives up
// and never sends one message to two connections.
type Dealer struct {
	addr string
	h    DealerHandler
	opts DealerOptions
	log  logrus.FieldLogger

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	closing atomic.Bool

	mu  sync.RWMutex
	cur *conn

	curveLong *ecdh.PrivateKey // CurveClient's secret, prepared once (run goroutine only)
}

// Dial starts connecting to addr ("tcp://HOST:PORT" or "HOST:PORT") in the
// background and returns at once.
func Dial(addr string, h DealerHandler, opts DealerOptions) *Dealer {
	opts.Options = opts.Options.withDefaults()
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 50 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 2 * time.Second
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = opts.MinBackoff
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Dealer{
		addr:   addr,
		h:      h,
		opts:   opts,
		log:    opts.Logger.WithField("endpoint", addr),
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
	}
	go d.run()
	return d
}

func (d *Dealer) run() {
	defer close(d.done)
	backoff := d.opts.MinBackoff
	for d.ctx.Err() == nil && !d.closing.Load() {
		cn, err := d.connect()
		if err != nil {
			if d.ctx.Err() != nil {
				return
			}
			if errors.Is(err, ErrRefused) || errors.Is(err, ErrMechanismMismatch) {
				d.log.WithError(err).Warnf("server refused the connection; retrying in %s", backoff)
			} else {
				d.log.WithError(err).Debugf("connect failed; retrying in %s", backoff)
			}
			if d.h.OnConnectError != nil {
				d.h.OnConnectError(err)
			}
			select {
			case <-time.After(backoff):
			case <-d.ctx.Done():
				return
			}
			if backoff *= 2; backoff > d.opts.MaxBackoff {
				backoff = d.opts.MaxBackoff
			}
			continue
		}
		backoff = d.opts.MinBackoff

		d.mu.Lock()
		d.cur = cn
		d.mu.Unlock()
		if d.ctx.Err() != nil { // Close raced with the connection
			cn.shutdown(ErrClosed)
		}
		if d.h.OnConnect != nil {
			d.h.OnConnect()
		}
		reason := cn.readLoop(func(frames [][]byte) {
			if d.h.OnMessage != nil {
				d.h.OnMessage(frames)
			}
		})
		cn.wait()
		d.mu.Lock()
		d.cur = nil
		d.mu.Unlock()
		if d.h.OnDisconnect != nil {
			d.h.OnDisconnect(reason)
		}
		if d.ctx.Err() == nil {
			d.log.WithError(reason).Debug("connection lost; reconnecting")
		}
	}
}

func (d *Dealer) connect() (*conn, error) {
	hostport, err := ParseAddr(d.addr)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(d.ctx, d.opts.HandshakeTimeout)
	defer cancel()
	p := hsParams{socketType: socketDealer, identity: d.opts.Identity, opts: d.opts.Options}
	var keys chan *curveClientKeys
	if d.opts.CurveClient != nil {
		// The CURVE HELLO does not depend on the server: its keys are
		// made while TCP connects.
		keys = make(chan *curveClientKeys, 1)
		long := d.curveLong
		go func() {
			k, _ := prepareCurveClient(d.opts.Options, long) // on error, the handshake retries
			keys <- k
		}()
	}
	var nd net.Dialer
	nc, err := nd.DialContext(dctx, "tcp", hostport)
	if keys != nil {
		if p.curveKeys = <-keys; p.curveKeys != nil {
			d.curveLong = p.curveKeys.long
		}
	}
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", d.addr, err)
	}
	// Go's dialer already set TCP_NODELAY and keepalive.
	cn, err := handshake(dctx, nc, p, d.opts.Hello...)
	if err != nil {
		_ = nc.Close()
		return nil, err
	}
	go cn.writeLoop()
	return cn, nil
}

// Send queues a message on the current connection. It never blocks; while
// there is no connection it returns ErrNotConnected (messages are not kept
// across connections: the session layer resends what it still needs).
func (d *Dealer) Send(frames ...[]byte) error {
	if len(frames) == 0 {
		return ErrNoFrames
	}
	d.mu.RLock()
	cn := d.cur
	d.mu.RUnlock()
	if cn == nil {
		if d.ctx.Err() != nil {
			return ErrClosed
		}
		return ErrNotConnected
	}
	return cn.enqueue(frames)
}

// Connected reports whether a connection is established now.
func (d *Dealer) Connected() bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.cur != nil
}

// Reconnect drops the current connection; a new one follows after backoff.
func (d *Dealer) Reconnect() {
	d.mu.RLock()
	cn := d.cur
	d.mu.RUnlock()
	if cn != nil {
		cn.shutdown(errors.New("reconnect requested"))
	}
}

// Close stops reconnecting and closes the connection at once, dropping
// queued messages. It waits for the Dealer's goroutines, which end promptly
// because every blocking step observes the same context.
func (d *Dealer) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return d.CloseContext(ctx)
}

// CloseContext stops reconnecting, writes the messages already queued (so a
// final "close" reaches the server) until ctx ends, then closes.
func (d *Dealer) CloseContext(ctx context.Context) error {
	d.closing.Store(true)
	d.mu.RLock()
	cn := d.cur
	d.mu.RUnlock()
	if cn != nil {
		cn.drainAndClose(ctx)
	}
	d.cancel()
	if cn != nil {
		cn.shutdown(ErrClosed)
	}
	<-d.done
	return nil
}

// Addr is the endpoint the Dealer connects to.
func (d *Dealer) Addr() string { return d.addr }
