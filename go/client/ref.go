package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/network"
)

// ErrReleased is returned by calls on a released ContainerRef.
var ErrReleased = errors.New("container reference released")

// ContainerRef is a reference the client holds to a container: the network
// keeps the container while it is held. It follows its container: when an
// event says the container was updated or removed, or the network server
// restarted, the reference is obtained again and its uuid and endpoint
// (and the connections opened from it) follow.
type ContainerRef struct {
	c    *Client
	kind string
	opts GetOptions

	ctx    context.Context // ends at Release or client close
	cancel context.CancelFunc

	mu        sync.Mutex
	uuid      string
	endpoint  string
	released  bool
	following bool
	conns     map[*Connection]struct{}
	changed   chan struct{} // closed and replaced at every change
}

// UUID is the container's uuid now.
func (r *ContainerRef) UUID() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.uuid
}

// Kind is the kind the reference was obtained for.
func (r *ContainerRef) Kind() string { return r.kind }

// Endpoint is the container's endpoint reference string now (PROTOCOL.md
// §3), as the network gave it.
func (r *ContainerRef) Endpoint() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.endpoint
}

// EndpointRef parses Endpoint.
func (r *ContainerRef) EndpointRef() (network.EndpointRef, error) {
	return network.ParseEndpointRef(r.Endpoint())
}

// Changed returns a channel closed at the next change of uuid or endpoint
// (or at Release).
func (r *ContainerRef) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

func (r *ContainerRef) current() (uuid, endpoint string, released bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.uuid, r.endpoint, r.released
}

// Request sends a request to the container, routed through the network.
// A request that found the container gone (its agent left the network) is
// sent again once the reference has followed it (requestFollowing).
func (r *ContainerRef) Request(ctx context.Context, op string, data any) (json.RawMessage, error) {
	return r.requestFollowing(ctx, op, data)
}

// Release gives the reference back (cr); the network terminates a
// container nobody holds after its unused timeout. Connections opened from
// the reference close. Releasing twice is a no-op.
func (r *ContainerRef) Release(ctx context.Context) error {
	if !r.markReleased() {
		return nil
	}
	uuid, _, _ := r.current()
	c := r.c
	c.mu.Lock()
	if c.refs[uuid] == r {
		delete(c.refs, uuid)
	}
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil // the server forgets our references with our session
	}
	if _, err := c.rpc.Request(ctx, "cr", map[string]string{"uuid": uuid}); err != nil {
		return fmt.Errorf("release %s: %w", uuid, err)
	}
	return nil
}

// markReleased stops following and closes the connections; false when it
// was already released.
func (r *ContainerRef) markReleased() bool {
	r.mu.Lock()
	if r.released {
		r.mu.Unlock()
		return false
	}
	r.released = true
	conns := make([]*Connection, 0, len(r.conns))
	for conn := range r.conns {
		conns = append(conns, conn)
	}
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	r.cancel()
	for _, conn := range conns {
		_ = conn.Close()
	}
	return true
}

