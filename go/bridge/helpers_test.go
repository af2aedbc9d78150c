package bridge

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"
)

const waitFor = 10 * time.Second

func testLogger(t testing.TB) logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	if testing.Verbose() {
		l.SetOutput(tWriter{t})
		l.SetLevel(logrus.DebugLevel)
	}
	return l
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// running is a Bridge being served by Run in a goroutine.
type running struct {
	*Bridge
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returns
	err    error         // Run's result, set before done is closed
}

// stop cancels Run and waits for it to return.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		require.NoError(t, r.err)
	case <-time.After(waitFor):
		require.FailNow(t, "Run did not return")
	}
}

func (r *running) addr(t *testing.T, name string) string {
	t.Helper()
	a := r.Addrs(name)
	require.Len(t, a, 1)
	return a[0].String()
}

func (r *running) stats(name string) ForwardStats {
	for _, s := range r.Stats() {
		if s.Name == name {
			return s
		}
	}
	return ForwardStats{}
}

func startBridge(t testing.TB, opts Options) *running {
	t.Helper()
	if opts.Log == nil {
		opts.Log = testLogger(t)
	}
	for i := range opts.Forwards {
		if opts.Forwards[i].Listen == "" && opts.Listeners[opts.Forwards[i].Name] == nil {
			opts.Forwards[i].Listen = "tcp:127.0.0.1:0"
		}
	}
	b, err := New(opts)
	require.NoError(t, err)
	require.NoError(t, b.Listen(context.Background()))
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Bridge: b, cancel: cancel, done: make(chan struct{})}
	go func() {
		r.err = b.Run(ctx)
		close(r.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(waitFor):
			t.Error("Run did not return at cleanup")
		}
	})
	return r
}

// server is a target: it runs handle for each connection until stopped.
type server struct {
	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func startServer(t *testing.T, network, addr string, handle func(net.Conn)) *server {
	t.Helper()
	ln, err := net.Listen(network, addr)
	require.NoError(t, err)
	s := &server{ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				_ = c.Close()
				return
			}
			s.conns[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				handle(c)
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				_ = c.Close()
			}()
		}
	}()
	t.Cleanup(s.stop)
	return s
}

// stop closes the listener and every connection, like a crashing target.
func (s *server) stop() {
	s.mu.Lock()
	s.closed = true
	_ = s.ln.Close()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *server) target() string { return s.ln.Addr().Network() + ":" + s.ln.Addr().String() }

// echo copies a connection back to itself, half-closing after EOF.
func echo(c net.Conn) {
	_, _ = io.Copy(c, c)
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

func dial(t *testing.T, network, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout(network, addr, waitFor)
	require.NoError(t, err)
	require.NoError(t, c.SetDeadline(time.Now().Add(60*time.Second)))
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// roundTrip writes msg and expects it echoed back.
func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	_, err := io.WriteString(c, msg)
	require.NoError(t, err)
	buf := make([]byte, len(msg))
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	require.Equal(t, msg, string(buf))
}

// expectClosed asserts that the peer closed c (EOF or reset) without
// sending anything.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(waitFor)))
	n, err := c.Read(make([]byte, 1))
	require.Zero(t, n)
	require.Error(t, err)
	var ne net.Error
	if ok := asNetErr(err, &ne); ok {
		require.False(t, ne.Timeout(), "connection was not closed within %s", waitFor)
	}
}

func asNetErr(err error, ne *net.Error) bool {
	e, ok := err.(net.Error)
	if ok {
		*ne = e
	}
	return ok
}
