package bridge

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	hutil "github.com/huly-net/huly-net/go/internal/testutil"
)

const mib = 1 << 20

// randomStream is n pseudo-random bytes from seed.
func randomStream(seed uint64, n int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}), n)
}

// sendAndHash writes n random bytes to w, half-closes it, and returns the
// sha256 of what was sent.
func sendAndHash(w net.Conn, seed uint64, n int64) ([]byte, error) {
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(w, h), randomStream(seed, n)); err != nil {
		return nil, err
	}
	if err := w.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

func readAndHash(r io.Reader) ([]byte, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return h.Sum(nil), n, err
}

func TestIntegrity64MiBEachWay(t *testing.T) {
	const size = 64 * mib
	type result struct {
		sum []byte
		n   int64
		err error
	}
	targetGot := make(chan result, 1)
	targetSent := make(chan result, 1)
	srv := startServer(t, "tcp", "127.0.0.1:0", func(c net.Conn) {
		sent := make(chan struct{})
		go func() {
			defer close(sent)
			sum, err := sendAndHash(c, 2, size)
			targetSent <- result{sum: sum, err: err}
		}()
		sum, n, err := readAndHash(c)
		targetGot <- result{sum, n, err}
		<-sent // the server closes c when this returns
	})
	r := startBridge(t, Options{Forwards: []Forward{{Name: "bulk", Target: srv.target()}}})

	c := dial(t, "tcp", r.addr(t, "bulk"))
	sentSum := make(chan result, 1)
	go func() {
		sum, err := sendAndHash(c, 1, size)
		sentSum <- result{sum: sum, err: err}
	}()
	gotSum, gotN, err := readAndHash(c)
	require.NoError(t, err)

	up := <-sentSum
	require.NoError(t, up.err)
	atTarget := <-targetGot
	require.NoError(t, atTarget.err)
	down := <-targetSent
	require.NoError(t, down.err)

	assert.Equal(t, int64(size), atTarget.n)
	assert.Equal(t, up.sum, atTarget.sum, "client to target bytes differ")
	assert.Equal(t, int64(size), gotN)
	assert.Equal(t, down.sum, gotSum, "target to client bytes differ")

	require.Eventually(t, func() bool { return r.stats("bulk").ActiveConnections == 0 }, waitFor, 5*time.Millisecond)
	s := r.stats("bulk")
	assert.Equal(t, uint64(size), s.BytesUp)
	assert.Equal(t, uint64(size), s.BytesDown)
	assert.Equal(t, uint64(1), s.TotalConnections)
	assert.Equal(t, TargetReachable, s.TargetState)
}

func TestHalfCloseClientFirst(t *testing.T) {
	// The target answers only after the request's EOF, like an HTTP/1.0
	// server or `nc -q`: the bridge must pass the EOF on and keep the
	// other direction open.
	srv := startServer(t, "tcp", "127.0.0.1:0", func(c net.Conn) {
		req, err := io.ReadAll(c)
		if err != nil {
			return
		}
		_, _ = io.WriteString(c, "reply to "+string(req))
	})
	r := startBridge(t, Options{Forwards: []Forward{{Name: "hc", Target: srv.target()}}})
	c := dial(t, "tcp", r.addr(t, "hc"))
	_, err := io.WriteString(c, "request")
	require.NoError(t, err)
	require.NoError(t, c.(*net.TCPConn).CloseWrite())
	got, err := io.ReadAll(c)
	require.NoError(t, err)
	assert.Equal(t, "reply to request", string(got))
}

func TestHalfCloseTargetFirst(t *testing.T) {
	// The target sends a banner and half-closes, then still reads.
	received := make(chan string, 1)
	srv := startServer(t, "tcp", "127.0.0.1:0", func(c net.Conn) {
		_, _ = io.WriteString(c, "banner")
		_ = c.(*net.TCPConn).CloseWrite()
		b, _ := io.ReadAll(c)
		received <- string(b)
	})
	r := startBridge(t, Options{Forwards: []Forward{{Name: "hc", Target: srv.target()}}})
	c := dial(t, "tcp", r.addr(t, "hc"))
	got, err := io.ReadAll(c)
	require.NoError(t, err)
	assert.Equal(t, "banner", string(got))
	// Our write direction is still open after reading the EOF.
	_, err = io.WriteString(c, "late data")
	require.NoError(t, err)
	require.NoError(t, c.(*net.TCPConn).CloseWrite())
	select {
	case s := <-received:
		assert.Equal(t, "late data", s)
	case <-time.After(waitFor):
		t.Fatal("target did not receive the data sent after its half-close")
	}
}

