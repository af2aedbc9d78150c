package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/internal/testutil"
)

// binary is the huly-bridge built once by TestMain; empty under -short.
var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	if !testing.Short() {
		dir, err := os.MkdirTemp("", "huly-bridge-test")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		binary = filepath.Join(dir, "huly-bridge")
		goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(goTool); err != nil {
			goTool = "go"
		}
		cmd := exec.Command(goTool, "build", "-o", binary, ".")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building huly-bridge:", err)
			_ = os.RemoveAll(dir)
			os.Exit(1)
		}
		code := m.Run()
		_ = os.RemoveAll(dir)
		os.Exit(code)
	}
	os.Exit(m.Run())
}

const deadline = 15 * time.Second

type proc struct {
	cmd    *exec.Cmd
	notify <-chan string
	stderr *testutil.SyncBuffer
	done   chan struct{}
	err    error
}

func (p *proc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(sig))
}

// wait returns the exit code, failing the test after the deadline.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
		return testutil.ExitCode(p.err)
	case <-time.After(deadline):
		require.FailNow(t, "huly-bridge did not exit", "stderr:\n%s", p.stderr.String())
		return -1
	}
}

// waitReady waits for READY=1 and returns the notifications before it.
func (p *proc) waitReady(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		require.FailNow(t, "huly-bridge exited before READY=1", "stderr:\n%s", p.stderr.String())
	default:
	}
	testutil.WaitFor(t, p.notify, "READY=1", deadline)
}

func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the huly-bridge binary; skipped under -short")
	}
}

// start runs huly-bridge with a fake NOTIFY_SOCKET. files, when given, are
// passed as socket-activated fds named names.
func start(t *testing.T, args []string, env []string, files []*os.File, names []string) *proc {
	t.Helper()
	skipShort(t)
	sock, ch := testutil.NotifySocket(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	env = append([]string{"NOTIFY_SOCKET=" + sock, "JOURNAL_STREAM=", "LISTEN_FDS=", "LISTEN_PID=", "WATCHDOG_USEC="}, env...)
	var cmd *exec.Cmd
	if files != nil {
		cmd = testutil.ActivatedCommand(ctx, files, names, env, binary, args...)
	} else {
		cmd = exec.CommandContext(ctx, binary, args...)
		cmd.Env = append(os.Environ(), env...)
		cmd.WaitDelay = 5 * time.Second
	}
	p := &proc{cmd: cmd, notify: ch, stderr: &testutil.SyncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	cmd.Stdout = p.stderr
	require.NoError(t, cmd.Start())
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("huly-bridge stderr:\n%s", p.stderr.String())
		}
	})
	return p
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
	p.waitReady(t)
	status, _ := testutil.WaitFor(t, p.notify, "STATUS=", deadline)
	assert.Equal(t, "STATUS=1 forwards, 0 active connections", status)

	c := dialEcho(t, listen, "before")
	p.signal(t, syscall.SIGTERM)
	testutil.WaitFor(t, p.notify, "STOPPING=1", deadline)
	require.Eventually(t, func() bool { return refused(listen) }, deadline, 10*time.Millisecond, "still accepting after SIGTERM")

	// The active connection is served until it ends.
	echoed(t, c, "during drain")
	select {
	case <-p.done:
		t.Fatalf("exited with a connection still active\n%s", p.stderr.String())
	default:
	}
	require.NoError(t, c.(*net.TCPConn).CloseWrite())
	rest, err := io.ReadAll(c)
	require.NoError(t, err)
	assert.Empty(t, rest)
	assert.Equal(t, 0, p.wait(t))
	assert.Contains(t, p.stderr.String(), "stopping: no new connections")
}

