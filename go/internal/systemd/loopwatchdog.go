package systemd

import (
	"context"
	"errors"
)

// LoopWatchdog feeds systemd's watchdog for as long as a daemon's main loop
// keeps answering: each ping asks the loop for an acknowledgement, so a loop
// that is stuck (deadlocked, or blocked on a lock that a wedged component
// holds) stops the pings and systemd restarts the daemon.
//
// The main loop selects on Ping() and closes what it receives:
//
//	case ack := <-wd.Ping():
//		close(ack)
type LoopWatchdog struct {
	ping   chan chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

var errLoopStuck = errors.New("main loop did not answer")

// StartLoopWatchdog starts feeding the watchdog (a no-op when systemd set
// none) until Stop or the end of ctx.
func (n *Notifier) StartLoopWatchdog(ctx context.Context) *LoopWatchdog {
	ctx, cancel := context.WithCancel(ctx)
	w := &LoopWatchdog{ping: make(chan chan struct{}), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		n.WatchdogCheck(ctx, func(cctx context.Context) error {
			ack := make(chan struct{})
			select {
			case w.ping <- ack:
			case <-cctx.Done():
				return errLoopStuck
			}
			select {
			case <-ack:
				return nil
			case <-cctx.Done():
				return errLoopStuck
			}
		})
	}()
	return w
}

// Ping delivers the watchdog's questions to the main loop.
func (w *LoopWatchdog) Ping() <-chan chan struct{} { return w.ping }

// Stop stops the pings and waits for the watchdog goroutine.
func (w *LoopWatchdog) Stop() {
	w.cancel()
	<-w.done
}
