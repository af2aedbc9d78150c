package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/client/clienttest"
	"github.com/huly-net/huly-net/go/internal/testutil"
)

func startAgent(t *testing.T, network, id, config string) *testutil.Proc {
	t.Helper()
	p := testutil.StartDaemon(t, bins.Path("huly-agent"),
		[]string{"--config", config, "--network", network, "--listen", "127.0.0.1:0", "--agent-id", id, "--log-format", "text"},
		testutil.ProcOptions{})
	p.WaitReady(t)
	return p
}

// stopAgent sends SIGTERM and waits for a clean exit.
func stopAgent(t *testing.T, p *testutil.Proc) {
	t.Helper()
	p.Signal(t, syscall.SIGTERM)
	require.Equal(t, 0, p.Wait(t), "a clean stop exits 0")
}

// Two huly-agent processes offering a kind are restarted one after the
// other (SIGTERM, start again with the same id) while a client sends
// routed requests to eight containers: none is lost.
func TestRollingRestartOfDaemonsLosesNoRequest(t *testing.T) {
	bins.Need(t)
	srv := clienttest.StartServer(t)
	config := writeConfig(t, `{"kinds":{"echo":{"runtime":"builtin","builtin":"echo"}}}`)
	ids := []string{"rolling-agent-1", "rolling-agent-2"}
	daemons := make([]*testutil.Proc, len(ids))
	for i, id := range ids {
		daemons[i] = startAgent(t, srv.Addr(), id, config)
	}
	c := clienttest.Dial(t, srv.Addr())
	ctx := clienttest.Ctx(t)
	var refs []*client.ContainerRef
	for i := range 8 {
		r, err := c.Get(ctx, "echo", client.GetOptions{Labels: []string{fmt.Sprintf("tenant-%d", i)}})
		require.NoError(t, err)
		refs = append(refs, r)
	}

	var requests, failures atomic.Int64
	var firstErr atomic.Value
	lctx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, r := range refs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for lctx.Err() == nil {
				rctx, cancel := context.WithTimeout(lctx, waitFor)
				_, err := r.Request(rctx, "echo", 1)
				cancel()
				if lctx.Err() != nil {
					return
				}
				requests.Add(1)
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	defer func() { stopLoad(); wg.Wait() }()
	progress := func(n int64) {
		target := requests.Load() + n
		require.Eventually(t, func() bool { return requests.Load() >= target }, waitFor, 5*time.Millisecond)
	}

	progress(200)
	for i, id := range ids {
		stopAgent(t, daemons[i])
		progress(200)
		daemons[i] = startAgent(t, srv.Addr(), id, config)
		progress(200)
	}
	stopLoad()
	wg.Wait()
	t.Logf("rolling restart of 2 huly-agent processes under load: %d requests, %d errors", requests.Load(), failures.Load())
	assert.Greater(t, requests.Load(), int64(1000))
	assert.Zero(t, failures.Load(), "first error: %v", firstErr.Load())
}