func TestDaemonDrainDeadline(t *testing.T) {
	target := echoServer(t)
	listen := testutil.FreeAddr(t)
	p := start(t, []string{"--forward", "web=tcp:" + listen + ",tcp:" + target.Addr().String(), "--drain-timeout", "100ms"}, nil, nil, nil)
	p.waitReady(t)
	c := dialEcho(t, listen, "held open")
	p.signal(t, syscall.SIGTERM)
	assert.Equal(t, 0, p.wait(t))
	n, err := c.Read(make([]byte, 1))
	assert.Zero(t, n)
	assert.Error(t, err, "the bridge closed the connection at the deadline")
	assert.Contains(t, p.stderr.String(), "drain deadline passed")
}

func TestDaemonSocketActivation(t *testing.T) {
	target := echoServer(t)
	ln := testutil.ListenTCP(t)
	other := testutil.ListenTCP(t)
	f := testutil.ListenerFile(t, ln)
	fo := testutil.ListenerFile(t, other)
	p := start(t, []string{"--forward", "web=,tcp:" + target.Addr().String(), "--forward", "db=tcp:127.0.0.1:0,tcp:" + target.Addr().String()},
		nil, []*os.File{f, fo}, []string{"web", "db"})
	p.waitReady(t)
	// The test's own copies must not accept: close them so that only the
	// daemon's descriptors remain.
	require.NoError(t, ln.Close())
	require.NoError(t, other.Close())
	_ = dialEcho(t, ln.Addr().String(), "activated web").Close()
	_ = dialEcho(t, other.Addr().String(), "activated db").Close()
	assert.Contains(t, p.stderr.String(), "configured listen address is ignored")
	p.signal(t, syscall.SIGTERM)
	assert.Equal(t, 0, p.wait(t))
}

func TestDaemonSocketActivationUnknownName(t *testing.T) {
	ln := testutil.ListenTCP(t)
	p := start(t, []string{"--forward", "web=tcp:127.0.0.1:0,tcp:127.0.0.1:1"}, nil, []*os.File{testutil.ListenerFile(t, ln)}, []string{"nosuch"})
	assert.Equal(t, 2, p.wait(t))
	assert.Contains(t, p.stderr.String(), "nosuch match no forward")
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
		assert.Equal(t, 2, p.wait(t), "args %q", tc.args)
		assert.Contains(t, p.stderr.String(), tc.want)
	}
}

func TestDaemonListenFailureExits1(t *testing.T) {
	taken := testutil.ListenTCP(t)
	p := start(t, []string{"--forward", "web=tcp:" + taken.Addr().String() + ",tcp:127.0.0.1:1"}, nil, nil, nil)
	assert.Equal(t, 1, p.wait(t))
	assert.Contains(t, p.stderr.String(), "address already in use")
	assert.Empty(t, p.notify, "no READY=1 when a listener failed")
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
	p.waitReady(t)
	testutil.WaitFor(t, p.notify, "WATCHDOG=1", deadline)

	dialEcho(t, listen, "hello")
	c, err := net.DialTimeout("tcp", dead, deadline)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, c) // closed by the bridge after the failed dial
	_ = c.Close()

	line, _ := testutil.WaitFor(t, p.notify, "STATUS=2 forwards, 1 active connections; unreachable: dead (tcp:"+deadTarget+") since ", deadline)
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

	p.signal(t, syscall.SIGTERM)
	// Signals of one kind do not queue: wait until the first was handled.
	testutil.WaitFor(t, p.notify, "STOPPING=1", deadline)
	p.signal(t, syscall.SIGTERM) // a second signal does not wait for the drain
	assert.Equal(t, 0, p.wait(t))
	assert.Contains(t, p.stderr.String(), "second signal: closing all connections now")

	// HULY_LOG_FORMAT=json: every line of stderr is a JSON object.
	sc := bufio.NewScanner(strings.NewReader(p.stderr.String()))
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
	assert.Equal(t, 0, p.wait(t))
	assert.Contains(t, p.stderr.String(), "huly-bridge dev")
	p = start(t, []string{"--help"}, nil, nil, nil)
	assert.Equal(t, 0, p.wait(t))
	assert.Contains(t, p.stderr.String(), "--forward NAME=,TARGET")
}
