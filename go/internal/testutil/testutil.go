// Package testutil holds helpers shared by the daemons' tests: a fake
// systemd notify socket, free loopback ports, and running a child the way
// systemd socket-activates it.
package testutil

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// ShortTempDir returns a fresh directory removed at the end of the test. Its
// path is short, unlike t.TempDir's (which embeds the test name), because a
// unix socket path must fit in 108 bytes.
func ShortTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "hn")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// NotifySocket creates a unixgram socket standing in for systemd's
// NOTIFY_SOCKET and returns its path and a channel of the datagrams it
// receives, in order. The socket is closed at the end of the test. The
// caller decides where the path goes (t.Setenv or a child's environment).
func NotifySocket(t testing.TB) (string, <-chan string) {
	t.Helper()
	path := filepath.Join(ShortTempDir(t), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	require.NoError(t, err)
	ch := make(chan string, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		buf := make([]byte, 64*1024)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			select {
			case ch <- string(buf[:n]):
			default:
				// A test that stopped reading must not wedge the sender.
			}
		}
	}()
	t.Cleanup(func() {
		_ = conn.Close()
		<-done
	})
	return path, ch
}

// Next returns the next datagram from ch, failing the test after timeout.
func Next(t testing.TB, ch <-chan string, timeout time.Duration) string {
	t.Helper()
	select {
	case m, ok := <-ch:
		require.True(t, ok, "notify socket closed")
		return m
	case <-time.After(timeout):
		require.FailNow(t, "no notification within "+timeout.String())
		return ""
	}
}

// WaitFor reads datagrams from ch until one has a line starting with prefix
// and returns that line; it fails the test after timeout. Datagrams before
// it are returned too, so callers can check what came first.
func WaitFor(t testing.TB, ch <-chan string, prefix string, timeout time.Duration) (line string, before []string) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case m, ok := <-ch:
			require.True(t, ok, "notify socket closed while waiting for %q", prefix)
			for _, l := range strings.Split(m, "\n") {
				if strings.HasPrefix(l, prefix) {
					return l, before
				}
			}
			before = append(before, m)
		case <-deadline.C:
			require.FailNow(t, "no notification "+strconv.Quote(prefix)+" within "+timeout.String(), "got before: %q", before)
			return "", before
		}
	}
}

// ListenTCP listens on a free port of 127.0.0.1, closed at the end of the test.
func ListenTCP(t testing.TB) *net.TCPListener {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}

// FreeAddr returns "127.0.0.1:PORT" for a port that was free a moment ago.
// Prefer passing a listener where the code under test accepts one: another
// process may take the port between this call and its use.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// FreePort is FreeAddr's port number.
func FreePort(t testing.TB) int {
	t.Helper()
	_, p, err := net.SplitHostPort(FreeAddr(t))
	require.NoError(t, err)
	port, err := strconv.Atoi(p)
	require.NoError(t, err)
	return port
}

// ListenerFile returns a duplicate of ln's descriptor, to hand to a child
// process. The file is closed at the end of the test.
func ListenerFile(t testing.TB, ln net.Listener) *os.File {
	t.Helper()
	fl, ok := ln.(interface{ File() (*os.File, error) })
	require.True(t, ok, "listener %T has no File method", ln)
	f, err := fl.File()
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// ActivatedCommand builds a command that receives files as fds 3, 4, … the
// way systemd passes sockets: LISTEN_FDS=len(files), LISTEN_FDNAMES from
// names (may be nil), and LISTEN_PID equal to the pid of the process that
// runs path. The pid is not known before the fork, so a shell sets it and
// execs path in its own place, keeping the pid and the descriptors.
// env is added to the test's environment.
func ActivatedCommand(ctx context.Context, files []*os.File, names []string, env []string, path string, args ...string) *exec.Cmd {
	shArgs := append([]string{"-c", `LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"`, path}, args...)
	cmd := exec.CommandContext(ctx, "/bin/sh", shArgs...)
	cmd.ExtraFiles = files
	cmd.Env = append(os.Environ(), env...)
	cmd.Env = append(cmd.Env, "LISTEN_FDS="+strconv.Itoa(len(files)))
	if names != nil {
		cmd.Env = append(cmd.Env, "LISTEN_FDNAMES="+strings.Join(names, ":"))
	}
	// Without a WaitDelay a child that ignores the kill could hold the
	// test's pipes open forever.
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// ExitCode returns the exit status of a finished command's error (0 for nil),
// or -1 when err is not an exit status.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}