func TestTargetDownThenUp(t *testing.T) {
	addr := hutil.FreeAddr(t)
	r := startBridge(t, Options{Forwards: []Forward{{
		Name: "late", Target: "tcp:" + addr,
		DialRetries: 1000, DialBackoff: 5 * time.Millisecond, DialTimeout: time.Second,
	}}})
	c := dial(t, "tcp", r.addr(t, "late"))
	// The write is buffered by the bridge's socket while it retries.
	_, err := io.WriteString(c, "hello")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return r.stats("late").DialErrors > 0 }, waitFor, 5*time.Millisecond)
	s := r.stats("late")
	assert.Equal(t, TargetUnreachable, s.TargetState)
	assert.NotEmpty(t, s.LastDialError)
	assert.False(t, s.TargetSince.IsZero())

	startServer(t, "tcp", addr, echo)
	buf := make([]byte, 5)
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	assert.Equal(t, "hello", string(buf))
	s = r.stats("late")
	assert.Equal(t, TargetReachable, s.TargetState)
	assert.Zero(t, s.DialFailures)
}

func TestTargetDownGivesUpAfterRetries(t *testing.T) {
	addr := hutil.FreeAddr(t)
	r := startBridge(t, Options{Forwards: []Forward{{
		Name: "down", Target: "tcp:" + addr, DialRetries: 2, DialBackoff: time.Millisecond,
	}}})
	c := dial(t, "tcp", r.addr(t, "down"))
	expectClosed(t, c)
	require.Eventually(t, func() bool {
		s := r.stats("down")
		return s.DialFailures == 1 && s.ActiveConnections == 0
	}, waitFor, 5*time.Millisecond)
	s := r.stats("down")
	assert.Equal(t, uint64(3), s.DialErrors, "one attempt and two retries")
	assert.Equal(t, TargetUnreachable, s.TargetState)
}

func TestTargetRestartMidway(t *testing.T) {
	addr := hutil.FreeAddr(t)
	srv := startServer(t, "tcp", addr, echo)
	r := startBridge(t, Options{Forwards: []Forward{{
		Name: "rs", Target: "tcp:" + addr, DialRetries: 1000, DialBackoff: 5 * time.Millisecond,
	}}})
	before := dial(t, "tcp", r.addr(t, "rs"))
	roundTrip(t, before, "one")

	srv.stop()
	// The connection the target dropped is closed toward the client too.
	expectClosed(t, before)

	// A client arriving while the target is down waits for it.
	during := dial(t, "tcp", r.addr(t, "rs"))
	_, err := io.WriteString(during, "two")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return r.stats("rs").TargetState == TargetUnreachable }, waitFor, 5*time.Millisecond)

	startServer(t, "tcp", addr, echo)
	buf := make([]byte, 3)
	_, err = io.ReadFull(during, buf)
	require.NoError(t, err)
	assert.Equal(t, "two", string(buf))

	after := dial(t, "tcp", r.addr(t, "rs"))
	roundTrip(t, after, "three")
	assert.Equal(t, TargetReachable, r.stats("rs").TargetState)
	assert.Equal(t, uint64(3), r.stats("rs").TotalConnections)
}

func TestMaxConnections(t *testing.T) {
	srv := startServer(t, "tcp", "127.0.0.1:0", echo)
	r := startBridge(t, Options{Forwards: []Forward{{Name: "lim", Target: srv.target(), MaxConnections: 2}}})
	a := dial(t, "tcp", r.addr(t, "lim"))
	roundTrip(t, a, "a")
	b := dial(t, "tcp", r.addr(t, "lim"))
	roundTrip(t, b, "b")

	// The reset can come before connect(2) returns: both are a rejection.
	over, err := net.DialTimeout("tcp", r.addr(t, "lim"), waitFor)
	if err == nil {
		t.Cleanup(func() { _ = over.Close() })
		expectClosed(t, over)
	} else {
		require.ErrorIs(t, err, syscall.ECONNRESET)
	}
	require.Eventually(t, func() bool { return r.stats("lim").Rejected == 1 }, waitFor, 5*time.Millisecond)
	assert.Equal(t, int64(2), r.stats("lim").ActiveConnections)

	require.NoError(t, a.Close())
	require.Eventually(t, func() bool { return r.stats("lim").ActiveConnections == 1 }, waitFor, 5*time.Millisecond)
	c := dial(t, "tcp", r.addr(t, "lim"))
	roundTrip(t, c, "c")
	roundTrip(t, b, "b still works")
	assert.Equal(t, uint64(3), r.stats("lim").TotalConnections)
}

