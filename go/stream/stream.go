// Package stream carries streamed answers: a container operation that
// answers with a sequence of chunks and an end (or an error) instead of one
// result. It is an extension announced as the "stream" capability and
// spoken only between Go peers that announced it.
//
// The wire is three request methods, pulled by the caller, so that flow
// control needs nothing but requests and answers:
//
//	x.so [uuid, op, data, window] → batch   open, and wait for the first chunks
//	x.sn [uuid, id]               → batch   the next chunks
//	x.sc [uuid, id]               → "ok"    cancel
//
// A batch is {"id", "chunks": [...], "end"?: true, "failed"?: {"message"}}.
// The producer (the container) emits into a buffer of window chunks and
// waits while it is full: a slow reader slows the container down instead of
// making it buffer without bound. A cancel, or a stream nobody pulls for the
// idle timeout, cancels the producer's context. The network server routes
// the three methods to the container's agent like cs; a caller talking to
// an agent or a container endpoint directly sends them there.
package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Streamer is a container with operations that answer with a stream of
// chunks; builtin containers in the agent (package agent) and container
// programs (package container) implement it alike.
type Streamer interface {
	// StreamOp reports whether op answers with a stream.
	StreamOp(op string) bool
	// Stream runs op, emitting its chunks; it returns nil at the end or
	// the error the stream ends with. ctx ends when the caller gives up.
	Stream(ctx context.Context, clientID, op string, data json.RawMessage, emit Emitter) error
}

// Wire method names.
const (
	MethodOpen   = "x.so"
	MethodNext   = "x.sn"
	MethodCancel = "x.sc"
)

// Defaults and bounds.
const (
	DefaultWindow      = 64
	MaxWindow          = 1024
	DefaultMaxStreams  = 1024
	DefaultIdleTimeout = 30 * time.Second
	// DefaultPollWait bounds how long a next waits for a chunk before it
	// answers an empty batch (well below the network's call timeout).
	DefaultPollWait = 10 * time.Second
	// maxBatchBytes stops filling a batch once it holds this much.
	maxBatchBytes = 1 << 20
)

// Batch is the answer to open and next.
type Batch struct {
	ID     string            `json:"id,omitempty"`
	Chunks []json.RawMessage `json:"chunks"`
	End    bool              `json:"end,omitempty"`
	Failed *Failure          `json:"failed,omitempty"`
}

// MarshalJSON writes the chunks as they are: each was encoded by Emit, so
// it is valid, compact JSON already (encoding/json would check and compact
// every one again).
func (b Batch) MarshalJSON() ([]byte, error) {
	size := 64 + len(b.ID)
	for _, c := range b.Chunks {
		size += len(c) + 1
	}
	out := make([]byte, 0, size)
	out = append(out, '{')
	if b.ID != "" {
		out = append(out, `"id":`...)
		id, _ := json.Marshal(b.ID)
		out = append(out, id...)
		out = append(out, ',')
	}
	out = append(out, `"chunks":[`...)
	for i, c := range b.Chunks {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, c...)
	}
	out = append(out, ']')
	if b.End {
		out = append(out, `,"end":true`...)
	}
	if b.Failed != nil {
		f, err := json.Marshal(b.Failed)
		if err != nil {
			return nil, err
		}
		out = append(out, `,"failed":`...)
		out = append(out, f...)
	}
	return append(out, '}'), nil
}

// Failure is the error a stream ended with.
type Failure struct {
	Message string `json:"message"`
}

// Emitter sends the chunks of a streamed answer.
type Emitter interface {
	// Emit sends one chunk, encoded as JSON (a json.RawMessage as it is).
	// It waits while the reader's window is full, and fails once the
	// caller gave up (the stream was cancelled) or ctx ends.
	Emit(ctx context.Context, chunk any) error
}

// Func produces a stream: it emits chunks and returns nil at the end, or
// the error the stream ends with. ctx ends when the caller gives up.
type Func func(ctx context.Context, emit Emitter) error

// ErrCancelled is returned by Emit once the stream was cancelled.
var ErrCancelled = errors.New("stream cancelled by its reader")

// ErrNotFound matches (errors.Is) a next or cancel for a stream the server
// does not have (ended, cancelled, expired, or another caller's).
var ErrNotFound = errors.New("stream not found")

// ErrTooMany is returned by Open when the server has its maximum of streams.
var ErrTooMany = errors.New("too many open streams")

// Options configure a Registry.
type Options struct {
	MaxStreams  int           // default DefaultMaxStreams
	IdleTimeout time.Duration // default DefaultIdleTimeout
	PollWait    time.Duration // default DefaultPollWait
}

// Registry holds the open streams of one server (an agent, a container).
type Registry struct {
	opts   Options
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	streams map[string]*stream
	closed  bool
}

type stream struct {
	id     string
	owner  string
	window int
	ch     chan json.RawMessage
	done   chan struct{} // closed when the producer returned
	err    error         // set before done is closed
	ctx    context.Context
	cancel context.CancelFunc
	idle   *time.Timer
	pull   sync.Mutex // one next at a time
}

