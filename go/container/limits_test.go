package container_test

import (
	"context"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/go-zeromq/zmq4/security/null"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/client/clienttest"
	"github.com/huly-net/huly-net/go/container"
	"github.com/huly-net/huly-net/go/transport"
)

// A container's own endpoint has the transport's protections by default:
// a connection that completes the handshake and says nothing is closed
// after the first-message timeout (the handshake timeout).
func TestEndpointClosesSilentConnectionsByDefault(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f, err := ln.(*net.TCPListener).File()
	require.NoError(t, err)
	_ = ln.Close()
	defer f.Close()
	fd, err := syscall.Dup(int(f.Fd()))
	require.NoError(t, err)
	env := map[string]string{"HULY_CONTAINER_UUID": "c1", "HULY_CONTAINER_KIND": "k", "HULY_LISTEN_FD": itoa(fd)}

	im := &impl{stopped: make(chan struct{}), conns: make(chan string, 8)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan *container.Host, 1)
	done := make(chan error, 1)
	go func() {
		done <- container.ServeWith(ctx, im, container.Options{
			Getenv: func(k string) string { return env[k] }, NoSignals: true, Logger: clienttest.Quiet(),
			OnReady: func(h *container.Host) { ready <- h },
		})
	}()
	var h *container.Host
	select {
	case h = <-ready:
	case <-time.After(clienttest.WaitFor):
		require.FailNow(t, "container not ready")
	}

	nc, err := net.DialTimeout("tcp", h.Addr().String(), clienttest.WaitFor)
	require.NoError(t, err)
	defer nc.Close()
	wait := 3 * transport.DefaultHandshakeTimeout
	require.NoError(t, nc.SetDeadline(time.Now().Add(wait)))
	_, err = zmq4.Open(nc, null.Security(), zmq4.Dealer, nil, false, nil)
	require.NoError(t, err)
	_, err = io.Copy(io.Discard, nc)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		require.FailNow(t, "the endpoint kept a silent connection open")
	}

	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(clienttest.WaitFor):
		require.FailNow(t, "Serve did not return")
	}
}
