package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/client/clienttest"
	"github.com/huly-net/huly-net/go/network"
)

// worker is a container whose requests take a moment of work, and fail
// when it is terminated while they run: stopping it under load loses
// requests unless its agent lets them finish first.
type worker struct {
	agent.Broadcaster
	stop chan struct{}
	once sync.Once
}

func newWorker(context.Context, string, network.GetOptions) (agent.Container, error) {
	return &worker{stop: make(chan struct{})}, nil
}

func (w *worker) Request(ctx context.Context, _ string, _ string, data json.RawMessage) (any, error) {
	work := time.NewTimer(2 * time.Millisecond) // the work itself, not a synchronisation
	defer work.Stop()
	select {
	case <-work.C:
		return data, nil
	case <-w.stop:
		return nil, errors.New("container stopped while serving the request")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
func (w *worker) Terminate(context.Context) error { w.once.Do(func() { close(w.stop) }); return nil }
func (w *worker) Ping(context.Context) error      { return nil }

// load sends routed requests on a set of references until stopped,
// counting them.
type load struct {
	requests, errors atomic.Int64
	mu               sync.Mutex
	firstErrors      []error
	cancel           context.CancelFunc
	wg               sync.WaitGroup
}

func startLoad(t *testing.T, refs []*client.ContainerRef) *load {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel}
	for i, r := range refs {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				rctx, rcancel := context.WithTimeout(ctx, clienttest.WaitFor)
				_, err := r.Request(rctx, "echo", map[string]int{"worker": i, "n": n})
				rcancel()
				if ctx.Err() != nil {
					return // stopped while waiting: not counted
				}
				l.requests.Add(1)
				if err != nil {
					l.errors.Add(1)
					l.mu.Lock()
					if len(l.firstErrors) < 5 {
						l.firstErrors = append(l.firstErrors, err)
					}
					l.mu.Unlock()
				}
			}
		}()
	}
	t.Cleanup(l.stop)
	return l
}

func (l *load) stop() { l.cancel(); l.wg.Wait() }

// progress waits until n more requests were answered.
func (l *load) progress(t *testing.T, n int64) {
	t.Helper()
	target := l.requests.Load() + n
	require.Eventually(t, func() bool { return l.requests.Load() >= target }, waitFor, waitFor/1000,
		"requests stalled at %d", l.requests.Load())
}

func agentOf(t *testing.T, s *clienttest.Server, uuid string) network.AgentID {
	rec, ok := s.Network().Container(network.ContainerUUID(uuid))
	if !ok {
		return ""
	}
	return rec.AgentID
}

// Restarting the two agents of a kind one after the other, under load,
// loses no request: a stopping agent leaves the network first, its
// containers move to the other agent while it finishes what it was sent,
// and requests that found a container gone follow it.
func TestRollingRestartOfAgentsLosesNoRequest(t *testing.T) {
	s := clienttest.StartServer(t)
	ids := []string{"agent-rolling-1", "agent-rolling-2"}
	start := func(id string) (*agent.Agent, *client.Client) {
		return clienttest.StartAgent(t, s.Addr(), clienttest.AgentSetup{
			Options: agent.Options{ID: id}, Kinds: map[string]agent.Factory{"echo": newWorker},
		})
	}
	agents := make([]*agent.Agent, 2)
	hosts := make([]*client.Client, 2)
	for i, id := range ids {
		agents[i], hosts[i] = start(id)
	}
	c := clienttest.Dial(t, s.Addr())
	ctx := clienttest.Ctx(t)
	var refs []*client.ContainerRef
	for i := range 8 {
		r, err := c.Get(ctx, "echo", client.GetOptions{Labels: []string{fmt.Sprintf("tenant-%d", i)}})
		require.NoError(t, err)
		refs = append(refs, r)
	}
	l := startLoad(t, refs)
	l.progress(t, 200)

	for i, id := range ids {
		require.NoError(t, agents[i].Close(ctx))
		require.NoError(t, hosts[i].Close(ctx))
		l.progress(t, 200)
		for _, r := range refs {
			assert.NotEqual(t, network.AgentID(id), agentOf(t, s, r.UUID()), "nothing stays on the stopped agent")
		}
		agents[i], hosts[i] = start(id)
		l.progress(t, 200)
	}
	l.stop()
	t.Logf("rolling restart of 2 agents under load: %d requests, %d errors", l.requests.Load(), l.errors.Load())
	assert.Greater(t, l.requests.Load(), int64(1000))
	assert.Zero(t, l.errors.Load(), "errors: %v", l.firstErrors)
}