// NewRegistry returns an empty registry; Close ends it.
func NewRegistry(opts Options) *Registry {
	if opts.MaxStreams <= 0 {
		opts.MaxStreams = DefaultMaxStreams
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.PollWait <= 0 {
		opts.PollWait = DefaultPollWait
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Registry{opts: opts, ctx: ctx, cancel: cancel, streams: map[string]*stream{}}
}

// Open starts run as a stream owned by owner (only the owner may pull or
// cancel it; "" for the network) and answers the first batch.
func (r *Registry) Open(ctx context.Context, owner string, window int, run Func) (Batch, error) {
	if window <= 0 {
		window = DefaultWindow
	}
	window = min(window, MaxWindow)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return Batch{}, errors.New("stream server closing")
	}
	if len(r.streams) >= r.opts.MaxStreams {
		r.mu.Unlock()
		return Batch{}, fmt.Errorf("%w (%d)", ErrTooMany, r.opts.MaxStreams)
	}
	sctx, cancel := context.WithCancel(r.ctx)
	s := &stream{
		id: uuid.NewString(), owner: owner, window: window,
		ch: make(chan json.RawMessage, window), done: make(chan struct{}),
		ctx: sctx, cancel: cancel,
	}
	s.idle = time.AfterFunc(r.opts.IdleTimeout, func() { r.drop(s) })
	r.streams[s.id] = s
	r.wg.Add(1)
	r.mu.Unlock()
	go func() {
		defer r.wg.Done()
		err := safeRun(sctx, run, emitter{s})
		s.err = err
		close(s.done)
	}()
	return r.next(ctx, s)
}

func safeRun(ctx context.Context, run Func, e Emitter) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("stream producer panicked: %v", p)
		}
	}()
	return run(ctx, e)
}

type emitter struct{ s *stream }

func (e emitter) Emit(ctx context.Context, chunk any) error {
	b, err := json.Marshal(chunk)
	if err != nil {
		return fmt.Errorf("encode chunk: %w", err)
	}
	select {
	case e.s.ch <- b:
		return nil
	case <-e.s.ctx.Done():
		return ErrCancelled
	case <-ctx.Done():
		if e.s.ctx.Err() != nil {
			return ErrCancelled // ctx is (derived from) the stream's own
		}
		return ctx.Err()
	}
}

// Next answers the next batch of stream id.
func (r *Registry) Next(ctx context.Context, owner, id string) (Batch, error) {
	s := r.lookup(owner, id)
	if s == nil {
		return Batch{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return r.next(ctx, s)
}

// Cancel ends stream id: its producer's context is cancelled.
func (r *Registry) Cancel(owner, id string) error {
	s := r.lookup(owner, id)
	if s == nil {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	r.drop(s)
	return nil
}

// Len is the number of open streams.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.streams)
}

// Close cancels every stream and waits for their producers, bounded by ctx.
func (r *Registry) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	for _, s := range r.streams {
		s.idle.Stop()
	}
	r.streams = map[string]*stream{}
	r.mu.Unlock()
	r.cancel()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stream producers still running: %w", ctx.Err())
	}
}

func (r *Registry) lookup(owner, id string) *stream {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.streams[id]
	if s == nil || s.owner != owner {
		return nil
	}
	return s
}

func (r *Registry) drop(s *stream) {
	r.mu.Lock()
	if r.streams[s.id] == s {
		delete(r.streams, s.id)
	}
	r.mu.Unlock()
	s.idle.Stop()
	s.cancel()
}

// next waits for at least one chunk (or the end, or the poll wait) and
// answers what is buffered, up to the window.
func (r *Registry) next(ctx context.Context, s *stream) (Batch, error) {
	s.pull.Lock()
	defer s.pull.Unlock()
	s.idle.Reset(r.opts.IdleTimeout)
	b := Batch{ID: s.id, Chunks: []json.RawMessage{}}
	poll := time.NewTimer(r.opts.PollWait)
	defer poll.Stop()
	size := 0
	select {
	case c := <-s.ch:
		b.Chunks = append(b.Chunks, c)
		size += len(c)
	case <-s.done:
	case <-s.ctx.Done():
		return Batch{}, fmt.Errorf("%w: %s", ErrNotFound, s.id)
	case <-poll.C:
		return b, nil
	case <-ctx.Done():
		return Batch{}, ctx.Err()
	}
fill:
	for len(b.Chunks) < s.window && size < maxBatchBytes {
		select {
		case c := <-s.ch:
			b.Chunks = append(b.Chunks, c)
			size += len(c)
		default:
			break fill
		}
	}
	select {
	case <-s.done:
		if len(s.ch) == 0 {
			b.End = true
			if s.err != nil {
				b.Failed = &Failure{Message: s.err.Error()}
			}
			r.drop(s)
		}
	default:
	}
	return b, nil
}

// Collect runs a stream to its end and answers its chunks as one array:
// the answer to a caller that asked with a plain request (a TypeScript
// peer). Beyond maxChunks chunks or maxBytes bytes it fails.
func Collect(ctx context.Context, run Func, maxChunks, maxBytes int) ([]json.RawMessage, error) {
	c := &collector{max: maxChunks, maxBytes: maxBytes, out: []json.RawMessage{}}
	if err := safeRun(ctx, run, c); err != nil {
		return nil, err
	}
	return c.out, nil
}

type collector struct {
	max, maxBytes, size int
	out                 []json.RawMessage
}

func (c *collector) Emit(_ context.Context, chunk any) error {
	b, err := json.Marshal(chunk)
	if err != nil {
		return fmt.Errorf("encode chunk: %w", err)
	}
	if len(c.out) >= c.max || c.size+len(b) > c.maxBytes {
		return fmt.Errorf("streamed answer too large for one result (more than %d chunks or %d bytes): read it as a stream", c.max, c.maxBytes)
	}
	c.out = append(c.out, b)
	c.size += len(b)
	return nil
}

// Raw is the batch encoded, to answer as is (a json.RawMessage is sent
// without being checked again).
func (b Batch) Raw() json.RawMessage {
	raw, err := b.MarshalJSON()
	if err != nil {
		// Only Failed can fail to encode, and a string cannot.
		return json.RawMessage(`{"chunks":[],"end":true,"failed":{"message":"unencodable stream error"}}`)
	}
	return raw
}

// Max is the most streams the registry holds open at once.
func (r *Registry) Max() int { return r.opts.MaxStreams }
