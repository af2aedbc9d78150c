package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/internal/testutil"
)

var bins testutil.Binaries

func TestMain(m *testing.M) {
	os.Exit(testutil.BuildMain(m, &bins, map[string]string{"huly-bridge": "."}))
}

const deadline = testutil.DaemonTimeout

// start runs huly-bridge with a fake NOTIFY_SOCKET. files, when given, are
// passed as socket-activated fds named names.
func start(t *testing.T, args []string, env []string, files []*os.File, names []string) *testutil.Proc {
	t.Helper()
	bins.Need(t)
	return testutil.StartDaemon(t, bins.Path("huly-bridge"), args, testutil.ProcOptions{Env: env, Files: files, Names: names})
}

// echoServer is a target on 127.0.0.1 that echoes, half-closing on EOF.
func echoServer(t *testing.T) net.Listener {
	t.Helper()
	ln := testutil.ListenTCP(t)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
				_ = c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return ln
}

func dialEcho(t *testing.T, addr, msg string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, deadline)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(deadline)))
	echoed(t, c, msg)
	return c
}

func echoed(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	_, err := io.WriteString(c, msg)
	require.NoError(t, err)
	buf := make([]byte, len(msg))
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	require.Equal(t, msg, string(buf))
}

func refused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		_ = c.Close()
	}
	return err != nil
}

func TestDaemonDrainsOnSIGTERM(t *testing.T) {
	target := echoServer(t)
	listen := testutil.FreeAddr(t)
	p := start(t, []string{"--forward", "web=tcp:" + listen + ",tcp:" + target.Addr().String(), "--drain-timeout", "1m"}, nil, nil, nil)
	p.WaitReady(t)
	status, _ := testutil.WaitFor(t, p.Notify, "STATUS=", deadline)
	assert.Equal(t, "STATUS=1 forwards, 0 active connections", status)

	c := dialEcho(t, listen, "before")
	p.Signal(t, syscall.SIGTERM)
	testutil.WaitFor(t, p.Notify, "STOPPING=1", deadline)
	require.Eventually(t, func() bool { return refused(listen) }, deadline, 10*time.Millisecond, "still accepting after SIGTERM")

	// The active connection is served until it ends.
	echoed(t, c, "during drain")
	require.False(t, p.Exited(), "exited with a connection still active")
	require.NoError(t, c.(*net.TCPConn).CloseWrite())
	rest, err := io.ReadAll(c)
	require.NoError(t, err)
	assert.Empty(t, rest)
	assert.Equal(t, 0, p.Wait(t))
	assert.Contains(t, p.Output.String(), "stopping: no new connections")
}

func TestDaemonDrainDeadline(t *testing.T) {
	target := echoServer(t)
	listen := testutil.FreeAddr(t)
	p := start(t, []string{"--forward", "web=tcp:" + listen + ",tcp:" + target.Addr().String(), "--drain-timeout", "100ms"}, nil, nil, nil)
	p.WaitReady(t)
	c := dialEcho(t, listen, "held open")
	p.Signal(t, syscall.SIGTERM)
	assert.Equal(t, 0, p.Wait(t))
	n, err := c.Read(make([]byte, 1))
	assert.Zero(t, n)
	assert.Error(t, err, "the bridge closed the connection at the deadline")
	assert.Contains(t, p.Output.String(), "drain deadline passed")
}

func TestDaemonSocketActivation(t *testing.T) {
	target := echoServer(t)
	ln := testutil.ListenTCP(t)
	other := testutil.ListenTCP(t)
	f := testutil.ListenerFile(t, ln)
	fo := testutil.ListenerFile(t, other)
	p := start(t, []string{"--forward", "web=,tcp:" + target.Addr().String(), "--forward", "db=tcp:127.0.0.1:0,tcp:" + target.Addr().String()},
		nil, []*os.File{f, fo}, []string{"web", "db"})
	p.WaitReady(t)
	// The test's own copies must not accept: close them so that only the
	// daemon's descriptors remain.
	require.NoError(t, ln.Close())
	require.NoError(t, other.Close())
	_ = dialEcho(t, ln.Addr().String(), "activated web").Close()
	_ = dialEcho(t, other.Addr().String(), "activated db").Close()
	assert.Contains(t, p.Output.String(), "configured listen address is ignored")
	p.Signal(t, syscall.SIGTERM)
	assert.Equal(t, 0, p.Wait(t))
}

func TestDaemonSocketActivationUnknownName(t *testing.T) {
	ln := testutil.ListenTCP(t)
	p := start(t, []string{"--forward", "web=tcp:127.0.0.1:0,tcp:127.0.0.1:1"}, nil, []*os.File{testutil.ListenerFile(t, ln)}, []string{"nosuch"})
	assert.Equal(t, 2, p.Wait(t))
	assert.Contains(t, p.Output.String(), "nosuch match no forward")
}

func TestDaemonBadConfigurationExits2(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "bridge.json")
	require.NoError(t, os.WriteFile(cfg, []byte(`{"forwards":{"web":{"listen":"tcp:127.0.0.1:0","target":"tcp:127.0.0.1:1","idle_timeout":"forever"}}}`), 0o600))
	for _, tc := range []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"--config", cfg}, nil, "forwards.web.idle_timeout"},
		{[]string{"--forward", "web=tcp:127.0.0.1:0,tcp:127.0.0.1:1", "--max-connections", "lots"}, nil, "-max-connections"},
		{[]string{"--forward", "web=tcp:127.0.0.1:0,tcp:127.0.0.1:1"}, []string{"HULY_LOG_FORMAT=xml"}, "log_format"},
		{[]string{"--forward", "web=ftp:x,tcp:127.0.0.1:1"}, nil, `forward "web": listen`},
	} {
		p := start(t, tc.args, tc.env, nil, nil)
		assert.Equal(t, 2, p.Wait(t), "args %q", tc.args)
		assert.Contains(t, p.Output.String(), tc.want)
	}
}

