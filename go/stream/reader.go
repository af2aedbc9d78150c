package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"sync"
	"time"
)

// Caller sends one request and returns its answer: the session the stream
// is read over (the network, an agent endpoint, a container endpoint).
type Caller func(ctx context.Context, method string, params any) (json.RawMessage, error)

// cancelTimeout bounds the cancel a Reader sends when it is closed early.
const cancelTimeout = 2 * time.Second

// Reader reads a stream: Next until io.EOF, or All. Close it when done
// early: that cancels the producer. It is safe for use by one goroutine
// at a time.
type Reader struct {
	call Caller
	uuid string
	id   string
	// ctx bounds the batch fetched ahead; it ends at Close.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	buf     []json.RawMessage
	end     bool
	err     error
	closed  bool
	pending chan fetched // the next batch, asked for ahead; nil when none
}

type fetched struct {
	b   Batch
	err error
}

// OpenReader opens a stream of op on container uuid over call (x.so) and
// returns a Reader holding its first batch.
func OpenReader(ctx context.Context, call Caller, uuid, op string, data json.RawMessage, window int) (*Reader, error) {
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	res, err := call(ctx, MethodOpen, []any{uuid, op, data, window})
	if err != nil {
		return nil, err
	}
	b, err := decodeBatch(res)
	if err != nil {
		return nil, err
	}
	r := newReader(call, uuid)
	r.id = b.ID
	r.take(b)
	r.mu.Lock()
	r.prefetchLocked()
	r.mu.Unlock()
	return r, nil
}

func newReader(call Caller, uuid string) *Reader {
	ctx, cancel := context.WithCancel(context.Background())
	return &Reader{call: call, uuid: uuid, ctx: ctx, cancel: cancel}
}

// prefetchLocked asks for the next batch while the chunks at hand are
// read, so that the producer refills its window meanwhile (one request
// ahead at most: the window still bounds what is buffered).
func (r *Reader) prefetchLocked() {
	if r.end || r.closed || r.id == "" || r.pending != nil {
		return
	}
	ch := make(chan fetched, 1)
	r.pending = ch
	go func() {
		res, err := r.call(r.ctx, MethodNext, []any{r.uuid, r.id})
		var b Batch
		if err == nil {
			b, err = decodeBatch(res)
		}
		ch <- fetched{b, err}
	}()
}

// Single is a Reader over one result: what a stream is from a server that
// does not stream (the result is its only chunk).
func Single(res json.RawMessage) *Reader {
	r := newReader(nil, "")
	r.buf, r.end = []json.RawMessage{res}, true
	return r
}

func decodeBatch(res json.RawMessage) (Batch, error) {
	var b Batch
	if err := json.Unmarshal(res, &b); err != nil {
		return Batch{}, fmt.Errorf("stream: bad batch %.200s: %w", res, err)
	}
	if !b.End && b.ID == "" {
		return Batch{}, fmt.Errorf("stream: batch without id: %.200s", res)
	}
	return b, nil
}

func (r *Reader) take(b Batch) {
	r.buf = append(r.buf, b.Chunks...)
	if b.End {
		r.end = true
		if b.Failed != nil {
			r.err = &Error{Message: b.Failed.Message}
		}
	}
}

// Error is the error a stream ended with, as its producer said it.
type Error struct{ Message string }

func (e *Error) Error() string { return e.Message }

// Next returns the next chunk; io.EOF after the last one, or the error the
// stream ended with. When ctx ends the stream is cancelled.
func (r *Reader) Next(ctx context.Context) (json.RawMessage, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		if len(r.buf) > 0 {
			c := r.buf[0]
			r.buf[0] = nil
			r.buf = r.buf[1:]
			return c, nil
		}
		if r.closed {
			return nil, errors.New("stream closed")
		}
		if r.end {
			if r.err != nil {
				return nil, r.err
			}
			return nil, io.EOF
		}
		r.prefetchLocked()
		var f fetched
		select {
		case f = <-r.pending:
			r.pending = nil
		case <-ctx.Done():
			r.cancelLocked()
			return nil, fmt.Errorf("stream %s: %w", r.id, ctx.Err())
		}
		if f.err != nil {
			r.cancelLocked()
			return nil, fmt.Errorf("stream %s: %w", r.id, f.err)
		}
		r.take(f.b)
		r.prefetchLocked()
	}
}

// All iterates over the chunks; it stops at the end, at an error (yielded
// once) or when the loop breaks, which cancels the stream.
func (r *Reader) All(ctx context.Context) iter.Seq2[json.RawMessage, error] {
	return func(yield func(json.RawMessage, error) bool) {
		defer r.Close()
		for {
			c, err := r.Next(ctx)
			if errors.Is(err, io.EOF) {
				return
			}
			if !yield(c, err) || err != nil {
				return
			}
		}
	}
}

// Close ends the reading; a stream not read to its end is cancelled (the
// producer's context ends).
func (r *Reader) Close() error {
	r.cancel() // a Next waiting for a batch returns
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.cancelLocked()
	}
	return nil
}

func (r *Reader) cancelLocked() {
	r.closed = true
	r.cancel()
	if r.end || r.id == "" {
		return
	}
	r.end = true
	ctx, cancel := context.WithTimeout(context.Background(), cancelTimeout)
	defer cancel()
	_, _ = r.call(ctx, MethodCancel, []any{r.uuid, r.id})
}
