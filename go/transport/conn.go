package transport

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"
)

// conn is one established ZMTP connection with its send queue and writer
// goroutine. The goroutine that created it owns the read side (readLoop).
type conn struct {
	g    *guardConn
	info PeerInfo
	opts Options

	// The send queue: a slice that grows with what is waiting, rather
	// than a channel of SendQueue slots allocated per connection, and
	// that the writer takes as a whole. wake (cap 1) tells the writer
	// the queue is no longer empty.
	qmu   sync.Mutex
	queue [][][]byte
	spare [][][]byte // the writer's previous batch, emptied, for reuse
	wake  chan struct{}
	pongs chan []byte

	done       chan struct{}
	drainReq   chan struct{}
	drainOnce  sync.Once
	closeOnce  sync.Once
	closeErr   error
	writerDone chan struct{}
}

// handshake runs the ZMTP greeting and security handshake (NULL or CURVE)
// on c within the handshake timeout, and returns the established connection
// with its writer not yet running. It runs on the connection's own
// goroutine, so a silent peer delays nobody else.
//
// A hello (the frames of a first message) is queued ahead of everything
// else: the writer sends it with whatever else is queued by then. It cannot
// travel with the DEALER's READY or INITIATE: libzmq treats a message that
// arrives before it has sent its own READY as a protocol error. The NULL
// DEALER's greeting and READY go in one write and the ROUTER's in another,
// so the DEALER is connected one round trip after TCP's.
func handshake(ctx context.Context, c net.Conn, p hsParams, hello ...[]byte) (*conn, error) {
	g := newGuardConn(c, p.opts.MaxFrameSize, readBufferSize)
	deadline := time.Now().Add(p.opts.HandshakeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.SetDeadline(deadline); err != nil {
		return nil, fmt.Errorf("set handshake deadline: %w", err)
	}
	// The handshake's context carries its deadline, for the
	// authenticator a CURVE ROUTER calls.
	hctx, cancel := context.WithDeadline(ctx, deadline)
	stop := context.AfterFunc(hctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	info, codec, err := runHandshake(hctx, g, p)
	stop()
	cancel()
	if err != nil {
		return nil, fmt.Errorf("zmtp handshake with %s: %w", c.RemoteAddr(), err)
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("clear handshake deadline: %w", err)
	}
	g.cur = codec
	cn := &conn{
		g:          g,
		info:       info,
		opts:       p.opts,
		wake:       make(chan struct{}, 1),
		pongs:      make(chan []byte, 4),
		done:       make(chan struct{}),
		drainReq:   make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	if len(hello) > 0 {
		cn.queue = append(cn.queue, hello)
	}
	g.establish(cn.queuePong)
	return cn, nil
}

func (c *conn) peerIdentity() string { return c.info.Identity }

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
	c.qmu.Lock()
	if len(c.queue) >= c.opts.SendQueue {
		c.qmu.Unlock()
		c.abort(ErrQueueFull)
		return ErrQueueFull
	}
	c.queue = append(c.queue, frames)
	first := len(c.queue) == 1
	c.qmu.Unlock()
	if first {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// takeBatch empties the queue into the writer's hands.
func (c *conn) takeBatch() [][][]byte {
	c.qmu.Lock()
	b := c.queue
	c.queue, c.spare = c.spare, nil
	c.qmu.Unlock()
	return b
}

// recycle keeps a written batch's slice for the next one, unless a burst
// made it large.
func (c *conn) recycle(b [][][]byte) {
	clear(b) // the frames are written: let them go
	if cap(b) > 1024 {
		return
	}
	c.qmu.Lock()
	c.spare = b[:0]
	c.qmu.Unlock()
}

func (c *conn) writeLoop() {
	defer close(c.writerDone)
	defer c.g.release()
	pong := func(ctx []byte) error {
		return c.g.writeCommand("PONG", ctx)
	}
	draining := false
	for {
		batch := c.takeBatch()
		var firstPong []byte
		havePong := false
		if len(batch) == 0 {
			if draining {
				c.shutdown(ErrClosed)
				return
			}
			select {
			case <-c.done:
				return
			case <-c.drainReq:
				draining = true
				continue
			case <-c.wake:
				continue
			case firstPong = <-c.pongs:
				havePong = true
			}
		}
		// The write deadline is set once per batch and every 256
		// messages inside one, not per message: time.Now and the
		// poller's timer update were a visible share of the hot path.
		err := c.g.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
		if err == nil && havePong {
			err = pong(firstPong)
		}
		for i := 0; err == nil && i < len(batch); i++ {
			if i > 0 && i%256 == 0 {
				if err = c.g.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout)); err != nil {
					break
				}
			}
			err = c.g.writeMessage(batch[i])
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
		c.recycle(batch)
		// An idle connection holds no write buffer; the pool hands it
		// to the next connection with something to write.
		c.g.release()
		if err != nil {
			c.abort(fmt.Errorf("write to %s: %w", c.g.RemoteAddr(), err))
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

// wait blocks until the writer goroutine has returned.
func (c *conn) wait() { <-c.writerDone }