func TestIdleTimeout(t *testing.T) {
	srv := startServer(t, "tcp", "127.0.0.1:0", echo)
	const idle = 400 * time.Millisecond
	r := startBridge(t, Options{Forwards: []Forward{{Name: "idle", Target: srv.target(), IdleTimeout: idle}}})

	busy := dial(t, "tcp", r.addr(t, "idle"))
	quiet := dial(t, "tcp", r.addr(t, "idle"))
	roundTrip(t, quiet, "x")

	// Traffic at a quarter of the timeout keeps busy open for several
	// timeouts, while quiet, which stopped talking, is closed.
	tick := time.NewTicker(idle / 4)
	defer tick.Stop()
	quietClosed := make(chan struct{})
	go func() {
		defer close(quietClosed)
		_, _ = quiet.Read(make([]byte, 1))
	}()
	rounds := 0
	for done := false; !done; {
		select {
		case <-quietClosed:
			done = true
		case <-tick.C:
			roundTrip(t, busy, "ping")
			rounds++
		case <-time.After(waitFor):
			t.Fatal("quiet connection not closed by the idle timeout")
		}
	}
	for i := 0; i < 8; i++ {
		<-tick.C
		roundTrip(t, busy, "still here")
	}
	assert.Equal(t, uint64(1), r.stats("idle").IdleClosed)
	expectClosed(t, busy) // nothing sent; now let it go idle
	assert.Equal(t, uint64(2), r.stats("idle").IdleClosed)
	assert.Greater(t, rounds, 0)
}

func TestIdleTimeoutUnixPair(t *testing.T) {
	dir := hutil.ShortTempDir(t)
	srv := startServer(t, "unix", filepath.Join(dir, "target.sock"), echo)
	r := startBridge(t, Options{Forwards: []Forward{{
		Name: "ux", Listen: "unix:" + filepath.Join(dir, "listen.sock"), Target: srv.target(),
		IdleTimeout: 200 * time.Millisecond,
	}}})
	c := dial(t, "unix", filepath.Join(dir, "listen.sock"))
	roundTrip(t, c, "over unix")
	expectClosed(t, c)
	assert.Equal(t, uint64(1), r.stats("ux").IdleClosed)
	// Without splice the bytes are counted when the copy ends, just after
	// the sockets were closed.
	require.Eventually(t, func() bool { return r.stats("ux").ActiveConnections == 0 }, waitFor, 5*time.Millisecond)
	assert.Equal(t, uint64(len("over unix")), r.stats("ux").BytesUp)
}

func TestUnixTargetFromTCP(t *testing.T) {
	dir := hutil.ShortTempDir(t)
	srv := startServer(t, "unix", filepath.Join(dir, "t.sock"), echo)
	r := startBridge(t, Options{Forwards: []Forward{{Name: "tu", Target: srv.target()}}})
	c := dial(t, "tcp", r.addr(t, "tu"))
	payload := strings.Repeat("0123456789", 100_000)
	go func() { _, _ = io.WriteString(c, payload); _ = c.(*net.TCPConn).CloseWrite() }()
	got, err := io.ReadAll(c)
	require.NoError(t, err)
	assert.Equal(t, payload, string(got))
}

func TestStaleUnixSocketIsReplaced(t *testing.T) {
	dir := hutil.ShortTempDir(t)
	path := filepath.Join(dir, "l.sock")
	// A socket file nobody listens on, as a crashed instance leaves it.
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	require.NoError(t, ln.Close())

	srv := startServer(t, "tcp", "127.0.0.1:0", echo)
	startBridge(t, Options{Forwards: []Forward{{Name: "st", Listen: "unix:" + path, Target: srv.target()}}})
	roundTrip(t, dial(t, "unix", path), "fresh")

	// A live socket is not stolen.
	_, err = New(Options{Forwards: []Forward{{Name: "st2", Listen: "unix:" + path, Target: srv.target()}}})
	require.NoError(t, err)
	b2, _ := New(Options{Forwards: []Forward{{Name: "st2", Listen: "unix:" + path, Target: srv.target()}}})
	assert.ErrorContains(t, b2.Listen(context.Background()), "address already in use")
}

