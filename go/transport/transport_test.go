package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/go-zeromq/zmq4/security/null"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const waitFor = 10 * time.Second
const tick = 5 * time.Millisecond

// replyingRouter listens on addr; fn gets the Router to answer with.
func replyingRouter(addr string, opts Options, fn func(r *Router, peer PeerID, frames [][]byte)) (*Router, error) {
	var r *Router
	ready := make(chan struct{})
	r, err := Listen(addr, RouterHandler{OnMessage: func(peer PeerID, frames [][]byte) {
		<-ready
		fn(r, peer, frames)
	}}, opts)
	if err != nil {
		return nil, err
	}
	close(ready)
	return r, nil
}

// echoRouter starts a Router on 127.0.0.1 that sends every message back to
// its sender.
func echoRouter(t *testing.T, opts Options) *Router {
	t.Helper()
	r, err := replyingRouter("tcp://127.0.0.1:0", opts, func(r *Router, peer PeerID, frames [][]byte) {
		_ = r.Send(peer, frames...)
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// dealerPipe is a Dealer whose messages arrive on a channel.
type dealerPipe struct {
	*Dealer
	msgs      chan [][]byte
	connected chan struct{}
}

func dialPipe(t *testing.T, addr string, opts DealerOptions) *dealerPipe {
	t.Helper()
	p := &dealerPipe{msgs: make(chan [][]byte, 1024), connected: make(chan struct{}, 16)}
	p.Dealer = Dial(addr, DealerHandler{
		OnConnect: func() { p.connected <- struct{}{} },
		OnMessage: func(frames [][]byte) { p.msgs <- frames },
	}, opts)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func (p *dealerPipe) waitConnected(t *testing.T) {
	t.Helper()
	select {
	case <-p.connected:
	case <-time.After(waitFor):
		t.Fatal("dealer did not connect")
	}
}

func (p *dealerPipe) recv(t *testing.T) [][]byte {
	t.Helper()
	select {
	case m := <-p.msgs:
		return m
	case <-time.After(waitFor):
		t.Fatal("no message within deadline")
		return nil
	}
}

// rawPeer performs a real ZMTP handshake with zmq4's connection level over a
// plain TCP connection, and then lets the test write raw bytes: a hostile or
// broken peer.
type rawPeer struct {
	nc net.Conn
	zc *zmq4.Conn
}

func dialRaw(t *testing.T, addr net.Addr, identity string) *rawPeer {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr.String(), waitFor)
	require.NoError(t, err)
	t.Cleanup(func() { _ = nc.Close() })
	require.NoError(t, nc.SetDeadline(time.Now().Add(waitFor)))
	zc, err := zmq4.Open(nc, null.Security(), zmq4.Dealer, zmq4.SocketIdentity(identity), false, nil)
	require.NoError(t, err)
	require.NoError(t, nc.SetDeadline(time.Time{}))
	return &rawPeer{nc: nc, zc: zc}
}

// waitClosed reads until the server closes the connection.
func waitClosed(t *testing.T, nc net.Conn) {
	t.Helper()
	require.NoError(t, nc.SetReadDeadline(time.Now().Add(waitFor)))
	_, err := io.Copy(io.Discard, nc)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("server did not close the connection")
	}
}

func TestRoundTrip(t *testing.T) {
	r := echoRouter(t, Options{})
	d := dialPipe(t, r.Addr().String(), DealerOptions{})
	d.waitConnected(t)
	require.NoError(t, d.Send([]byte("1"), []byte("id-0"), []byte(`["al",{}]`)))
	got := d.recv(t)
	assert.Equal(t, [][]byte{[]byte("1"), []byte("id-0"), []byte(`["al",{}]`)}, got)

	// Large frames (long size field) survive both ways.
	big := bytes.Repeat([]byte("x"), 1<<20)
	require.NoError(t, d.Send([]byte("1"), big, nil))
	got = d.recv(t)
	require.Len(t, got, 3)
	assert.Equal(t, big, got[1])
	assert.Empty(t, got[2])
}

func TestDealerIdentityIsTheRoutingID(t *testing.T) {
	peers := make(chan PeerID, 1)
	r, err := Listen("127.0.0.1:0", RouterHandler{OnMessage: func(p PeerID, _ [][]byte) { peers <- p }}, Options{})
	require.NoError(t, err)
	defer r.Close()
	d := dialPipe(t, r.Addr().String(), DealerOptions{Identity: []byte("client-7")})
	d.waitConnected(t)
	require.NoError(t, d.Send([]byte("x")))
	select {
	case p := <-peers:
		assert.Equal(t, PeerID("client-7"), p)
	case <-time.After(waitFor):
		t.Fatal("no message")
	}
}

func TestAssignedIdentityForAnonymousPeers(t *testing.T) {
	peers := make(chan PeerID, 2)
	r, err := Listen("127.0.0.1:0", RouterHandler{OnMessage: func(p PeerID, _ [][]byte) { peers <- p }}, Options{})
	require.NoError(t, err)
	defer r.Close()
	a := dialPipe(t, r.Addr().String(), DealerOptions{})
	b := dialPipe(t, r.Addr().String(), DealerOptions{})
	a.waitConnected(t)
	b.waitConnected(t)
	require.NoError(t, a.Send([]byte("a")))
	require.NoError(t, b.Send([]byte("b")))
	var ids []PeerID
	for range 2 {
		select {
		case p := <-peers:
			ids = append(ids, p)
		case <-time.After(waitFor):
			t.Fatal("no message")
		}
	}
	require.Len(t, ids, 2)
	assert.NotEqual(t, ids[0], ids[1])
	for _, id := range ids {
		assert.Len(t, string(id), 5, "libzmq-style assigned id")
		assert.Equal(t, byte(0), id[0])
	}
}

func TestSendErrors(t *testing.T) {
	r := echoRouter(t, Options{})
	assert.ErrorIs(t, r.Send("nobody", []byte("x")), ErrUnknownPeer)
	assert.ErrorIs(t, r.Send("nobody"), ErrNoFrames)

	d := Dial("127.0.0.1:1", DealerHandler{}, DealerOptions{})
	assert.ErrorIs(t, d.Send([]byte("x")), ErrNotConnected)
	assert.ErrorIs(t, d.Send(), ErrNoFrames)
	require.NoError(t, d.Close())
	assert.ErrorIs(t, d.Send([]byte("x")), ErrClosed)

	require.NoError(t, r.Close())
	assert.ErrorIs(t, r.Send("nobody", []byte("x")), ErrClosed)
}

func TestOversizeFrameClosesOnlyThatConnection(t *testing.T) {
	r := echoRouter(t, Options{MaxFrameSize: 1 << 20})
	good := dialPipe(t, r.Addr().String(), DealerOptions{})
	good.waitConnected(t)

	bad := dialRaw(t, r.Addr(), "")
	// A long frame header announcing 1 TiB: zmq4 alone would try to
	// allocate it and the process would die.
	hdr := make([]byte, 9)
	hdr[0] = flagLong
	binary.BigEndian.PutUint64(hdr[1:], 1<<40)
	_, err := bad.nc.Write(hdr)
	require.NoError(t, err)
	waitClosed(t, bad.nc)
	require.Eventually(t, func() bool { return r.Stats().OversizeFrames == 1 }, waitFor, tick)

	// Just over the limit is refused too; the limit itself passes.
	bad2 := dialRaw(t, r.Addr(), "")
	// The server may close on the header while the body is still being
	// written, so the send itself can fail with a broken pipe.
	_ = bad2.zc.SendMsg(zmq4.NewMsg(make([]byte, 1<<20+1)))
	waitClosed(t, bad2.nc)
	require.Eventually(t, func() bool { return r.Stats().OversizeFrames == 2 }, waitFor, tick)

	require.NoError(t, good.Send(make([]byte, 1<<20)))
	assert.Len(t, good.recv(t)[0], 1<<20)
}

func TestSilentClientDelaysNobody(t *testing.T) {
	r := echoRouter(t, Options{HandshakeTimeout: 300 * time.Millisecond})
	silent, err := net.Dial("tcp", r.Addr().String())
	require.NoError(t, err)
	defer silent.Close()

	d := dialPipe(t, r.Addr().String(), DealerOptions{})
	d.waitConnected(t)
	require.NoError(t, d.Send([]byte("hi")))
	assert.Equal(t, [][]byte{[]byte("hi")}, d.recv(t))

	// The silent client is dropped when its handshake deadline passes.
	waitClosed(t, silent)
	require.Eventually(t, func() bool { return r.Stats().HandshakeFailures >= 1 }, waitFor, tick)
}

// failingListener returns err from every Accept.
type failingListener struct {
	net.Listener
	calls atomic.Int64
	err   error
}

func (l *failingListener) Accept() (net.Conn, error) {
	l.calls.Add(1)
	return nil, l.err
}

func TestAcceptErrorsBackOff(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	fl := &failingListener{Listener: inner, err: &net.OpError{Op: "accept", Net: "tcp", Err: fmt.Errorf("accept4: too many open files")}}

	var mu sync.Mutex
	var waits []time.Duration
	r := newRouter(fl, RouterHandler{OnMessage: func(PeerID, [][]byte) {}}, Options{}, func(ctx context.Context, d time.Duration) {
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
	})
	require.Eventually(t, func() bool { return r.Stats().AcceptErrors >= 10 }, waitFor, tick)
	require.NoError(t, r.Close())

	mu.Lock()
	defer mu.Unlock()
	require.GreaterOrEqual(t, len(waits), 9)
	assert.Equal(t, 5*time.Millisecond, waits[0])
	for i := 1; i < len(waits); i++ {
		assert.GreaterOrEqual(t, waits[i], waits[i-1], "backoff never shrinks while errors continue")
	}
	assert.Equal(t, time.Second, waits[len(waits)-1], "backoff reaches its cap")
}

func TestSlowPeerDoesNotDelayOthers(t *testing.T) {
	r := echoRouter(t, Options{SendQueue: 8, WriteTimeout: time.Minute})
	slow := dialRaw(t, r.Addr(), "slow")
	require.NoError(t, slow.nc.(*net.TCPConn).SetReadBuffer(4096))
	// The slow peer says something so the router knows it, then never reads.
	require.NoError(t, slow.zc.SendMsg(zmq4.NewMsgString("hello")))

	fast := dialPipe(t, r.Addr().String(), DealerOptions{})
	fast.waitConnected(t)

	require.Eventually(t, func() bool { return r.Stats().Peers == 2 }, waitFor, tick)
	// Fill the slow peer's socket buffers and then its queue.
	chunk := make([]byte, 256<<10)
	var sendErr error
	for i := 0; i < 10000 && sendErr == nil; i++ {
		sendErr = r.Send("slow", chunk)
	}
	require.Error(t, sendErr, "the slow peer's queue never filled")
	assert.ErrorIs(t, sendErr, ErrQueueFull)

	// Everyone else is still served.
	require.NoError(t, fast.Send([]byte("ping")))
	assert.Equal(t, [][]byte{[]byte("ping")}, fast.recv(t))

	require.Eventually(t, func() bool { return r.Stats().SlowPeerDisconnects == 1 }, waitFor, tick)
	assert.ErrorIs(t, r.Send("slow", chunk), ErrUnknownPeer)
	waitClosed(t, slow.nc)
}

func TestWriteTimeoutDisconnectsStuckPeer(t *testing.T) {
	r := echoRouter(t, Options{WriteTimeout: 200 * time.Millisecond})
	stuck := dialRaw(t, r.Addr(), "stuck")
	require.NoError(t, stuck.nc.(*net.TCPConn).SetReadBuffer(4096))
	require.NoError(t, stuck.zc.SendMsg(zmq4.NewMsgString("hello")))
	require.Eventually(t, func() bool { return r.Stats().Peers == 1 }, waitFor, tick)
	chunk := make([]byte, 1<<20)
	for i := 0; i < 16; i++ {
		if r.Send("stuck", chunk) != nil {
			break
		}
	}
	require.Eventually(t, func() bool { return r.Stats().Peers == 0 }, waitFor, tick, "stuck peer not disconnected")
	waitClosed(t, stuck.nc)
}

func TestSameIdentityReplacesOldConnection(t *testing.T) {
	got := make(chan PeerID, 4)
	disconnected := make(chan PeerID, 4)
	r, err := Listen("127.0.0.1:0", RouterHandler{
		OnMessage:    func(p PeerID, _ [][]byte) { got <- p },
		OnDisconnect: func(p PeerID) { disconnected <- p },
	}, Options{})
	require.NoError(t, err)
	defer r.Close()

	first := dialRaw(t, r.Addr(), "twin")
	require.NoError(t, first.zc.SendMsg(zmq4.NewMsgString("a")))
	<-got
	second := dialRaw(t, r.Addr(), "twin")
	require.NoError(t, second.zc.SendMsg(zmq4.NewMsgString("b")))
	<-got

	waitClosed(t, first.nc)
	require.NoError(t, r.Send("twin", []byte("to-second")))
	require.NoError(t, second.nc.SetReadDeadline(time.Now().Add(waitFor)))
	msg, err := second.zc.RecvMsg()
	require.NoError(t, err)
	assert.Equal(t, "to-second", string(msg.Frames[0]))
	assert.Equal(t, uint64(1), r.Stats().Replaced)
	select {
	case p := <-disconnected:
		t.Fatalf("replacement reported as a disconnect of %q", p)
	default:
	}
}

func TestZMTPPingIsAnswered(t *testing.T) {
	r := echoRouter(t, Options{})
	p := dialRaw(t, r.Addr(), "pinger")
	// PING with TTL 0 and a context the PONG must echo.
	require.NoError(t, p.zc.SendCmd(zmq4.CmdPing, []byte{0, 0, 'c', 't', 'x'}))
	require.NoError(t, p.nc.SetReadDeadline(time.Now().Add(waitFor)))
	cmd, err := p.zc.RecvCmd()
	require.NoError(t, err)
	assert.Equal(t, zmq4.CmdPong, cmd.Name)
	assert.Equal(t, "ctx", string(cmd.Body))
	// The command never reached the application, and messages still flow.
	require.NoError(t, p.zc.SendMsg(zmq4.NewMsgString("after")))
	msg, err := p.zc.RecvMsg()
	require.NoError(t, err)
	assert.Equal(t, "after", string(msg.Frames[0]))
}

func TestDealerReconnects(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	r1 := NewRouter(ln, RouterHandler{OnMessage: func(PeerID, [][]byte) {}}, Options{})

	d := dialPipe(t, addr, DealerOptions{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	d.waitConnected(t)
	require.NoError(t, r1.Close())
	require.Eventually(t, func() bool { return !d.Connected() }, waitFor, tick)

	// A new server on the same port: the dealer comes back by itself.
	var r2 *Router
	require.Eventually(t, func() bool {
		var err error
		r2, err = replyingRouter(addr, Options{}, func(r *Router, p PeerID, f [][]byte) { _ = r.Send(p, f...) })
		return err == nil
	}, waitFor, tick)
	defer r2.Close()
	d.waitConnected(t)
	require.NoError(t, d.Send([]byte("back")))
	assert.Equal(t, [][]byte{[]byte("back")}, d.recv(t))
}

func TestCloseContextWritesQueuedMessages(t *testing.T) {
	got := make(chan string, 100)
	r, err := Listen("127.0.0.1:0", RouterHandler{OnMessage: func(_ PeerID, f [][]byte) { got <- string(f[0]) }}, Options{})
	require.NoError(t, err)
	defer r.Close()
	d := dialPipe(t, r.Addr().String(), DealerOptions{})
	d.waitConnected(t)
	for i := range 50 {
		require.NoError(t, d.Send([]byte(fmt.Sprint(i))))
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, d.CloseContext(ctx))
	for i := range 50 {
		select {
		case s := <-got:
			assert.Equal(t, fmt.Sprint(i), s)
		case <-time.After(waitFor):
			t.Fatalf("message %d lost on close", i)
		}
	}
}

func TestCloseIsBoundedWithoutServer(t *testing.T) {
	d := Dial("127.0.0.1:1", DealerHandler{}, DealerOptions{})
	done := make(chan struct{})
	go func() { _ = d.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatal("Close hung")
	}
}

func TestParseAddr(t *testing.T) {
	for in, want := range map[string]string{
		"tcp://*:3737":         ":3737",
		"tcp://127.0.0.1:3737": "127.0.0.1:3737",
		"localhost:1":          "localhost:1",
		"tcp://[::1]:5":        "[::1]:5",
	} {
		got, err := ParseAddr(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"ipc:///tmp/x", "3737", "tcp://host"} {
		_, err := ParseAddr(bad)
		assert.Error(t, err, bad)
	}
}

// Concurrent senders to a reader slower than they are: the socket fills,
// batches queue up behind it, and still every message arrives once and
// each sender's messages arrive in order.
func TestConcurrentSendersKeepOrderBehindASlowReader(t *testing.T) {
	const senders, perSender, probe = 8, 400, 255
	r, err := Listen("tcp://127.0.0.1:0", RouterHandler{OnMessage: func(PeerID, [][]byte) {}}, Options{SendQueue: senders * perSender})
	require.NoError(t, err)
	defer r.Close()

	gotAll := make(chan error, 1)
	release := make(chan struct{})
	next := make([]int, senders)
	n := 0
	d := Dial(r.Addr().String(), DealerHandler{OnMessage: func(frames [][]byte) {
		if frames[0][0] == probe {
			return
		}
		if n == 0 {
			<-release // let the socket buffers fill first
		}
		s, seq := int(frames[0][0]), int(binary.BigEndian.Uint32(frames[1]))
		if seq != next[s] {
			gotAll <- fmt.Errorf("sender %d: got %d, want %d", s, seq, next[s])
			return
		}
		next[s]++
		if n++; n == senders*perSender {
			gotAll <- nil
		}
	}}, DealerOptions{Identity: []byte("reader")})
	defer d.Close()
	// The router learns the reader's identity from its first message.
	require.Eventually(t, func() bool {
		_ = d.Send([]byte("hello"))
		return r.Send("reader", []byte{probe}) == nil
	}, waitFor, tick)

	body := make([]byte, 6<<10) // 19 MB in all: more than the socket buffers hold
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perSender; i++ {
				seq := binary.BigEndian.AppendUint32(nil, uint32(i))
				if err := r.Send("reader", []byte{byte(s)}, seq, body); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(release)
	select {
	case err := <-gotAll:
		require.NoError(t, err)
	case <-time.After(waitFor):
		t.Fatal("not every message arrived")
	}
}

func TestDealerHelloComesFirstOnEveryConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	got := make(chan string, 16)
	onMessage := func(_ PeerID, f [][]byte) { got <- string(bytes.Join(f, []byte("|"))) }
	r1 := NewRouter(ln, RouterHandler{OnMessage: onMessage}, Options{})

	d := dialPipe(t, addr, DealerOptions{
		Hello:      [][]byte{[]byte("0"), []byte("client-1"), []byte(`{"aliveTimeout":3}`)},
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
	})
	d.waitConnected(t)
	require.NoError(t, d.Send([]byte("after")))
	next := func() string {
		select {
		case m := <-got:
			return m
		case <-time.After(waitFor):
			t.Fatal("no message")
			return ""
		}
	}
	assert.Equal(t, `0|client-1|{"aliveTimeout":3}`, next())
	assert.Equal(t, "after", next())

	// After a reconnection the hello comes first again.
	require.NoError(t, r1.Close())
	require.Eventually(t, func() bool { return !d.Connected() }, waitFor, tick)
	var r2 *Router
	require.Eventually(t, func() bool {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		r2 = NewRouter(ln, RouterHandler{OnMessage: onMessage}, Options{})
		return true
	}, waitFor, tick)
	defer r2.Close()
	d.waitConnected(t)
	assert.Equal(t, `0|client-1|{"aliveTimeout":3}`, next())
}
