package systemd

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/internal/testutil"
)

// childEnv makes the test binary act as a socket-activated daemon instead
// of running tests (see TestMain).
const childEnv = "HULY_SYSTEMD_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(activatedChild())
	}
	os.Exit(m.Run())
}

// activatedChild reports on stdout what Listeners() found, serves one
// connection on each listener (echoing its name) and exits.
func activatedChild() int {
	ls, err := Listeners()
	if err != nil {
		fmt.Printf("error %v\n", err)
		return 1
	}
	for _, name := range ListenerNames(ls) {
		for _, ln := range ls[name] {
			fmt.Printf("listener %s %s\n", name, ln.Addr())
		}
	}
	fmt.Printf("env LISTEN_FDS=%q LISTEN_PID=%q\n", os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_PID"))
	fmt.Println("ready")
	for _, name := range ListenerNames(ls) {
		for _, ln := range ls[name] {
			c, err := ln.Accept()
			if err != nil {
				fmt.Printf("error accept %v\n", err)
				return 1
			}
			_, _ = io.WriteString(c, name+"\n")
			_ = c.Close()
		}
	}
	return 0
}

func quietLogger() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func TestNotifierSendsInOrder(t *testing.T) {
	path, ch := testutil.NotifySocket(t)
	t.Setenv("NOTIFY_SOCKET", path)
	n := NewNotifier(quietLogger())
	require.True(t, n.Enabled())

	n.Ready()
	n.Status("%d forwards, %d active", 2, 5)
	n.Status("multi\nline")
	n.Stopping()
	n.Reloading()

	assert.Equal(t, "READY=1", testutil.Next(t, ch, 5*time.Second))
	assert.Equal(t, "STATUS=2 forwards, 5 active", testutil.Next(t, ch, 5*time.Second))
	assert.Equal(t, "STATUS=multi line", testutil.Next(t, ch, 5*time.Second), "a newline must not split the status")
	assert.Equal(t, "STOPPING=1", testutil.Next(t, ch, 5*time.Second))
	reload := testutil.Next(t, ch, 5*time.Second)
	assert.True(t, strings.HasPrefix(reload, "RELOADING=1\nMONOTONIC_USEC="), "got %q", reload)
}

func TestNotifierWithoutSocketIsNoop(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n := NewNotifier(quietLogger())
	assert.False(t, n.Enabled())
	sent, err := n.Notify("READY=1")
	assert.NoError(t, err)
	assert.False(t, sent)
	n.Ready() // must not panic or block
}

func TestNotifierUnreachableSocketIsLoggedNotFatal(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "/nonexistent/notify.sock")
	logger := quietLogger()
	var buf strings.Builder
	logger.SetOutput(&buf)
	n := NewNotifier(logger)
	n.Ready()
	n.Status("again")
	assert.Equal(t, 1, strings.Count(buf.String(), "systemd notification failed"), "reported once: %s", buf.String())
	_, err := n.Notify("READY=1")
	assert.ErrorContains(t, err, "READY=1")
}

func TestWatchdogSendsAtHalfInterval(t *testing.T) {
	path, ch := testutil.NotifySocket(t)
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "100000") // 100ms: ping every 50ms
	t.Setenv("WATCHDOG_PID", fmt.Sprint(os.Getpid()))

	iv, err := WatchdogInterval()
	require.NoError(t, err)
	assert.Equal(t, 50*time.Millisecond, iv)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		NewNotifier(quietLogger()).Watchdog(ctx)
	}()
	for i := 0; i < 3; i++ {
		assert.Equal(t, "WATCHDOG=1", testutil.Next(t, ch, 5*time.Second))
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Watchdog did not return after cancel")
	}
}

func TestWatchdogCheckWithholdsPingWhenUnhealthy(t *testing.T) {
	path, ch := testutil.NotifySocket(t)
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "40000")
	t.Setenv("WATCHDOG_PID", "")

	var checks atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		NewNotifier(quietLogger()).WatchdogCheck(ctx, func(context.Context) error {
			if checks.Add(1) == 1 {
				return fmt.Errorf("wedged")
			}
			return nil
		})
	}()
	assert.Equal(t, "WATCHDOG=1", testutil.Next(t, ch, 5*time.Second))
	assert.GreaterOrEqual(t, checks.Load(), int32(2), "the failed first check must not have fed the watchdog")
	cancel()
	<-done
}

func TestWatchdogDisabled(t *testing.T) {
	path, ch := testutil.NotifySocket(t)
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "")
	done := make(chan struct{})
	go func() {
		defer close(done)
		NewNotifier(quietLogger()).Watchdog(context.Background())
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Watchdog without WATCHDOG_USEC should return at once")
	}
	assert.Empty(t, ch)

	// Another process's watchdog: not ours to feed.
	t.Setenv("WATCHDOG_USEC", "100000")
	t.Setenv("WATCHDOG_PID", "1")
	iv, err := WatchdogInterval()
	require.NoError(t, err)
	assert.Zero(t, iv)

	t.Setenv("WATCHDOG_USEC", "bogus")
	_, err = WatchdogInterval()
	assert.Error(t, err)
}

