package client

import (
	"context"
	"fmt"

	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/stream"
)

// StreamReader reads a streamed answer: Next until io.EOF, or All; Close
// it when done early, which cancels the container's stream.
type StreamReader = stream.Reader

// Stream sends op(data) to the container, routed through the network, and
// reads its answer as a stream of chunks. With a network server that does
// not announce streams (a TypeScript 0.7 one) the request is a plain cs and
// its result is the only chunk (for a streaming operation of a Go agent:
// the array of all chunks). ctx bounds the opening and, through Next, each
// read; when it ends the stream is cancelled at the container.
func (r *ContainerRef) Stream(ctx context.Context, op string, data any) (*StreamReader, error) {
	uuid, _, released := r.current()
	if released {
		return nil, fmt.Errorf("stream %s on %s: %w", op, uuid, ErrReleased)
	}
	return r.c.Stream(ctx, uuid, op, data)
}

// Stream is ContainerRef.Stream for a container uuid without a reference.
func (c *Client) Stream(ctx context.Context, uuid, op string, data any) (*StreamReader, error) {
	raw, err := encodeData(data)
	if err != nil {
		return nil, fmt.Errorf("stream %s on %s: %w", op, uuid, err)
	}
	if c.isClosed() {
		return nil, ErrClosed
	}
	if err := c.rpc.WaitConnected(ctx); err != nil {
		return nil, fmt.Errorf("stream %s on %s: %w", op, uuid, err)
	}
	if !c.ServerHas(backrpc.CapStream) {
		res, err := c.Request(ctx, uuid, op, raw)
		if err != nil {
			return nil, err
		}
		return stream.Single(res), nil
	}
	rd, err := stream.OpenReader(ctx, c.rpc.Request, uuid, op, raw, stream.DefaultWindow)
	if err != nil {
		return nil, fmt.Errorf("stream %s on %s: %w", op, uuid, err)
	}
	return rd, nil
}

// Stream sends op(data) over the connection (to the agent's endpoint, or
// the container's own) and reads its answer as a stream, as
// ContainerRef.Stream does; an endpoint that does not announce streams
// answers one result, the only chunk.
func (conn *Connection) Stream(ctx context.Context, op string, data any) (*StreamReader, error) {
	conn.mu.Lock()
	t, closed := conn.target, conn.closed
	conn.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("stream %s: %w", op, ErrClosed)
	}
	var rpc *backrpc.Client
	switch {
	case t.agent != nil:
		rpc = t.agent.rpc
	case t.direct != nil:
		rpc = t.direct
	default:
		return conn.c.Stream(ctx, t.uuid, op, data)
	}
	raw, err := encodeData(data)
	if err != nil {
		return nil, fmt.Errorf("stream %s on %s: %w", op, t.uuid, err)
	}
	if err := rpc.WaitConnected(ctx); err != nil {
		return nil, fmt.Errorf("stream %s on %s: %w", op, t.uuid, err)
	}
	if !rpc.ServerHello().Has(backrpc.CapStream) {
		res, err := conn.Request(ctx, op, raw)
		if err != nil {
			return nil, err
		}
		return stream.Single(res), nil
	}
	rd, err := stream.OpenReader(ctx, rpc.Request, t.uuid, op, raw, stream.DefaultWindow)
	if err != nil {
		return nil, fmt.Errorf("stream %s on %s: %w", op, t.uuid, err)
	}
	return rd, nil
}