func TestDrainLetsActiveConnectionsFinish(t *testing.T) {
	srv := startServer(t, "tcp", "127.0.0.1:0", echo)
	r := startBridge(t, Options{Forwards: []Forward{{Name: "dr", Target: srv.target()}}, DrainTimeout: time.Minute})
	addr := r.addr(t, "dr")
	c := dial(t, "tcp", addr)
	roundTrip(t, c, "before")

	r.cancel()
	// New connections are refused once the listener is closed...
	require.Eventually(t, func() bool {
		nc, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = nc.Close()
		}
		return err != nil
	}, waitFor, 5*time.Millisecond)
	// ...while the active one still works and Run waits for it.
	roundTrip(t, c, "during drain")
	select {
	case <-r.done:
		t.Fatal("Run returned while a connection was active")
	default:
	}
	require.NoError(t, c.(*net.TCPConn).CloseWrite())
	_, err := io.ReadAll(c)
	require.NoError(t, err)
	select {
	case <-r.done:
		assert.NoError(t, r.err)
	case <-time.After(waitFor):
		t.Fatal("Run did not return after the last connection closed")
	}
}

func TestDrainDeadlineClosesConnections(t *testing.T) {
	srv := startServer(t, "tcp", "127.0.0.1:0", echo)
	// A dial that can never succeed keeps a second connection in the
	// retry loop, which the deadline must abort too.
	r := startBridge(t, Options{Forwards: []Forward{
		{Name: "dd", Target: srv.target()},
		{Name: "dead", Target: "tcp:" + hutil.FreeAddr(t), DialRetries: 1 << 20, DialBackoff: time.Millisecond},
	}, DrainTimeout: 50 * time.Millisecond})
	c := dial(t, "tcp", r.addr(t, "dd"))
	roundTrip(t, c, "x")
	pending := dial(t, "tcp", r.addr(t, "dead"))
	require.Eventually(t, func() bool { return r.stats("dead").DialErrors > 0 }, waitFor, 5*time.Millisecond)

	r.stop(t)
	expectClosed(t, c)
	expectClosed(t, pending)
	assert.Zero(t, r.stats("dd").ActiveConnections)
	assert.Zero(t, r.stats("dead").ActiveConnections)
}

func TestActivatedListener(t *testing.T) {
	srv := startServer(t, "tcp", "127.0.0.1:0", echo)
	ln := hutil.ListenTCP(t)
	r := startBridge(t, Options{
		Forwards:  []Forward{{Name: "sa", Target: srv.target()}},
		Listeners: map[string][]net.Listener{"sa": {ln}},
	})
	assert.Equal(t, ln.Addr().String(), r.addr(t, "sa"))
	roundTrip(t, dial(t, "tcp", ln.Addr().String()), "activated")
}

