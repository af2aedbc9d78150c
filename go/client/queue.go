package client

import (
	"context"
	"sync"
	"sync/atomic"
)

// queue hands values from a producer that must never block (a connection's
// read goroutine) to subscribers, in order, on a goroutine of its own. It is
// unbounded: the producers here are network and container events, which the
// servers already batch, so memory is the only limit worth having; a
// subscriber channel that is full drops instead (and counts it), so that one
// reader who stopped reading cannot stall the others.
type queue[T any] struct {
	mu     sync.Mutex
	items  []queued[T]
	signal chan struct{} // cap 1: "there is something"
	// first sees every value before the handlers do: the owner's own
	// handling, which must come first.
	first    func(T)
	handlers []handlerEntry[T]
	nextID   int
	ch       chan T // created by channel(); closed when run returns
	chSize   int
	done     bool
	// merge, when set, folds the undelivered values into fewer once
	// there are mergeAt of them (a slow consumer).
	merge   func([]queued[T]) []queued[T]
	mergeAt int
	dropped atomic.Uint64
}

// queued is a value; an internal one (a partial value only the owner
// can use) reaches first alone.
type queued[T any] struct {
	v        T
	internal bool
}

type handlerEntry[T any] struct {
	id int
	fn func(T)
}

func newQueue[T any](chSize int) *queue[T] {
	if chSize <= 0 {
		chSize = 256
	}
	return &queue[T]{signal: make(chan struct{}, 1), chSize: chSize}
}

// push queues v; it never blocks.
func (q *queue[T]) push(v T) { q.add(queued[T]{v: v}) }

// pushInternal queues v for first only.
func (q *queue[T]) pushInternal(v T) { q.add(queued[T]{v: v, internal: true}) }

func (q *queue[T]) add(it queued[T]) {
	q.mu.Lock()
	if q.done {
		q.mu.Unlock()
		return
	}
	q.items = append(q.items, it)
	if q.merge != nil && len(q.items) >= q.mergeAt {
		q.items = q.merge(q.items)
	}
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// hasSubscribers reports whether anyone besides first receives values.
func (q *queue[T]) hasSubscribers() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.handlers) > 0 || q.ch != nil
}

// subscribe adds fn; the returned function removes it.
func (q *queue[T]) subscribe(fn func(T)) func() {
	q.mu.Lock()
	id := q.nextID
	q.nextID++
	q.handlers = append(q.handlers, handlerEntry[T]{id: id, fn: fn})
	q.mu.Unlock()
	return func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		for i, h := range q.handlers {
			if h.id == id {
				q.handlers = append(q.handlers[:i:i], q.handlers[i+1:]...)
				return
			}
		}
	}
}

// channel returns the subscriber channel, creating it on first use, so that
// nobody pays for (or is warned about) a channel nobody reads.
func (q *queue[T]) channel() <-chan T {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ch == nil {
		q.ch = make(chan T, q.chSize)
		if q.done {
			close(q.ch)
		}
	}
	return q.ch
}

// run delivers queued values until ctx ends, then closes the channel.
func (q *queue[T]) run(ctx context.Context) {
	defer func() {
		q.mu.Lock()
		q.done = true
		q.items = nil
		if q.ch != nil {
			close(q.ch)
		}
		q.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.signal:
		}
		for {
			q.mu.Lock()
			items := q.items
			q.items = nil
			handlers := q.handlers
			ch := q.ch
			q.mu.Unlock()
			if len(items) == 0 {
				break
			}
			for _, it := range items {
				if q.first != nil {
					q.first(it.v)
				}
				if it.internal {
					continue
				}
				for _, h := range handlers {
					h.fn(it.v)
				}
				if ch != nil {
					select {
					case ch <- it.v:
					default:
						q.dropped.Add(1)
					}
				}
				if ctx.Err() != nil {
					return
				}
			}
		}
	}
}