// Get returns a reference to a container of kind (PROTOCOL.md §8). A
// reference the client already holds for opts.UUID is returned as it is.
// Otherwise the network is asked (gg) until it answers, waiting 1, 2, 3 …
// retry ticks between attempts (at most the max get wait) and trying again
// at once when an event announces an agent offering kind; ctx bounds it.
// Two gets that end at the same container share one reference (as in the
// reference client): releasing it releases it for both.
func (c *Client) Get(ctx context.Context, kind string, opts GetOptions) (*ContainerRef, error) {
	if kind == "" && opts.UUID == "" {
		return nil, errors.New("get: a kind or a uuid is required")
	}
	if opts.Extra != nil && !json.Valid(opts.Extra) {
		return nil, errors.New("get: extra is not valid JSON")
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if opts.UUID != "" {
		if r := c.refs[string(opts.UUID)]; r != nil {
			c.mu.Unlock()
			return r, nil
		}
	}
	c.mu.Unlock()

	uuid, endpoint, err := c.getRetry(ctx, kind, opts)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if r := c.refs[uuid]; r != nil {
		return r, nil
	}
	rctx, cancel := context.WithCancel(c.ctx)
	r := &ContainerRef{
		c: c, kind: kind, opts: opts, ctx: rctx, cancel: cancel,
		uuid: uuid, endpoint: endpoint,
		conns:   map[*Connection]struct{}{},
		changed: make(chan struct{}),
	}
	c.refs[uuid] = r
	return r, nil
}

type ggParams struct {
	Kind    string     `json:"kind"`
	Request GetOptions `json:"request"`
}

// getRetry asks gg until it succeeds, ctx ends or the client closes.
func (c *Client) getRetry(ctx context.Context, kind string, opts GetOptions) (uuid, endpoint string, err error) {
	for attempt := 1; ; attempt++ {
		// Wake-ups are armed before asking, so that an agent announced
		// while the answer travels is not missed.
		kw, uw := c.wakeChans(kind, string(opts.UUID))
		uuid, endpoint, err = c.getOnce(ctx, kind, opts)
		if err == nil {
			return uuid, endpoint, nil
		}
		if !retryable(err) {
			return "", "", err
		}
		if ctx.Err() != nil {
			return "", "", err // already "get KIND: …"
		}
		wait := time.Duration(attempt) * c.opts.retryTick
		if wait > c.opts.maxGetWait {
			wait = c.opts.maxGetWait
		}
		c.log.WithError(err).WithFields(logrus.Fields{"kind": kind, "uuid": opts.UUID, "attempt": attempt, "wait": wait}).Debug("get failed; retrying")
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", "", fmt.Errorf("get %s: %w (last error: %w)", kind, ctx.Err(), err)
		case <-c.ctx.Done():
			t.Stop()
			return "", "", ErrClosed
		case <-kw:
		case <-uw:
		case <-t.C:
		}
		t.Stop()
	}
}

func (c *Client) getOnce(ctx context.Context, kind string, opts GetOptions) (string, string, error) {
	res, err := c.Call(ctx, "gg", ggParams{Kind: kind, Request: opts})
	if err != nil {
		return "", "", fmt.Errorf("get %s: %w", kind, err)
	}
	var pair []string
	if err := json.Unmarshal(res, &pair); err != nil || len(pair) < 2 || pair[0] == "" {
		return "", "", &answerError{fmt.Sprintf("get %s: want [uuid, endpoint], got %.200s", kind, res)}
	}
	c.noteEndpointKey(pair)
	return pair[0], pair[1], nil
}

// answerError is an answer we cannot use; asking again will not help.
type answerError struct{ msg string }

func (e *answerError) Error() string { return e.msg }

// retryable: the network's (or an agent's) answers may change as agents
// come and go; our own failures (closed, bad answer, bad params) do not.
func retryable(err error) bool {
	if errors.Is(err, ErrClosed) {
		return false
	}
	var ae *answerError
	if errors.As(err, &ae) {
		return false
	}
	if refusedBySecurity(err) {
		return false
	}
	var re *backrpc.RemoteError
	if errors.As(err, &re) {
		// The server's complaints about the params themselves.
		return !strings.HasPrefix(re.Message, "gg:") && !strings.Contains(re.Message, network.ErrInvalidParams.Error())
	}
	// ctx errors are handled by the caller; anything else (a transport
	// error) may pass.
	return true
}

// update moves the reference to (uuid, endpoint) and re-targets its
// connections; false when nothing changed.
func (r *ContainerRef) update(uuid, endpoint string) bool {
	c := r.c
	r.mu.Lock()
	if r.released {
		r.mu.Unlock()
		return true
	}
	old := r.uuid
	if uuid == r.uuid && endpoint == r.endpoint {
		r.mu.Unlock()
		return false
	}
	r.uuid, r.endpoint = uuid, endpoint
	conns := make([]*Connection, 0, len(r.conns))
	for conn := range r.conns {
		conns = append(conns, conn)
	}
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()

	c.log.WithFields(logrus.Fields{"old_uuid": old, "uuid": uuid, "endpoint": endpoint}).Debug("reference follows its container")
	if uuid != old {
		c.mu.Lock()
		if c.refs[old] == r {
			delete(c.refs, old)
		}
		if c.refs[uuid] == nil {
			c.refs[uuid] = r
		}
		c.mu.Unlock()
	}
	for _, conn := range conns {
		c.goWorker(func() {
			ctx, cancel := context.WithTimeout(r.ctx, c.opts.reacquireTimeout)
			defer cancel()
			if err := conn.retarget(ctx); err != nil {
				c.log.WithError(err).WithField("uuid", uuid).Warn("reconnect to container")
			}
		})
	}
	return true
}

