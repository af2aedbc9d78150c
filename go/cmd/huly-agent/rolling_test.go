package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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

// daemon is one huly-agent process.
type daemon struct {
	cmd    *exec.Cmd
	exited chan error
	stderr *testutil.SyncBuffer
}

func startDaemon(t *testing.T, network, id, config string) *daemon {
	t.Helper()
	notifyPath, notes := testutil.NotifySocket(t)
	d := &daemon{exited: make(chan error, 1), stderr: &testutil.SyncBuffer{}}
	d.cmd = exec.Command(filepath.Join(binDir, "huly-agent"),
		"--config", config, "--network", network, "--listen", "127.0.0.1:0", "--agent-id", id, "--log-format", "text")
	d.cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notifyPath)
	d.cmd.Stderr = d.stderr
	d.cmd.WaitDelay = 5 * time.Second
	require.NoError(t, d.cmd.Start())
	go func() { d.exited <- d.cmd.Wait() }()
	t.Cleanup(func() {
		_ = d.cmd.Process.Kill()
		<-d.exited
		d.exited <- nil
		if t.Failed() {
			t.Logf("huly-agent %s stderr:\n%s", id, d.stderr.String())
		}
	})
	testutil.WaitFor(t, notes, "READY=1", waitFor)
	return d
}

// stop sends SIGTERM and waits for a clean exit.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-d.exited:
		d.exited <- err
		require.Equal(t, 0, testutil.ExitCode(err), "a clean stop exits 0")
	case <-time.After(waitFor):
		require.FailNow(t, "huly-agent did not stop after SIGTERM")
	}
}

// Two huly-agent processes offering a kind are restarted one after the
// other (SIGTERM, start again with the same id) while a client sends
// routed requests to eight containers: none is lost.
func TestRollingRestartOfDaemonsLosesNoRequest(t *testing.T) {
	needBinaries(t)
	srv := clienttest.StartServer(t)
	config := writeConfig(t, `{"kinds":{"echo":{"runtime":"builtin","builtin":"echo"}}}`)
	ids := []string{"rolling-agent-1", "rolling-agent-2"}
	daemons := make([]*daemon, len(ids))
	for i, id := range ids {
		daemons[i] = startDaemon(t, srv.Addr(), id, config)
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
		daemons[i].stop(t)
		progress(200)
		daemons[i] = startDaemon(t, srv.Addr(), id, config)
		progress(200)
	}
	stopLoad()
	wg.Wait()
	t.Logf("rolling restart of 2 huly-agent processes under load: %d requests, %d errors", requests.Load(), failures.Load())
	assert.Greater(t, requests.Load(), int64(1000))
	assert.Zero(t, failures.Load(), "first error: %v", firstErr.Load())
}
