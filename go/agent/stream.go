package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/internal/jsonsplit"
	"github.com/huly-net/huly-net/go/stream"
)

// Streamed answers (package stream): a container whose operation answers
// with a sequence of chunks implements Streamer. The agent serves the
// stream methods to the network (routed) and on its endpoint (direct), and
// answers a plain request for a streaming operation (a TypeScript caller's)
// with one result, the array of every chunk.

// Emitter sends the chunks of a streamed answer (stream.Emitter).
type Emitter = stream.Emitter

// Streamer is a Container with streaming operations (stream.Streamer).
type Streamer = stream.Streamer

// StreamRelay is a Container that relays streams from elsewhere (a
// container program's endpoint, runtime.Proxy): every stream opened on it
// goes through RelayStream, which emits the program's chunks (or its one
// result when the operation does not stream).
type StreamRelay interface {
	RelayStream(ctx context.Context, clientID, op string, data json.RawMessage, emit Emitter) error
}

// Bounds of the single result a plain request for a streaming operation
// gets.
const (
	MaxCollectedChunks = 100_000
	MaxCollectedBytes  = 32 << 20
)

type streams struct {
	once sync.Once
	reg  *stream.Registry
}

func (a *Agent) streamRegistry() *stream.Registry {
	a.streams.once.Do(func() { a.streams.reg = stream.NewRegistry(a.opts.Streams) })
	return a.streams.reg
}

// handleStream serves x.so, x.sn and x.sc; owner is the endpoint client
// ("" for the network). ok is false for any other method.
func (a *Agent) handleStream(ctx context.Context, owner, method string, params json.RawMessage) (res any, ok bool, err error) {
	if method != stream.MethodOpen && method != stream.MethodNext && method != stream.MethodCancel {
		return nil, false, nil
	}
	p, err := jsonsplit.Array(params)
	if err != nil || len(p) < 2 {
		return nil, true, fmt.Errorf("%s: params must be an array [uuid, ...]", method)
	}
	uuid, err := jsonsplit.String(p[0])
	if err != nil || uuid == "" {
		return nil, true, fmt.Errorf("%s: container uuid must be a non-empty string", method)
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
			_ = json.Unmarshal(p[3], &window) // absent or bad: the default
		}
		b, err := a.openStream(ctx, owner, uuid, op, data, window)
		if err != nil {
			return nil, true, err
		}
		return b.Raw(), true, nil
	case stream.MethodNext:
		id, err := jsonsplit.String(p[1])
		if err != nil {
			return nil, true, fmt.Errorf("%s: stream id must be a string", method)
		}
		b, err := a.streamRegistry().Next(ctx, owner, id)
		if err != nil {
			return nil, true, err
		}
		return b.Raw(), true, nil
	default:
		id, err := jsonsplit.String(p[1])
		if err != nil {
			return nil, true, fmt.Errorf("%s: stream id must be a string", method)
		}
		if err := a.streamRegistry().Cancel(owner, id); err != nil && !errors.Is(err, stream.ErrNotFound) {
			return nil, true, err
		}
		return "ok", true, nil // cancelling what already ended is fine
	}
}

func (a *Agent) openStream(ctx context.Context, owner, uuid, op string, data json.RawMessage, window int) (stream.Batch, error) {
	_, c, err := a.running(ctx, uuid)
	if err != nil {
		return stream.Batch{}, err
	}
	s, ok := c.(Streamer)
	if relay, isRelay := c.(StreamRelay); isRelay && !ok {
		s, ok = relayStreamer{relay}, true
	}
	if !ok || !s.StreamOp(op) {
		// Not a streaming operation: its result is the only chunk.
		a.reqs.begin()
		res, err := c.Request(ctx, owner, op, data)
		a.reqs.end()
		if err != nil {
			return stream.Batch{}, err
		}
		raw, err := json.Marshal(res)
		if err != nil {
			return stream.Batch{}, fmt.Errorf("encode result of %s: %w", op, err)
		}
		return stream.Batch{Chunks: []json.RawMessage{raw}, End: true}, nil
	}
	b, err := a.streamRegistry().Open(ctx, owner, window, func(sctx context.Context, emit stream.Emitter) error {
		a.reqs.begin()
		defer a.reqs.end()
		return s.Stream(sctx, owner, op, data, emit)
	})
	if errors.Is(err, stream.ErrTooMany) {
		a.log.WithFields(logrus.Fields{"client": owner, "container": uuid, "limit": a.streamRegistry().Max()}).Warn("stream refused: the agent has its maximum of open streams")
	}
	if err != nil {
		return stream.Batch{}, fmt.Errorf("stream %s on %s: %w", op, uuid, err)
	}
	return b, nil
}

// collectStream answers a plain request for a streaming operation: every
// chunk in one array.
func collectStream(ctx context.Context, s Streamer, clientID, op string, data json.RawMessage) (any, error) {
	chunks, err := stream.Collect(ctx, func(ctx context.Context, emit stream.Emitter) error {
		return s.Stream(ctx, clientID, op, data, emit)
	}, MaxCollectedChunks, MaxCollectedBytes)
	if err != nil {
		return nil, err
	}
	return chunks, nil
}

// ---- the echo container's stream ----

// maxEchoStream bounds the echo stream: chunks and the size of each.
const (
	maxEchoChunks    = 10_000_000
	maxEchoChunkSize = 1 << 20
)

// StreamOp: "stream" streams.
func (e *Echo) StreamOp(op string) bool { return op == "stream" }

// Stream answers op "stream" with data {"n": N, "size"?: S}: N chunks
// {"i": 0…N-1} (with "pad", S bytes of text, when S is given).
func (e *Echo) Stream(ctx context.Context, _ string, op string, data json.RawMessage, emit Emitter) error {
	return EchoStream(ctx, data, emit)
}

// EchoStream is the echo kind's stream operation, shared by the container
// SDK's echo.
func EchoStream(ctx context.Context, data json.RawMessage, emit Emitter) error {
	var p struct {
		N    int `json:"n"`
		Size int `json:"size"`
	}
	if err := json.Unmarshal(data, &p); err != nil {
		return fmt.Errorf(`stream: data must be {"n": count, "size"?: bytes}: %w`, err)
	}
	if p.N < 0 || p.N > maxEchoChunks || p.Size < 0 || p.Size > maxEchoChunkSize {
		return fmt.Errorf("stream: n must be 0…%d and size 0…%d", maxEchoChunks, maxEchoChunkSize)
	}
	type chunk struct {
		I   int    `json:"i"`
		Pad string `json:"pad,omitempty"`
	}
	pad := strings.Repeat("x", p.Size)
	for i := range p.N {
		if err := emit.Emit(ctx, chunk{I: i, Pad: pad}); err != nil {
			return err
		}
	}
	return nil
}

// relayStreamer streams every operation through a StreamRelay.
type relayStreamer struct{ r StreamRelay }

func (relayStreamer) StreamOp(string) bool { return true }
func (s relayStreamer) Stream(ctx context.Context, clientID, op string, data json.RawMessage, emit Emitter) error {
	return s.r.RelayStream(ctx, clientID, op, data, emit)
}
