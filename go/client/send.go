package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Fire-and-forget (Send). A send is an ordinary routed request (cs) whose
// answer nobody waits for: no extension is involved, so it works with any
// network, a TypeScript 0.7 one included.
//
// Delivery guarantee: at least once while the client is open, within the
// send timeout (DefaultSendTimeout), and in practice exactly once. The
// request is sent at once; it is resent after a reconnection like any
// pending request (a server that had already handled it may then handle it
// again), and sent again when it finds its container gone (then it reached
// no container). Sends are not ordered among themselves. The result is
// dropped; an error (from the container, the network, or the timeout) is
// counted (SendErrors) and logged at debug level, never returned: Send
// returns an error only when the request could not be queued.

// Defaults of Send.
const (
	// DefaultSendTimeout bounds one send's delivery.
	DefaultSendTimeout = 30 * time.Second
	// DefaultMaxSends bounds the sends in flight per client; Send waits
	// for a free slot (bounded by its ctx), so a caller faster than the
	// network is slowed down instead of growing memory.
	DefaultMaxSends = 1024
)

type sendState struct {
	once   sync.Once
	slots  chan struct{}
	errors atomic.Uint64
}

func (s *sendState) init() { s.once.Do(func() { s.slots = make(chan struct{}, DefaultMaxSends) }) }

// SendErrors counts the sends that failed after they were queued.
func (c *Client) SendErrors() uint64 { return c.sends.errors.Load() }

// Send delivers op with data to the container without waiting for a
// result (see the delivery guarantee above). It returns once the request is
// queued; ctx bounds only the wait for a free slot.
func (r *ContainerRef) Send(ctx context.Context, op string, data any) error {
	raw, err := encodeData(data)
	if err != nil {
		return fmt.Errorf("send %s: %w", op, err)
	}
	if _, _, released := r.current(); released {
		return fmt.Errorf("send %s on %s: %w", op, r.UUID(), ErrReleased)
	}
	return r.c.send(ctx, op, func(ctx context.Context) error {
		_, err := r.requestFollowing(ctx, op, raw)
		return err
	})
}

// Send is ContainerRef.Send for a container uuid without a reference.
func (c *Client) Send(ctx context.Context, uuid, op string, data any) error {
	if uuid == "" {
		return errors.New("send: container uuid is required")
	}
	raw, err := encodeData(data)
	if err != nil {
		return fmt.Errorf("send %s: %w", op, err)
	}
	return c.send(ctx, op, func(ctx context.Context) error {
		_, err := c.Request(ctx, uuid, op, raw)
		return err
	})
}

func (c *Client) send(ctx context.Context, op string, deliver func(context.Context) error) error {
	c.sends.init()
	select {
	case c.sends.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("send %s: waiting for one of %d send slots: %w", op, DefaultMaxSends, ctx.Err())
	case <-c.ctx.Done():
		return fmt.Errorf("send %s: %w", op, ErrClosed)
	}
	started := c.goWorker(func() {
		defer func() { <-c.sends.slots }()
		dctx, cancel := context.WithTimeout(c.ctx, DefaultSendTimeout)
		defer cancel()
		if err := deliver(dctx); err != nil {
			c.sends.errors.Add(1)
			c.log.WithError(err).WithField("op", op).Debug("send failed")
		}
	})
	if !started {
		<-c.sends.slots
		return fmt.Errorf("send %s: %w", op, ErrClosed)
	}
	return nil
}
