package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/internal/testutil"
	"github.com/huly-net/huly-net/go/transport"
)

const waitFor = 15 * time.Second

var binary string

// TestMain builds the daemon once for the tests that run it as systemd
// would; under -short (the Nix check phase) those tests skip.
func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "huly-network-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary, err = testutil.BuildBinary(".", dir, "huly-network")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

type proc struct {
	cmd    *exec.Cmd
	stderr *testutil.SyncBuffer
	done   chan error
}

func start(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	skipShort(t)
	d := &proc{cmd: cmd, stderr: &testutil.SyncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = d.stderr
	cmd.WaitDelay = 5 * time.Second
	require.NoError(t, cmd.Start())
	go func() { d.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-d.done
		if t.Failed() {
			t.Logf("daemon stderr:\n%s", d.stderr.String())
		}
	})
	return d
}

func (d *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case err := <-d.done:
		d.done <- err
		return testutil.ExitCode(err)
	case <-time.After(waitFor):
		t.Fatal("daemon did not exit")
		return -1
	}
}

func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the real daemon; skipped under -short")
	}
}

// tsHello speaks to addr the way the TypeScript client does: a DEALER
// without a routing id, a 4-frame hello, then a 3-frame request.
func tsHello(t *testing.T, addr string) (serverID string, akReply [][]byte) {
	t.Helper()
	msgs := make(chan [][]byte, 16)
	connected := make(chan struct{}, 1)
	d := transport.Dial(addr, transport.DealerHandler{
		OnConnect: func() { connected <- struct{}{} },
		OnMessage: func(f [][]byte) { msgs <- f },
	}, transport.DealerOptions{})
	defer d.Close()
	select {
	case <-connected:
	case <-time.After(waitFor):
		t.Fatal("no connection")
	}
	recv := func() [][]byte {
		select {
		case m := <-msgs:
			return m
		case <-time.After(waitFor):
			t.Fatal("no answer")
			return nil
		}
	}
	require.NoError(t, d.Send([]byte("0"), []byte("c1d2e3f4-0000-4000-8000-000000000001"), []byte(`{"aliveTimeout":3}`), []byte("")))
	hello := recv()
	require.Len(t, hello, 3)
	assert.Equal(t, "0", string(hello[0]))
	assert.Equal(t, `{"aliveTimeout":3,"capabilities":["interest","ops","state","stream"]}`, string(hello[2]), "the alive timeout granted and the capabilities")
	require.NoError(t, d.Send([]byte("1"), []byte("c1d2e3f4-0000-4000-8000-000000000001-0"), []byte(`["ak",{}]`)))
	return string(hello[1]), recv()
}

var uuidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestReadyStatusStoppingInOrder(t *testing.T) {
	sock, notes := testutil.NotifySocket(t)
	port := testutil.FreePort(t)
	cmd := exec.Command(binary, "--log-format", "text")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, "PORT="+strconv.Itoa(port), "HOST=127.0.0.1", "WATCHDOG_USEC=400000")
	d := start(t, cmd)

	_, before := testutil.WaitFor(t, notes, "READY=1", waitFor)
	assert.Empty(t, before, "nothing before READY=1")
	status, _ := testutil.WaitFor(t, notes, "STATUS=", waitFor)
	assert.Equal(t, "STATUS=0 clients, 0 agents, 0 containers", status)
	testutil.WaitFor(t, notes, "WATCHDOG=1", waitFor)

	// Bound before READY=1: a TypeScript-format hello is answered at once.
	serverID, ak := tsHello(t, "127.0.0.1:"+strconv.Itoa(port))
	assert.Regexp(t, uuidRe, serverID)
	assert.Equal(t, [][]byte{[]byte("2"), []byte("c1d2e3f4-0000-4000-8000-000000000001-0"), []byte("[]")}, ak)
	status, _ = testutil.WaitFor(t, notes, "STATUS=1 clients", waitFor)
	assert.Equal(t, "STATUS=1 clients, 0 agents, 0 containers", status)

	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	testutil.WaitFor(t, notes, "STOPPING=1", waitFor)
	assert.Equal(t, 0, d.wait(t))
	assert.Contains(t, d.stderr.String(), "huly-network stopped")
}

func TestDefaultListenIsPort3737(t *testing.T) {
	skipShort(t)
	ln, err := net.Listen("tcp", "127.0.0.1:3737")
	if err != nil {
		t.Skipf("port 3737 is in use here (%v); the default is checked above", err)
	}
	require.NoError(t, ln.Close())
	sock, notes := testutil.NotifySocket(t)
	cmd := exec.Command(binary)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	d := start(t, cmd)
	testutil.WaitFor(t, notes, "READY=1", waitFor)
	serverID, _ := tsHello(t, "127.0.0.1:3737")
	assert.Regexp(t, uuidRe, serverID)
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGINT))
	assert.Equal(t, 0, d.wait(t))
}