// runActivated starts the test binary as a socket-activated child and
// returns its stdout lines up to "ready".
func runActivated(t *testing.T, files []*os.File, names []string) (*bufio.Scanner, func() error) {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	cmd := testutil.ActivatedCommand(ctx, files, names, []string{childEnv + "=1"}, exe)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	return bufio.NewScanner(out), cmd.Wait
}

func readUntilReady(t *testing.T, sc *bufio.Scanner) []string {
	t.Helper()
	var lines []string
	for sc.Scan() {
		if sc.Text() == "ready" {
			return lines
		}
		lines = append(lines, sc.Text())
	}
	require.FailNow(t, "child exited before ready", "output: %q", lines)
	return nil
}

func TestListenersSocketActivation(t *testing.T) {
	web := testutil.ListenTCP(t)
	admin := testutil.ListenTCP(t)
	sc, wait := runActivated(t,
		[]*os.File{testutil.ListenerFile(t, web), testutil.ListenerFile(t, admin)},
		[]string{"web", "admin"})
	lines := readUntilReady(t, sc)

	assert.Contains(t, lines, "listener web "+web.Addr().String())
	assert.Contains(t, lines, "listener admin "+admin.Addr().String())
	assert.Contains(t, lines, `env LISTEN_FDS="" LISTEN_PID=""`, "variables must be unset for the daemon's children")

	// The child serves on the inherited sockets: accept order is by name.
	for _, want := range []struct {
		ln   net.Listener
		name string
	}{{admin, "admin"}, {web, "web"}} {
		c, err := net.DialTimeout("tcp", want.ln.Addr().String(), 5*time.Second)
		require.NoError(t, err)
		require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
		got, err := bufio.NewReader(c).ReadString('\n')
		require.NoError(t, err)
		assert.Equal(t, want.name+"\n", got)
		_ = c.Close()
	}
	assert.NoError(t, wait())
}

func TestListenersUnnamedFD(t *testing.T) {
	ln := testutil.ListenTCP(t)
	sc, wait := runActivated(t, []*os.File{testutil.ListenerFile(t, ln)}, nil)
	lines := readUntilReady(t, sc)
	assert.Contains(t, lines, "listener LISTEN_FD_3 "+ln.Addr().String())
	c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, c)
	_ = c.Close()
	assert.NoError(t, wait())
}

func TestListenersRejectsNonSocket(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "notasocket")
	require.NoError(t, err)
	defer f.Close()
	sc, wait := runActivated(t, []*os.File{f}, []string{"bogus"})
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	require.NotEmpty(t, lines)
	assert.Contains(t, lines[0], `error socket-activated fd "bogus"`)
	assert.Error(t, wait())
}

func TestListenersWithoutActivation(t *testing.T) {
	t.Setenv("LISTEN_FDS", "")
	t.Setenv("LISTEN_PID", "")
	ls, err := Listeners()
	require.NoError(t, err)
	assert.Empty(t, ls)

	// LISTEN_PID of another process: the fds are not for us.
	t.Setenv("LISTEN_FDS", "1")
	t.Setenv("LISTEN_PID", "1")
	ls, err = Listeners()
	require.NoError(t, err)
	assert.Empty(t, ls)
}

func TestOnlyListener(t *testing.T) {
	a := testutil.ListenTCP(t)
	b := testutil.ListenTCP(t)

	got, err := OnlyListener(nil)
	require.NoError(t, err)
	assert.Nil(t, got)

	got, err = OnlyListener(map[string][]net.Listener{"x": {a}})
	require.NoError(t, err)
	assert.Equal(t, a, got)

	_, err = OnlyListener(map[string][]net.Listener{"x": {a}, "y": {b}})
	assert.ErrorContains(t, err, "x, y")
}

func TestUnderJournal(t *testing.T) {
	t.Setenv("JOURNAL_STREAM", "")
	assert.False(t, UnderJournal())

	var st syscall.Stat_t
	require.NoError(t, syscall.Fstat(2, &st))
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino))
	assert.True(t, UnderJournal(), "stderr's own dev:inode")

	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino+1))
	assert.False(t, UnderJournal(), "inherited JOURNAL_STREAM of another stream")

	t.Setenv("JOURNAL_STREAM", "garbage")
	assert.False(t, UnderJournal())
}

func TestLoopWatchdogFeedsOnlyWhileTheLoopAnswers(t *testing.T) {
	path, ch := testutil.NotifySocket(t)
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "40000")
	t.Setenv("WATCHDOG_PID", "")

	wd := NewNotifier(quietLogger()).StartLoopWatchdog(context.Background())
	defer wd.Stop()
	// A loop that is stuck: nothing reads Ping, so no WATCHDOG=1 may come
	// while the watchdog has asked at least twice.
	var asked int
	for asked < 2 {
		select {
		case m := <-ch:
			t.Fatalf("watchdog fed while the loop was stuck: %q", m)
		case ack := <-wd.Ping():
			// Received but never acknowledged: the loop is wedged.
			_ = ack
			asked++
		case <-time.After(5 * time.Second):
			t.Fatal("the watchdog never asked the loop")
		}
	}
	// The loop answers: pings flow.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case ack := <-wd.Ping():
				close(ack)
			case <-stop:
				return
			}
		}
	}()
	assert.Equal(t, "WATCHDOG=1", testutil.Next(t, ch, 5*time.Second))
}