// goWorker runs fn on a goroutine Close waits for; false once closed.
func (c *Client) goWorker(fn func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.workers.Add(1)
	go func() {
		defer c.workers.Done()
		fn()
	}()
	return true
}

// reacquire obtains the reference again (gg with its uuid) and follows the
// answer.
func (r *ContainerRef) reacquire(ctx context.Context) error {
	uuid, _, released := r.current()
	if released {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(r.ctx, cancel)
	defer stop()
	opts := r.opts
	opts.UUID = network.ContainerUUID(uuid)
	newUUID, endpoint, err := r.c.getRetry(ctx, r.kind, opts)
	if err != nil {
		return err
	}
	if !r.update(newUUID, endpoint) {
		// Same place, but the container may have been started again
		// there (its agent restarted): it has forgotten our connections.
		r.resubscribe()
	}
	return nil
}

// resubscribe repeats cc for the routed connections (the agent ignores a
// client it already has).
func (r *ContainerRef) resubscribe() {
	r.mu.Lock()
	conns := make([]*Connection, 0, len(r.conns))
	for conn := range r.conns {
		conns = append(conns, conn)
	}
	r.mu.Unlock()
	for _, conn := range conns {
		r.c.goWorker(func() {
			ctx, cancel := context.WithTimeout(r.ctx, r.c.opts.reacquireTimeout)
			defer cancel()
			conn.resubscribe(ctx)
		})
	}
}

// follow re-obtains the reference in the background until it succeeds,
// the reference is released or the client closes; one at a time.
func (r *ContainerRef) follow() {
	r.mu.Lock()
	if r.released || r.following {
		r.mu.Unlock()
		return
	}
	r.following = true
	r.mu.Unlock()
	started := r.c.goWorker(func() {
		defer func() {
			r.mu.Lock()
			r.following = false
			r.mu.Unlock()
		}()
		if err := r.reacquire(r.ctx); err != nil && r.ctx.Err() == nil {
			r.c.log.WithError(err).WithField("uuid", r.UUID()).Warn("follow container")
		}
	})
	if !started {
		r.mu.Lock()
		r.following = false
		r.mu.Unlock()
	}
}

// reacquireAll re-gets every held reference after a server change, waiting
// at most the reacquire timeout; the rest go on in the background.
func (c *Client) reacquireAll(ctx context.Context) {
	c.mu.Lock()
	refs := make([]*ContainerRef, 0, len(c.refs))
	for _, r := range c.refs {
		refs = append(refs, r)
	}
	c.mu.Unlock()
	if len(refs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.reacquireTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, r := range refs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.reacquire(ctx); err != nil {
				r.follow()
			}
		}()
	}
	wg.Wait()
}

// followEvent is the first subscriber of network events: it wakes waiting
// gets and moves references whose container changed.
func (c *Client) followEvent(ev network.Event) {
	c.wake(ev)
	for _, ce := range ev.Containers {
		c.mu.Lock()
		r := c.refs[string(ce.Container.UUID)]
		c.mu.Unlock()
		if r == nil {
			continue
		}
		switch ce.Event {
		case network.EventRemoved:
			r.follow()
		default:
			// A 0.7 server's records of started containers carry an
			// empty endpoint: that is no news.
			if ep := ce.Container.Endpoint; ep != "" {
				r.update(string(ce.Container.UUID), ep)
			}
		}
	}
}
