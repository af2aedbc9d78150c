package main

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/internal/testutil"
	"github.com/huly-net/huly-net/go/transport"
)

// The daemon grants at most --max-alive-timeout, says so in the hello
// answer, logs the peer and the limit at warning, and counts it.
func TestDaemonCapsAliveTimeout(t *testing.T) {
	sock, notes := testutil.NotifySocket(t)
	metrics := testutil.FreeAddr(t)
	addr := testutil.FreeAddr(t)
	cmd := exec.Command(binary, "--listen", "tcp://"+addr, "--metrics-listen", metrics, "--max-alive-timeout", "7s", "--log-format", "text")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	d := start(t, cmd)
	testutil.WaitFor(t, notes, "READY=1", waitFor)

	msgs := make(chan [][]byte, 16)
	connected := make(chan struct{}, 1)
	dl := transport.Dial(addr, transport.DealerHandler{
		OnConnect: func() { connected <- struct{}{} },
		OnMessage: func(f [][]byte) { msgs <- f },
	}, transport.DealerOptions{})
	defer dl.Close()
	select {
	case <-connected:
	case <-time.After(waitFor):
		t.Fatal("no connection")
	}
	require.NoError(t, dl.Send([]byte("0"), []byte("c1d2e3f4-0000-4000-8000-00000000000a"), []byte(`{"aliveTimeout":31536000}`), []byte("")))
	var hello [][]byte
	select {
	case hello = <-msgs:
	case <-time.After(waitFor):
		t.Fatal("no hello answer")
	}
	require.Len(t, hello, 3)
	assert.Equal(t, 7*time.Second, backrpc.ParseHelloInfo(hello[2]).AliveTimeout, "granted: %s", hello[2])

	require.Eventually(t, func() bool {
		return strings.Contains(d.stderr.String(), "max_alive_timeout=7s") && strings.Contains(d.stderr.String(), "level=warning")
	}, waitFor, 10*time.Millisecond, "a warning naming the limit")
	resp, err := http.Get("http://" + metrics + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for _, m := range []string{
		"huly_network_alive_timeout_capped_total 1", "huly_network_refused_hellos_total 0",
		"huly_network_detached_sessions 0", "huly_network_session_evictions_total 0",
		"huly_network_unreachable_agents 0", "huly_network_refused_agent_claims_total 0",
		"huly_network_failovers_total 0", "huly_network_unreachable_routes_total 0",
	} {
		assert.Contains(t, string(body), m)
	}
}
