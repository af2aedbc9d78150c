package backrpc

import (
	"context"
	"sync"
	"time"
)

// workerIdle is how long a worker goroutine waits for the next job before
// it ends: long enough to carry a steady load from one request to the
// next, short enough that a burst's goroutines (and their stacks) go away.
const workerIdle = 2 * time.Second

// workerPool runs each request handler on a goroutine that ran handlers
// before, when one is idle, instead of a new goroutine per request: a new
// goroutine starts with a small stack that the JSON and network code grow
// again for every request (runtime.newstack and copystack were a seventh
// of the server's CPU under load). There is no bound: a handler that
// blocks (a gg waiting for an agent) never holds up another.
type workerPool struct {
	jobs chan func() // unbuffered: a send succeeds only into an idle worker
	quit chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	stopped bool
}

func newWorkerPool() *workerPool {
	return &workerPool{jobs: make(chan func()), quit: make(chan struct{})}
}

// run runs f on an idle worker, or on a new one.
func (w *workerPool) run(f func()) {
	select {
	case w.jobs <- f:
		return
	default:
	}
	w.mu.Lock()
	if w.stopped {
		// After stop nobody waits for workers: f still runs, as a
		// plain goroutine.
		w.mu.Unlock()
		go f()
		return
	}
	w.wg.Add(1)
	w.mu.Unlock()
	go w.loop(f)
}

func (w *workerPool) loop(f func()) {
	defer w.wg.Done()
	f()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		select {
		case f := <-w.jobs:
			f()
			idle.Reset(workerIdle)
		case <-idle.C:
			return
		case <-w.quit:
			return
		}
	}
}

// stop ends the idle workers and waits, until ctx ends, for the busy ones
// to finish their job.
func (w *workerPool) stop(ctx context.Context) {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return
	}
	w.stopped = true
	close(w.quit)
	w.mu.Unlock()
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}