func TestSocketActivation(t *testing.T) {
	ln := testutil.ListenTCP(t)
	f := testutil.ListenerFile(t, ln)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // the child holds its own copy
	sock, notes := testutil.NotifySocket(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := testutil.ActivatedCommand(ctx, []*os.File{f}, []string{"huly-network"}, []string{"NOTIFY_SOCKET=" + sock}, binary, "--listen", "tcp://127.0.0.1:1")
	d := start(t, cmd)
	testutil.WaitFor(t, notes, "READY=1", waitFor)
	serverID, _ := tsHello(t, addr)
	assert.Regexp(t, uuidRe, serverID)
	assert.Contains(t, d.stderr.String(), "serving the socket passed by systemd")
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 0, d.wait(t))
}

func TestMetrics(t *testing.T) {
	sock, notes := testutil.NotifySocket(t)
	metrics := testutil.FreeAddr(t)
	cmd := exec.Command(binary, "--listen", "tcp://127.0.0.1:0", "--metrics-listen", metrics)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	start(t, cmd)
	testutil.WaitFor(t, notes, "READY=1", waitFor)
	resp, err := http.Get("http://" + metrics + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	for _, m := range []string{"huly_network_agents 0", "huly_network_clients 0", "huly_network_oversize_frames_total 0", "go_goroutines"} {
		assert.Contains(t, string(body), m)
	}
}

func TestPprofOnlyWhenAsked(t *testing.T) {
	skipShort(t)
	sock, notes := testutil.NotifySocket(t)
	metrics, profiles := testutil.FreeAddr(t), testutil.FreeAddr(t)
	cmd := exec.Command(binary, "--listen", "tcp://127.0.0.1:0", "--metrics-listen", metrics, "--pprof-listen", profiles)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	start(t, cmd)
	testutil.WaitFor(t, notes, "READY=1", waitFor)
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}
	code, body := get("http://" + profiles + "/debug/pprof/")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "goroutine")
	code, body = get("http://" + profiles + "/debug/pprof/goroutine?debug=1")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "main.main")
	// The metrics listener must not leak the profiles.
	code, _ = get("http://" + metrics + "/debug/pprof/")
	assert.Equal(t, http.StatusNotFound, code)
}

func TestBadConfigurationExits2(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"listen":"tcp://127.0.0.1:0","alive_timout":"3s"}`), 0o600))
	for name, tc := range map[string]struct {
		args []string
		env  []string
		want string
	}{
		"unknown flag":        {args: []string{"--no-such-flag"}, want: "no-such-flag"},
		"unknown key":         {args: []string{"--config", bad}, want: `unknown key "alive_timout"`},
		"unreadable file":     {args: []string{"--config", filepath.Join(dir, "missing.json")}, want: "missing.json"},
		"bad duration":        {args: []string{"--alive-timeout", "soon"}, want: "alive-timeout"},
		"ping over alive":     {args: []string{"--ping-interval", "5s"}, want: "ping_interval (5s) must be below alive_timeout (3s)"},
		"bad listen":          {args: []string{"--listen", "ipc:///tmp/x"}, want: "listen"},
		"bad env":             {env: []string{"HULY_MAX_INFLIGHT=many"}, want: "HULY_MAX_INFLIGHT"},
		"bad log level":       {args: []string{"--log-level", "loud"}, want: "loud"},
		"tiny max frame size": {args: []string{"--max-frame-size", "10"}, want: "max_frame_size"},
		"bad pprof listen":    {args: []string{"--pprof-listen", "nowhere"}, want: "pprof_listen"},
	} {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(binary, tc.args...)
			cmd.Env = append(os.Environ(), tc.env...)
			out, err := cmd.CombinedOutput()
			assert.Equal(t, 2, testutil.ExitCode(err), string(out))
			assert.Contains(t, string(out), tc.want)
		})
	}
}

func TestBindFailureExits1(t *testing.T) {
	skipShort(t)
	ln := testutil.ListenTCP(t)
	cmd := exec.Command(binary, "--listen", "tcp://"+ln.Addr().String())
	out, err := cmd.CombinedOutput()
	assert.Equal(t, 1, testutil.ExitCode(err), string(out))
	assert.True(t, strings.Contains(string(out), "address already in use"), string(out))
}

func TestSIGHUPReloadsLoggingAndKeepsServing(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "network.json")
	require.NoError(t, os.WriteFile(conf, []byte(`{"listen":"tcp://127.0.0.1:0","log_level":"info"}`), 0o600))
	sock, notes := testutil.NotifySocket(t)
	cmd := exec.Command(binary, "--config", conf, "--log-format", "text")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	d := start(t, cmd)
	testutil.WaitFor(t, notes, "READY=1", waitFor)

	require.NoError(t, os.WriteFile(conf, []byte(`{"listen":"tcp://127.0.0.1:0","log_level":"debug"}`), 0o600))
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGHUP))
	testutil.WaitFor(t, notes, "RELOADING=1", waitFor)
	testutil.WaitFor(t, notes, "READY=1", waitFor)
	require.Eventually(t, func() bool { return strings.Contains(d.stderr.String(), "reloaded logging settings") }, waitFor, 10*time.Millisecond)

	// A broken file is refused and the daemon goes on as it was.
	require.NoError(t, os.WriteFile(conf, []byte(`{"log_level":`), 0o600))
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGHUP))
	testutil.WaitFor(t, notes, "READY=1", waitFor)
	require.Eventually(t, func() bool { return strings.Contains(d.stderr.String(), "configuration not reloaded") }, waitFor, 10*time.Millisecond)

	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 0, d.wait(t))
}
