package transport

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/go-zeromq/zmq4/security/null"
)

// conn is one established ZMTP connection with its send queue and writer
// goroutine. The goroutine that created it owns the read side (readLoop).
type conn struct {
	g    *guardConn
	zc   *zmq4.Conn
	opts Options

	queue chan [][]byte
	pongs chan []byte

	done       chan struct{}
	drainReq   chan struct{}
	drainOnce  sync.Once
	closeOnce  sync.Once
	closeErr   error
	writerDone chan struct{}
}

// handshake runs the ZMTP greeting and NULL handshake on c within the
// handshake timeout, and returns the established connection with its writer
// running. It runs on the connection's own goroutine, so a silent peer
// delays nobody else.
func handshake(ctx context.Context, c net.Conn, typ zmq4.SocketType, id []byte, server bool, opts Options) (*conn, error) {
	g := newGuardConn(c, opts.MaxFrameSize, readBufferSize, writeBufferSize)
	deadline := time.Now().Add(opts.HandshakeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.SetDeadline(deadline); err != nil {
		return nil, fmt.Errorf("set handshake deadline: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	zc, err := zmq4.Open(g, nullSecurity(), typ, zmq4.SocketIdentity(id), server, nil)
	stop()
	if err != nil {
		return nil, fmt.Errorf("zmtp handshake with %s: %w", c.RemoteAddr(), err)
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("clear handshake deadline: %w", err)
	}
	cn := &conn{
		g:          g,
		zc:         zc,
		opts:       opts,
		queue:      make(chan [][]byte, opts.SendQueue),
		pongs:      make(chan []byte, 4),
		done:       make(chan struct{}),
		drainReq:   make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	g.establish(cn.queuePong)
	return cn, nil
}

func (c *conn) peerIdentity() string { return c.zc.Peer.Meta["Identity"] }

// queuePong is called by the read side for a ZMTP PING; the answer is
// written by the writer goroutine, never by the reader.
func (c *conn) queuePong(pingContext []byte) {
	select {
	case c.pongs <- pingContext:
	default: // a peer pinging faster than we answer needs no more pongs
	}
}

// enqueue never blocks: a peer whose queue is full has stopped reading and is
// disconnected, so that it cannot hold up anyone else.
func (c *conn) enqueue(frames [][]byte) error {
	select {
	case <-c.done:
		return ErrClosed
	default:
	}
	select {
	case c.queue <- frames:
		return nil
	default:
		c.abort(ErrQueueFull)
		return ErrQueueFull
	}
}

func (c *conn) writeLoop() {
	defer close(c.writerDone)
	// The write deadline is refreshed once per batch and every 256
	// messages inside one, not per message: time.Now and the poller's timer
	// update were a visible share of the hot path.
	refresh := func() error {
		return c.g.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
	}
	write := c.g.writeMessage
	pong := func(ctx []byte) error {
		return c.zc.SendCmd(zmq4.CmdPong, ctx)
	}
	for {
		var first [][]byte
		var firstPong []byte
		havePong, draining := false, false
		select {
		case <-c.done:
			return
		case <-c.drainReq:
			draining = true
		case first = <-c.queue:
		case firstPong = <-c.pongs:
			havePong = true
		}
		err := refresh()
		switch {
		case err != nil:
		case havePong:
			err = pong(firstPong)
		case first != nil:
			err = write(first)
		}
		// Coalesce: write everything already queued, then flush once.
		for n := 1; err == nil; n++ {
			var m [][]byte
			select {
			case m = <-c.queue:
			default:
			}
			if m == nil {
				break
			}
			if n%256 == 0 {
				if err = refresh(); err != nil {
					break
				}
			}
			err = write(m)
		}
		if err == nil {
			select {
			case p := <-c.pongs:
				err = pong(p)
			default:
			}
		}
		if err == nil {
			err = c.g.Flush()
		}
		if err != nil {
			c.abort(fmt.Errorf("write to %s: %w", c.g.RemoteAddr(), err))
			return
		}
		if draining {
			c.shutdown(ErrClosed)
			return
		}
	}
}

// drainAndClose writes what is queued, then closes; if ctx ends first it
// closes at once.
func (c *conn) drainAndClose(ctx context.Context) {
	c.drainOnce.Do(func() { close(c.drainReq) })
	select {
	case <-c.writerDone:
	case <-ctx.Done():
		c.shutdown(ErrClosed)
	}
}

// readLoop delivers messages to onMessage until the connection fails or is
// shut down; it returns the reason.
func (c *conn) readLoop(onMessage func(frames [][]byte)) error {
	for {
		frames, err := c.g.readMessage()
		if err != nil {
			c.shutdown(fmt.Errorf("read from %s: %w", c.g.RemoteAddr(), err))
			return c.reason()
		}
		onMessage(frames)
	}
}

// abort closes the connection with a reset: for a peer that stopped reading,
// the bytes still in the kernel's send buffer are a partial message nobody
// will use, and a graceful close would keep them (and the socket) around.
func (c *conn) abort(reason error) {
	if tc, ok := c.g.Conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.shutdown(reason)
}

// shutdown closes the connection once; the first reason wins.
func (c *conn) shutdown(reason error) {
	c.closeOnce.Do(func() {
		c.closeErr = reason
		close(c.done)
		_ = c.g.Conn.Close()
	})
}

func (c *conn) reason() error {
	<-c.done
	return c.closeErr
}

func nullSecurity() zmq4.Security { return null.Security() }

// wait blocks until the writer goroutine has returned.
func (c *conn) wait() { <-c.writerDone }
