package testutil

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Binaries are daemon binaries built once for a test binary, by
// BuildMain from TestMain. Under -short nothing is built and tests that
// need them skip.
type Binaries struct{ dir string }

// BuildMain builds pkgs (name → package directory relative to the test's
// package) into a temporary directory, runs the tests and removes it. Use
// it as TestMain's body: os.Exit(testutil.BuildMain(m, &bins, pkgs)).
func BuildMain(m *testing.M, bins *Binaries, pkgs map[string]string) int {
	flag.Parse()
	if testing.Short() {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "huly-test-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	for name, pkg := range pkgs {
		if _, err := BuildBinary(pkg, dir, name); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	bins.dir = dir
	return m.Run()
}

// Need skips the test when the binaries were not built (-short).
func (b *Binaries) Need(t testing.TB) {
	t.Helper()
	if b.dir == "" {
		t.Skip("runs the daemon binaries; skipped under -short")
	}
}

// Dir is where the binaries are.
func (b *Binaries) Dir() string { return b.dir }

// Path is the path of the named binary.
func (b *Binaries) Path(name string) string { return filepath.Join(b.dir, name) }

// DaemonTimeout bounds every wait of a Proc.
const DaemonTimeout = 20 * time.Second

// Proc is a daemon run by a test the way systemd runs it: with a fake
// NOTIFY_SOCKET, optionally socket-activated listeners, and its output
// captured (and logged when the test fails).
type Proc struct {
	Cmd    *exec.Cmd
	Notify <-chan string
	Output *SyncBuffer // stdout and stderr
	done   chan struct{}
	err    error
}

// ProcOptions are the optional parts of StartDaemon.
type ProcOptions struct {
	Env   []string   // added to the test's environment
	Files []*os.File // socket-activated listeners (fds 3, 4, …)
	Names []string   // their LISTEN_FDNAMES
}

// StartDaemon starts path with args. The systemd variables a test runner
// may have inherited are cleared; the process is killed at the end of the
// test if still running.
func StartDaemon(t testing.TB, path string, args []string, o ProcOptions) *Proc {
	t.Helper()
	sock, ch := NotifySocket(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	env := append([]string{"NOTIFY_SOCKET=" + sock, "JOURNAL_STREAM=", "LISTEN_FDS=", "LISTEN_PID=", "LISTEN_FDNAMES=", "WATCHDOG_USEC=", "HULY_CONFIG="}, o.Env...)
	var cmd *exec.Cmd
	if o.Files != nil {
		cmd = ActivatedCommand(ctx, o.Files, o.Names, env, path, args...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
		cmd.Env = append(os.Environ(), env...)
		cmd.WaitDelay = 5 * time.Second
	}
	p := &Proc{Cmd: cmd, Notify: ch, Output: &SyncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.Output, p.Output
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
			t.Logf("%s output:\n%s", filepath.Base(path), p.Output.String())
		}
	})
	return p
}

// Signal sends sig to the daemon.
func (p *Proc) Signal(t testing.TB, sig os.Signal) {
	t.Helper()
	require.NoError(t, p.Cmd.Process.Signal(sig))
}

// Exited reports whether the daemon has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait returns the exit status, failing the test after DaemonTimeout.
func (p *Proc) Wait(t testing.TB) int {
	t.Helper()
	select {
	case <-p.done:
		return ExitCode(p.err)
	case <-time.After(DaemonTimeout):
		require.FailNow(t, "the daemon did not exit", "output:\n%s", p.Output.String())
		return -1
	}
}

// WaitReady waits for READY=1 and returns the notifications before it.
func (p *Proc) WaitReady(t testing.TB) []string {
	t.Helper()
	if p.Exited() {
		require.FailNow(t, "the daemon exited before READY=1", "output:\n%s", p.Output.String())
	}
	_, before := WaitFor(t, p.Notify, "READY=1", DaemonTimeout)
	return before
}

// WaitNotify waits for a notification line starting with prefix.
func (p *Proc) WaitNotify(t testing.TB, prefix string) string {
	t.Helper()
	line, _ := WaitFor(t, p.Notify, prefix, DaemonTimeout)
	return line
}
