package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/internal/jsonsplit"
	"github.com/huly-net/huly-net/go/stream"
)

// Emitter sends the chunks of a streamed answer (package stream).
type Emitter = stream.Emitter

// Streamer is implemented by containers with operations that answer with
// a stream of chunks (stream.Streamer). The direct endpoint then announces
// streamed responses: a Go client's Stream reads the chunks as they come,
// with flow control (Emit waits while the reader's window is full) and
// cancellation (ctx ends when the reader gives up). A plain request for a
// streaming operation (a TypeScript caller's, or one routed through the
// agent) gets one result: the array of every chunk.
type Streamer = stream.Streamer

// Bounds of the single result of a plain request for a streaming operation.
const (
	maxCollectedChunks = 100_000
	maxCollectedBytes  = 32 << 20
)

// streamServer serves the stream methods of a Streamer.
type streamServer struct {
	impl Streamer
	reg  *stream.Registry
}

func newStreamServer(impl Container) *streamServer {
	s, ok := impl.(Streamer)
	if !ok {
		return nil
	}
	return &streamServer{impl: s, reg: stream.NewRegistry(stream.Options{})}
}

// capabilities are what the endpoint announces.
func (ss *streamServer) capabilities() []string {
	if ss == nil {
		return nil
	}
	return []string{backrpc.CapStream}
}

// handle serves x.so, x.sn, x.sc and plain requests for streaming
// operations; ok is false for everything else.
func (ss *streamServer) handle(ctx context.Context, clientID, method string, params json.RawMessage) (res any, ok bool, err error) {
	if ss == nil {
		return nil, false, nil
	}
	switch method {
	case stream.MethodOpen, stream.MethodNext, stream.MethodCancel:
	default:
		if !ss.impl.StreamOp(method) {
			return nil, false, nil
		}
		chunks, err := stream.Collect(ctx, func(ctx context.Context, emit stream.Emitter) error {
			return ss.impl.Stream(ctx, clientID, method, params, emit)
		}, maxCollectedChunks, maxCollectedBytes)
		return chunks, true, err
	}
	p, err := jsonsplit.Array(params)
	if err != nil || len(p) < 2 {
		return nil, true, fmt.Errorf("%s: params must be an array [uuid, ...]", method)
	}
	switch method {
	case stream.MethodOpen:
		op, err := jsonsplit.String(p[1])
		if err != nil {
			return nil, true, fmt.Errorf("%s: operation must be a string", method)
		}
		data := json.RawMessage("null")
		if len(p) > 2 {
			data = p[2]
		}
		window := 0
		if len(p) > 3 {
			_ = json.Unmarshal(p[3], &window)
		}
		if !ss.impl.StreamOp(op) {
			return nil, false, nil // handled below as a plain request
		}
		b, err := ss.reg.Open(ctx, clientID, window, func(sctx context.Context, emit stream.Emitter) error {
			return ss.impl.Stream(sctx, clientID, op, data, emit)
		})
		if err != nil {
			return nil, true, err
		}
		return b.Raw(), true, nil
	case stream.MethodNext:
		id, err := jsonsplit.String(p[1])
		if err != nil {
			return nil, true, fmt.Errorf("%s: stream id must be a string", method)
		}
		b, err := ss.reg.Next(ctx, clientID, id)
		if err != nil {
			return nil, true, err
		}
		return b.Raw(), true, nil
	default:
		id, err := jsonsplit.String(p[1])
		if err != nil {
			return nil, true, fmt.Errorf("%s: stream id must be a string", method)
		}
		if err := ss.reg.Cancel(clientID, id); err != nil && !errors.Is(err, stream.ErrNotFound) {
			return nil, true, err
		}
		return "ok", true, nil
	}
}

// plainOpen answers x.so for an operation that does not stream: its one
// result is the only chunk.
func plainOpen(ctx context.Context, impl Container, clientID string, params json.RawMessage) (any, error) {
	p, err := jsonsplit.Array(params)
	if err != nil || len(p) < 2 {
		return nil, fmt.Errorf("%s: params must be an array [uuid, op, data]", stream.MethodOpen)
	}
	op, err := jsonsplit.String(p[1])
	if err != nil {
		return nil, fmt.Errorf("%s: operation must be a string", stream.MethodOpen)
	}
	data := json.RawMessage("null")
	if len(p) > 2 {
		data = p[2]
	}
	res, err := impl.Request(ctx, clientID, op, data)
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("encode result of %s: %w", op, err)
	}
	return stream.Batch{Chunks: []json.RawMessage{raw}, End: true}, nil
}

func (ss *streamServer) close(ctx context.Context) error {
	if ss == nil {
		return nil
	}
	return ss.reg.Close(ctx)
}
