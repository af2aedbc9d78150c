package agent

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/client"
)

// requestTracker counts the container requests the agent is serving, so
// that Close can let them finish before it terminates the containers.
type requestTracker struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed while n == 0; nil means idle
}

func (t *requestTracker) begin() {
	t.mu.Lock()
	if t.n == 0 {
		t.idle = make(chan struct{})
	}
	t.n++
	t.mu.Unlock()
}

func (t *requestTracker) end() {
	t.mu.Lock()
	t.n--
	if t.n == 0 {
		close(t.idle)
	}
	t.mu.Unlock()
}

// waitIdle returns once no request is in flight or ctx ends; it returns
// how many were still in flight.
func (t *requestTracker) waitIdle(ctx context.Context) int {
	t.mu.Lock()
	idle, n := t.idle, t.n
	t.mu.Unlock()
	if n == 0 {
		return 0
	}
	select {
	case <-idle:
		return 0
	case <-ctx.Done():
		t.mu.Lock()
		defer t.mu.Unlock()
		return t.n
	}
}

// InFlight is the number of container requests being served.
func (a *Agent) InFlight() int {
	a.reqs.mu.Lock()
	defer a.reqs.mu.Unlock()
	return a.reqs.n
}

// unregister is the first step of Close: the agent leaves the network
// (au), which places nothing more here and tells the holders of its
// containers, who follow them to other agents. A courtesy: a network that
// does not answer drops the agent after its alive timeout anyway, so a
// frozen network must not hold the stop for long.
func (a *Agent) unregister(ctx context.Context, c *client.Client) error {
	if c == nil || !c.Connected() {
		return nil
	}
	uctx, cancel := context.WithTimeout(ctx, unregisterTimeout)
	defer cancel()
	if _, err := c.Call(uctx, "au", map[string]string{"uuid": a.id}); err != nil {
		return fmt.Errorf("unregister agent %s: %w", a.id, err)
	}
	return nil
}

// finishRequests waits, at most TerminateTimeout, for the requests in
// flight to end before the containers are terminated.
func (a *Agent) finishRequests(ctx context.Context) {
	wctx, cancel := context.WithTimeout(ctx, a.opts.TerminateTimeout)
	defer cancel()
	start := time.Now()
	if left := a.reqs.waitIdle(wctx); left > 0 {
		a.log.WithFields(logrus.Fields{"requests": left, "waited": time.Since(start)}).Warn("stopping with requests still in flight")
	}
	// Streams nobody finished reading end here: their producers see their
	// context cancelled.
	if err := a.streamRegistry().Close(wctx); err != nil {
		a.log.WithError(err).Warn("stop streams")
	}
}

// drainGrace keeps serving, for DrainGrace after the network answered our
// au, the requests it routed here while it handled the au: the network
// handles one client's requests concurrently, so one it looked up before
// our au can be sent after the answer.
func (a *Agent) drainGrace(ctx context.Context) {
	t := time.NewTimer(a.opts.DrainGrace)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