func TestDaemonListenFailureExits1(t *testing.T) {
	taken := testutil.ListenTCP(t)
	p := start(t, []string{"--forward", "web=tcp:" + taken.Addr().String() + ",tcp:127.0.0.1:1"}, nil, nil, nil)
	assert.Equal(t, 1, p.Wait(t))
	assert.Contains(t, p.Output.String(), "address already in use")
	assert.Empty(t, p.Notify, "no READY=1 when a listener failed")
}

func TestDaemonStatusWatchdogMetricsAndEnv(t *testing.T) {
	target := echoServer(t)
	listen := testutil.FreeAddr(t)
	dead := testutil.FreeAddr(t)
	deadTarget := testutil.FreeAddr(t)
	metrics := testutil.FreeAddr(t)
	p := start(t, nil, []string{
		"HULY_FORWARDS=web=tcp:" + listen + ",tcp:" + target.Addr().String() + ";dead=tcp:" + dead + ",tcp:" + deadTarget,
		"HULY_DIAL_RETRIES=0",
		"HULY_METRICS_LISTEN=" + metrics,
		"HULY_LOG_FORMAT=json",
		"WATCHDOG_USEC=200000",
		"WATCHDOG_PID=",
	}, nil, nil)
	p.WaitReady(t)
	testutil.WaitFor(t, p.Notify, "WATCHDOG=1", deadline)

	dialEcho(t, listen, "hello")
	c, err := net.DialTimeout("tcp", dead, deadline)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, c) // closed by the bridge after the failed dial
	_ = c.Close()

	line, _ := testutil.WaitFor(t, p.Notify, "STATUS=2 forwards, 1 active connections; unreachable: dead (tcp:"+deadTarget+") since ", deadline)
	assert.Contains(t, line, "since 20")

	resp, err := http.Get("http://" + metrics + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.NoError(t, err)
	assert.Contains(t, string(body), `huly_bridge_connections_total{forward="web"} 1`)
	assert.Contains(t, string(body), `huly_bridge_dial_failures_total{forward="dead"} 1`)
	assert.Contains(t, string(body), `huly_bridge_target_up{forward="dead"} 0`)
	assert.Contains(t, string(body), "process_resident_memory_bytes")

	p.Signal(t, syscall.SIGTERM)
	// Signals of one kind do not queue: wait until the first was handled.
	testutil.WaitFor(t, p.Notify, "STOPPING=1", deadline)
	p.Signal(t, syscall.SIGTERM) // a second signal does not wait for the drain
	assert.Equal(t, 0, p.Wait(t))
	assert.Contains(t, p.Output.String(), "second signal: closing all connections now")

	// HULY_LOG_FORMAT=json: every line of stderr is a JSON object.
	sc := bufio.NewScanner(strings.NewReader(p.Output.String()))
	lines := 0
	for sc.Scan() {
		var obj map[string]any
		assert.NoError(t, json.Unmarshal(sc.Bytes(), &obj), "line %q", sc.Text())
		lines++
	}
	assert.Greater(t, lines, 2)
}

func TestDaemonVersionAndHelp(t *testing.T) {
	p := start(t, []string{"--version"}, nil, nil, nil)
	assert.Equal(t, 0, p.Wait(t))
	assert.Contains(t, p.Output.String(), "huly-bridge dev")
	p = start(t, []string{"--help"}, nil, nil, nil)
	assert.Equal(t, 0, p.Wait(t))
	assert.Contains(t, p.Output.String(), "--forward NAME=,TARGET")
}

func TestDaemonPrintDefaultsAndCheckConfig(t *testing.T) {
	p := start(t, []string{"--print-defaults"}, nil, nil, nil)
	assert.Equal(t, 0, p.Wait(t))
	var defaults map[string]any
	require.NoError(t, json.Unmarshal([]byte(p.Output.String()), &defaults), "--print-defaults prints JSON")
	assert.Equal(t, "10s", defaults["drain_timeout"])
	assert.Equal(t, float64(4096), defaults["max_connections"])

	bad := filepath.Join(t.TempDir(), "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"forwards":{"web":{"listen":"tcp:127.0.0.1:0","target":"tcp:127.0.0.1:1","dial_retries":"x"}}}`), 0o600))
	p = start(t, []string{"--check-config", bad}, nil, nil, nil)
	assert.Equal(t, 2, p.Wait(t))
	assert.Contains(t, p.Output.String(), "forwards.web.dial_retries")

	good := filepath.Join(t.TempDir(), "good.json")
	require.NoError(t, os.WriteFile(good, []byte(`{"forwards":{"web":{"listen":"tcp:127.0.0.1:0","target":"tcp:127.0.0.1:1"}}}`), 0o600))
	p = start(t, []string{"--check-config", good}, nil, nil, nil)
	assert.Equal(t, 0, p.Wait(t), "output: %s", p.Output.String())
	assert.Contains(t, p.Output.String(), "configuration is valid")
}
