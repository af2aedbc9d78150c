package main

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/go-zeromq/zmq4/security/null"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/internal/testutil"
)

// A connection that completes the handshake and says nothing is closed
// after hello_timeout, with a warning naming it and the limit, and counted.
func TestSilentConnectionIsClosedLoggedAndCounted(t *testing.T) {
	sock, notes := testutil.NotifySocket(t)
	metrics := testutil.FreeAddr(t)
	ln := testutil.ListenTCP(t)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	cmd := exec.Command(binary, "--listen", "tcp://"+addr, "--metrics-listen", metrics, "--hello-timeout", "300ms", "--log-format", "text")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	d := start(t, cmd)
	testutil.WaitFor(t, notes, "READY=1", waitFor)

	nc, err := net.DialTimeout("tcp", addr, waitFor)
	require.NoError(t, err)
	defer nc.Close()
	require.NoError(t, nc.SetDeadline(time.Now().Add(waitFor)))
	_, err = zmq4.Open(nc, null.Security(), zmq4.Dealer, nil, false, nil)
	require.NoError(t, err)
	_, err = io.Copy(io.Discard, nc)
	var ne net.Error
	require.False(t, err != nil && errors.As(err, &ne) && ne.Timeout(), "server did not close the silent connection")

	require.Eventually(t, func() bool {
		return strings.Contains(d.stderr.String(), "sent no message after its handshake")
	}, waitFor, 10*time.Millisecond)
	line := regexp.MustCompile(`.*sent no message after its handshake.*`).FindString(d.stderr.String())
	assert.Contains(t, line, "level=warning")
	assert.Contains(t, line, nc.LocalAddr().String(), "the peer's address")
	assert.Contains(t, line, "first_message_timeout=300ms")

	resp, err := http.Get("http://" + metrics + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for _, m := range []string{
		"huly_network_hello_timeouts_total 1",
		"huly_network_connections 0",
		"huly_network_connections_refused_total 0",
		"huly_network_connections_evicted_total 0",
		"huly_network_stalled_frames_total 0",
		"huly_network_buffer_budget_exceeded_total 0",
		"huly_network_buffered_bytes 0",
	} {
		assert.Contains(t, string(body), m+"\n")
	}
}
