package main

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/go-zeromq/zmq4/security/null"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/internal/testutil"
	"github.com/huly-net/huly-net/go/transport"
)

func TestConnectionLimitSettings(t *testing.T) {
	noEnv := func(string) string { return "" }
	cfg, _, err := loadConfig(nil, noEnv, io.Discard)
	require.NoError(t, err)
	require.NoError(t, cfg.validate())
	assert.Zero(t, cfg.MaxConnections, "derived from the descriptor limit")
	assert.Equal(t, transport.DefaultMaxConnections(), maxConnections(cfg))
	assert.Equal(t, transport.DefaultHandshakeTimeout, cfg.HelloTimeout.D())
	assert.Equal(t, transport.DefaultFrameProgressTimeout, cfg.FrameProgressTimeout.D())
	assert.EqualValues(t, transport.DefaultMaxBufferedBytes, cfg.MaxBufferedBytes)

	cfg, _, err = loadConfig([]string{"--max-connections", "7", "--hello-timeout", "2s"}, func(k string) string {
		return map[string]string{"HULY_FRAME_PROGRESS_TIMEOUT": "3s"}[k]
	}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, 7, maxConnections(cfg))
	assert.Equal(t, 2*time.Second, cfg.HelloTimeout.D())
	assert.Equal(t, 3*time.Second, cfg.FrameProgressTimeout.D())

	file := filepath.Join(t.TempDir(), "c.json")
	require.NoError(t, os.WriteFile(file, []byte(`{"max_buffered_bytes": 134217728}`), 0o600))
	cfg, _, err = loadConfig([]string{"--config", file}, noEnv, io.Discard)
	require.NoError(t, err)
	assert.EqualValues(t, 128<<20, cfg.MaxBufferedBytes)

	for _, bad := range [][]string{
		{"--max-connections", "-1"},
		{"--hello-timeout", "0s"},
		{"--frame-progress-timeout", "0s"},
		{"--max-buffered-bytes", "1000000"}, // below max_frame_size
	} {
		cfg, _, err := loadConfig(bad, noEnv, io.Discard)
		require.NoError(t, err, bad)
		assert.Error(t, cfg.validate(), bad)
	}
}

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