func TestManyConcurrentConnections(t *testing.T) {
	srv := startServer(t, "tcp", "127.0.0.1:0", echo)
	r := startBridge(t, Options{Forwards: []Forward{{Name: "many", Target: srv.target()}}})
	addr := r.addr(t, "many")
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", addr, waitFor)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(waitFor))
			msg := strings.Repeat("m", 100)
			if _, err := io.WriteString(c, msg); err != nil {
				errs <- err
				return
			}
			buf := make([]byte, 100)
			if _, err := io.ReadFull(c, buf); err != nil {
				errs <- err
				return
			}
			if string(buf) != msg {
				errs <- errors.New("echo mismatch")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	require.Eventually(t, func() bool { return r.stats("many").ActiveConnections == 0 }, waitFor, 5*time.Millisecond)
	s := r.stats("many")
	assert.Equal(t, uint64(64), s.TotalConnections)
	assert.Equal(t, uint64(6400), s.BytesUp)
	assert.Equal(t, uint64(6400), s.BytesDown)
}

func TestNewRejectsBadConfig(t *testing.T) {
	_, err := New(Options{})
	assert.ErrorContains(t, err, "no forwards")

	_, err = New(Options{Forwards: []Forward{
		{Name: "ok", Listen: "tcp:127.0.0.1:0", Target: "tcp:127.0.0.1:1"},
		{Name: "ok", Listen: "tcp:127.0.0.1:0", Target: "tcp:127.0.0.1:1"},
		{Name: "bad listen", Listen: "udp:1.2.3.4:5", Target: "tcp:127.0.0.1:1"},
		{Name: "nolisten", Target: "tcp:127.0.0.1:1"},
		{Name: "port", Listen: "tcp:127.0.0.1:99999", Target: "tcp:127.0.0.1:0"},
		{Name: "neg", Listen: "tcp:127.0.0.1:0", Target: "unix:/x", DialRetries: -1, MaxConnections: -3},
	}})
	require.Error(t, err)
	msg := err.Error()
	for _, want := range []string{
		`forward "ok": defined twice`,
		`forward name "bad listen"`,
		`unknown network "udp"`,
		`forward "nolisten": listen is required`,
		`port "99999"`,
		`port 0 cannot be dialled`,
		`dial_retries -1`,
		`max_connections -3`,
	} {
		assert.Contains(t, msg, want)
	}

	_, err = New(Options{
		Forwards:  []Forward{{Name: "a", Listen: "tcp:127.0.0.1:0", Target: "tcp:127.0.0.1:1"}},
		Listeners: map[string][]net.Listener{"b": {hutil.ListenTCP(t)}},
	})
	assert.ErrorContains(t, err, `listener "b" matches no forward`)
}

func TestParseAddress(t *testing.T) {
	for in, want := range map[string]Address{
		"tcp:127.0.0.1:80":  {"tcp", "127.0.0.1:80"},
		"tcp:[::1]:443":     {"tcp", "[::1]:443"},
		"tcp::8080":         {"tcp", ":8080"},
		"tcp:localhost:1":   {"tcp", "localhost:1"},
		"unix:/run/x.sock":  {"unix", "/run/x.sock"},
		"unix:@abstract":    {"unix", "@abstract"},
		"unix:rel/path.soc": {"unix", "rel/path.soc"},
	} {
		got, err := ParseAddress(in)
		if assert.NoError(t, err, in) {
			assert.Equal(t, want, got, in)
			assert.Equal(t, in, got.String())
		}
	}
	for _, bad := range []string{"", "127.0.0.1:80", "tcp:127.0.0.1", "tcp:host:http", "udp:1.2.3.4:5", "unix:", "tcp:1.2.3.4:-1"} {
		_, err := ParseAddress(bad)
		assert.Error(t, err, bad)
	}
}

func TestRunTwiceAndListenFailure(t *testing.T) {
	taken := hutil.ListenTCP(t)
	b, err := New(Options{Forwards: []Forward{{Name: "x", Listen: "tcp:" + taken.Addr().String(), Target: "tcp:127.0.0.1:1"}}, Log: testLogger(t)})
	require.NoError(t, err)
	err = b.Run(context.Background())
	assert.ErrorContains(t, err, `forward "x": listen on tcp:`+taken.Addr().String())
	assert.ErrorContains(t, b.Run(context.Background()), "Run called twice")
}

func TestCollector(t *testing.T) {
	srv := startServer(t, "tcp", "127.0.0.1:0", echo)
	r := startBridge(t, Options{Forwards: []Forward{{Name: "m", Target: srv.target()}}})
	c := dial(t, "tcp", r.addr(t, "m"))
	roundTrip(t, c, "12345")
	require.NoError(t, c.Close())
	require.Eventually(t, func() bool { return r.stats("m").ActiveConnections == 0 }, waitFor, 5*time.Millisecond)

	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(NewCollector(r.Bridge)))
	expected := `
# HELP huly_bridge_bytes_total Bytes forwarded; direction is client_to_target or target_to_client.
# TYPE huly_bridge_bytes_total counter
huly_bridge_bytes_total{direction="client_to_target",forward="m"} 5
huly_bridge_bytes_total{direction="target_to_client",forward="m"} 5
# HELP huly_bridge_connections_total Connections accepted and forwarded (rejected ones excluded).
# TYPE huly_bridge_connections_total counter
huly_bridge_connections_total{forward="m"} 1
# HELP huly_bridge_target_up 1 if the last dial to the target succeeded, 0 if it failed; absent before the first dial.
# TYPE huly_bridge_target_up gauge
huly_bridge_target_up{forward="m"} 1
`
	assert.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(expected),
		"huly_bridge_bytes_total", "huly_bridge_connections_total", "huly_bridge_target_up"))
	n, err := testutil.GatherAndCount(reg)
	require.NoError(t, err)
	assert.Equal(t, 10, n)
}
