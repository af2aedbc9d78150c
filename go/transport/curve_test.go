package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/nacl/box"

	"github.com/huly-net/huly-net/go/curve"
)

// dialErrors connects a Dealer that reports its failed attempts.
func dialErrors(t *testing.T, addr string, opts DealerOptions) (*Dealer, chan error) {
	t.Helper()
	errs := make(chan error, 16)
	d := Dial(addr, DealerHandler{OnConnectError: func(err error) {
		select {
		case errs <- err:
		default:
		}
	}}, opts)
	t.Cleanup(func() { _ = d.Close() })
	return d, errs
}

func firstErr(t *testing.T, errs chan error) error {
	t.Helper()
	select {
	case err := <-errs:
		return err
	case <-time.After(waitFor):
		t.Fatal("no connect error")
		return nil
	}
}

func curveDealerOpts(t *testing.T, server curve.Key) (DealerOptions, curve.KeyPair) {
	kp := mustKeyPair(t)
	return DealerOptions{Options: Options{CurveClient: &kp, CurveServerKey: server}}, kp
}

func TestCurveRoundTrip(t *testing.T) {
	server := mustKeyPair(t)
	peers := make(chan PeerID, 8)
	r, err := replyingRouter("tcp://127.0.0.1:0", Options{CurveServer: &server}, func(r *Router, p PeerID, f [][]byte) {
		peers <- p
		_ = r.Send(p, f...)
	})
	require.NoError(t, err)
	defer r.Close()
	opts, client := curveDealerOpts(t, server.Public)
	opts.Hello = [][]byte{[]byte("hello")}
	d := dialPipe(t, r.Addr().String(), opts)
	assert.Equal(t, [][]byte{[]byte("hello")}, d.recv(t), "the hello comes back first")

	// Small, empty, buffer-sized and large frames (long size fields,
	// frames sealed outside the batch buffer) survive both ways.
	for _, msg := range [][][]byte{
		{[]byte("1"), []byte("id-0"), []byte(`["al",{}]`)},
		{[]byte("1"), bytes.Repeat([]byte("m"), 300), nil},
		{bytes.Repeat([]byte("x"), 40<<10)},
		{[]byte("1"), bytes.Repeat([]byte("y"), 1<<20), nil},
	} {
		require.NoError(t, d.Send(msg...))
		got := d.recv(t)
		require.Len(t, got, len(msg))
		for i := range msg {
			assert.True(t, bytes.Equal(msg[i], got[i]), "frame %d of %d bytes", i, len(msg[i]))
		}
	}
	info, ok := r.PeerInfo(<-peers)
	require.True(t, ok)
	assert.Equal(t, MechanismCurve, info.Mechanism)
	assert.Equal(t, client.Public, info.PublicKey)
	assert.Equal(t, "DEALER", info.SocketType)
}

func TestCurveRefusedKeyIsAClearError(t *testing.T) {
	server := mustKeyPair(t)
	r := echoRouter(t, Options{
		CurveServer: &server,
		CurveAuthenticate: func(_ context.Context, k curve.Key, _ net.Addr) error {
			return errors.New("key " + k.String()[:8] + " not authorized")
		},
	})
	opts, client := curveDealerOpts(t, server.Public)
	_, errs := dialErrors(t, r.Addr().String(), opts)
	err := firstErr(t, errs)
	require.ErrorIs(t, err, ErrRefused)
	var re *RefusedError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "key "+client.Public.String()[:8]+" not authorized", re.Reason)
	// The client may read the ERROR before the router has counted it.
	assert.Eventually(t, func() bool { return r.Stats().Rejected >= 1 }, waitFor, tick)
}

func TestNullPeerAgainstCurveRouterIsRefused(t *testing.T) {
	server := mustKeyPair(t)
	r := echoRouter(t, Options{CurveServer: &server})
	_, errs := dialErrors(t, r.Addr().String(), DealerOptions{})
	err := firstErr(t, errs)
	assert.ErrorIs(t, err, ErrMechanismMismatch)
	assert.Contains(t, err.Error(), "requires CURVE")
	require.Eventually(t, func() bool { return r.Stats().Rejected >= 1 }, waitFor, tick)

	// And a CURVE client at a NULL server.
	plain := echoRouter(t, Options{})
	opts, _ := curveDealerOpts(t, server.Public)
	_, errs = dialErrors(t, plain.Addr().String(), opts)
	assert.ErrorIs(t, firstErr(t, errs), ErrMechanismMismatch)
}

// With CurveAllowNull a CURVE Router takes NULL peers from the addresses it
// approves, and CURVE peers as before.
func TestCurveRouterAdmitsAllowedNullPeers(t *testing.T) {
	server := mustKeyPair(t)
	allow := make(chan bool, 1)
	allow <- true
	peers := make(chan PeerID, 4)
	r, err := replyingRouter("tcp://127.0.0.1:0", Options{
		CurveServer:    &server,
		CurveAllowNull: func(net.Addr) bool { ok := <-allow; allow <- ok; return ok },
	}, func(r *Router, p PeerID, f [][]byte) { peers <- p; _ = r.Send(p, f...) })
	require.NoError(t, err)
	defer r.Close()

	n := dialPipe(t, r.Addr().String(), DealerOptions{Identity: []byte("null-peer")})
	n.waitConnected(t)
	require.NoError(t, n.Send([]byte("plain")))
	assert.Equal(t, [][]byte{[]byte("plain")}, n.recv(t))
	info, ok := r.PeerInfo(<-peers)
	require.True(t, ok)
	assert.Equal(t, MechanismNull, info.Mechanism)

	opts, client := curveDealerOpts(t, server.Public)
	c := dialPipe(t, r.Addr().String(), opts)
	c.waitConnected(t)
	require.NoError(t, c.Send([]byte("sealed")))
	assert.Equal(t, [][]byte{[]byte("sealed")}, c.recv(t))
	info, ok = r.PeerInfo(<-peers)
	require.True(t, ok)
	assert.Equal(t, client.Public, info.PublicKey)

	<-allow
	allow <- false
	_, errs := dialErrors(t, r.Addr().String(), DealerOptions{})
	err = firstErr(t, errs)
	require.ErrorIs(t, err, ErrMechanismMismatch)
}

func TestCurveWrongServerKey(t *testing.T) {
	server := mustKeyPair(t)
	r := echoRouter(t, Options{CurveServer: &server})
	other := mustKeyPair(t)
	opts, _ := curveDealerOpts(t, other.Public)
	_, errs := dialErrors(t, r.Addr().String(), opts)
	err := firstErr(t, errs)
	require.ErrorIs(t, err, ErrRefused)
	assert.Contains(t, err.Error(), "wrong server key")
	require.Eventually(t, func() bool { return r.Stats().HandshakeFailures >= 1 }, waitFor, tick)
}

// A peer id is bound to the key that holds it: another key claiming it is
// refused, the same key reconnecting replaces the old connection.
func TestCurveIdentityHeldByAnotherKeyIsRefused(t *testing.T) {
	server := mustKeyPair(t)
	r := echoRouter(t, Options{CurveServer: &server})
	opts, _ := curveDealerOpts(t, server.Public)
	opts.Identity = []byte("agent-1")
	// Two Dealers with one identity and key take the connection from each
	// other for as long as both run: their handlers must not block.
	connected := make(chan struct{}, 1)
	onConnect := func() {
		select {
		case connected <- struct{}{}:
		default:
		}
	}
	a := Dial(r.Addr().String(), DealerHandler{OnConnect: onConnect}, opts)
	defer a.Close()
	select {
	case <-connected:
	case <-time.After(waitFor):
		t.Fatal("not connected")
	}

	other, _ := curveDealerOpts(t, server.Public)
	other.Identity = []byte("agent-1")
	_, errs := dialErrors(t, r.Addr().String(), other)
	err := firstErr(t, errs)
	var re *RefusedError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "identity in use by another key", re.Reason)

	again := Dial(r.Addr().String(), DealerHandler{OnConnect: onConnect}, opts) // same key
	defer again.Close()
	require.Eventually(t, func() bool { return r.Stats().Replaced >= 1 }, waitFor, tick)
}

// codecPair returns a client and a server codec sharing a key.
func codecPair() (cli, srv *curveCodec) {
	var k [32]byte
	copy(k[:], "0123456789abcdef0123456789abcdef")
	cli, srv = newCurveCodec(&k, false), newCurveCodec(&k, true)
	cli.sendNonce = 3
	srv.recvNonce = 2
	return cli, srv
}

func curveReader(c *curveCodec, stream []byte) *guardConn {
	g := newGuardConn(streamConn{r: bytes.NewReader(stream)}, 1<<20, 4096)
	g.cur = c
	g.establish(func([]byte) {})
	return g
}

func TestCurveNonceReplayAndReorderCloseTheConnection(t *testing.T) {
	cli, srv := codecPair()
	m1 := cli.appendMessage(nil, [][]byte{[]byte("one")})
	m2 := cli.appendMessage(nil, [][]byte{[]byte("two")})

	g := curveReader(srv, append(append([]byte{}, m1...), m1...))
	got, err := g.readMessage()
	require.NoError(t, err)
	assert.Equal(t, [][]byte{[]byte("one")}, got)
	_, err = g.readMessage()
	assert.ErrorIs(t, err, errCurveNonce, "replayed")

	_, srv = codecPair()
	g = curveReader(srv, append(append([]byte{}, m2...), m1...))
	_, err = g.readMessage()
	require.NoError(t, err)
	_, err = g.readMessage()
	assert.ErrorIs(t, err, errCurveNonce, "reordered")

	_, srv = codecPair()
	bad := append([]byte{}, m1...)
	bad[len(bad)-1] ^= 1
	_, err = curveReader(srv, bad).readMessage()
	assert.ErrorIs(t, err, errCurveBox, "tampered")

	_, srv = codecPair()
	_, err = curveReader(srv, m1[:len(m1)-3]).readMessage()
	assert.True(t, errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF), "truncated: %v", err)

	_, srv = codecPair()
	_, err = curveReader(srv, frame(0, []byte("\x07MESSAGE short"))).readMessage()
	assert.ErrorIs(t, err, errBadCommand, "too short for a box")

	_, srv = codecPair()
	huge := []byte{flagLong, 0, 0, 0, 1, 0, 0, 0, 0}
	_, err = curveReader(srv, huge).readMessage()
	assert.ErrorIs(t, err, ErrFrameTooLarge)
}

// A PING sealed inside a MESSAGE (as libzmq sends heartbeats) reaches the
// ping handler and never the application.
func TestCurvePingInsideMessage(t *testing.T) {
	cli, srv := codecPair()
	stream := cli.appendSealed(nil, curveFlagCommand, []byte("\x04PING\x00\x00ctx"))
	stream = cli.appendMessage(stream, [][]byte{[]byte("after")})
	g := newGuardConn(streamConn{r: bytes.NewReader(stream)}, 1<<20, 4096)
	g.cur = srv
	var pings []string
	g.establish(func(c []byte) { pings = append(pings, string(c)) })
	got, err := g.readMessage()
	require.NoError(t, err)
	assert.Equal(t, [][]byte{[]byte("after")}, got)
	assert.Equal(t, []string{"ctx"}, pings)
}

// Broken and hostile handshakes end with an error and a closed connection,
// never a panic or a hang.
func TestCurveBrokenHandshakesAreClosed(t *testing.T) {
	server := mustKeyPair(t)
	r := echoRouter(t, Options{CurveServer: &server, HandshakeTimeout: waitFor})
	greet := appendGreeting(nil, MechanismCurve, false)
	hello := validHello(t, server.Public)
	for name, data := range map[string][]byte{
		"truncated HELLO":        hello[:100],
		"oversize command":       {flagCommand | flagLong, 0, 0, 0, 0, 0, 1, 0, 0},
		"data frame":             frame(0, []byte("hi")),
		"HELLO of wrong size":    command("HELLO", make([]byte, 100)),
		"INITIATE before HELLO":  command("INITIATE", make([]byte, 300)),
		"ZMTP 2 greeting":        append([]byte{0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 1, 5}, make([]byte, 52)...),
		"garbage HELLO box":      append(hello[:len(hello)-80:len(hello)-80], make([]byte, 80)...),
		"HELLO then bad INITIAT": append(append([]byte{}, hello...), command("INITIATE", make([]byte, 400))...),
	} {
		t.Run(name, func(t *testing.T) {
			before := r.Stats().HandshakeFailures
			nc, err := net.Dial("tcp", r.Addr().String())
			require.NoError(t, err)
			defer nc.Close()
			if name != "ZMTP 2 greeting" {
				data = append(append([]byte{}, greet...), data...)
			}
			_, err = nc.Write(data)
			require.NoError(t, err)
			if name == "truncated HELLO" {
				require.NoError(t, nc.(*net.TCPConn).CloseWrite())
			}
			waitClosed(t, nc)
			require.Eventually(t, func() bool { return r.Stats().HandshakeFailures > before }, waitFor, tick)
		})
	}
}

// validHello is a client's HELLO command for server.
func validHello(t testing.TB, server curve.Key) []byte {
	kp := mustKeyPair(t)
	g := newGuardConn(streamConn{r: bytes.NewReader(nil)}, 1<<20, 4096)
	var out bytes.Buffer
	g.Conn = recordingConn{streamConn{r: bytes.NewReader(nil)}, &out}
	_, _ = curveClientHandshake(g, hsParams{socketType: socketDealer, opts: Options{CurveClient: &kp, CurveServerKey: server}}, &PeerInfo{})
	return out.Bytes()[greetingSize:]
}

// FuzzHandshakeCommands feeds arbitrary bytes after a valid greeting to
// each side of each handshake, and to the CURVE message reader: an error
// or success, never a panic.
func FuzzHandshakeCommands(f *testing.F) {
	server := mustKeyPair(f)
	f.Add(byte(0), validHello(f, server.Public))
	f.Add(byte(0), command("HELLO", make([]byte, helloSize)))
	f.Add(byte(1), command("READY", []byte("\x0bSocket-Type\x00\x00\x00\x06ROUTER")))
	f.Add(byte(1), command("ERROR", []byte("\x05nope!")))
	f.Add(byte(1), command("READY", []byte("\x0bSocket-Type\xff\xff\xff\xff")))
	f.Add(byte(2), command("WELCOME", make([]byte, welcomeSize)))
	f.Add(byte(2), command("ERROR", []byte{200, 'x'}))
	f.Add(byte(3), []byte{0, 40, 7, 'M', 'E', 'S', 'S', 'A', 'G', 'E'})
	f.Add(byte(0), []byte{flagCommand | flagLong, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, mode byte, data []byte) {
		client := mustKeyPair(t)
		var p hsParams
		var peerGreeting []byte
		switch mode % 4 {
		case 0:
			jar, err := newCookieJar(&server)
			require.NoError(t, err)
			p = hsParams{server: true, socketType: socketRouter, cookies: jar, opts: Options{CurveServer: &server}}
			peerGreeting = appendGreeting(nil, MechanismCurve, false)
		case 1:
			p = hsParams{socketType: socketDealer}
			peerGreeting = appendGreeting(nil, MechanismNull, false)
		case 2:
			p = hsParams{socketType: socketDealer, opts: Options{CurveClient: &client, CurveServerKey: server.Public}}
			peerGreeting = appendGreeting(nil, MechanismCurve, true)
		case 3:
			_, srv := codecPair()
			g := curveReader(srv, data)
			for i := 0; i < 100; i++ {
				if _, err := g.readMessage(); err != nil {
					return
				}
			}
			return
		}
		p.opts = p.opts.withDefaults()
		conn := recordingConn{streamConn{r: bytes.NewReader(append(peerGreeting, data...))}, &bytes.Buffer{}}
		g := newGuardConn(conn, 1<<20, 4096)
		_, _, _ = runHandshake(context.Background(), g, p)
	})
}

func TestAppendCommandLongForm(t *testing.T) {
	c := appendCommand(nil, "INITIATE", make([]byte, 300))
	assert.Equal(t, byte(flagCommand|flagLong), c[0])
	assert.Equal(t, uint64(1+8+300), binary.BigEndian.Uint64(c[1:9]))
}

// boxKey is nacl/box.Precompute, one scalar multiplication cheaper.
func TestBoxKeyMatchesPrecompute(t *testing.T) {
	a, b := mustKeyPair(t), mustKeyPair(t)
	var want, got [32]byte
	box.Precompute(&want, (*[32]byte)(&b.Public), (*[32]byte)(&a.Secret))
	priv, err := longTermKey(&a)
	require.NoError(t, err)
	require.NoError(t, boxKey(&got, priv, b.Public[:]))
	assert.Equal(t, want, got)
	assert.Error(t, boxKey(&got, priv, make([]byte, 32)), "low-order point refused")
}

// A CURVE connection that has spoken may idle past the first-message
// deadline, as a NULL one may: its first MESSAGE counts as its first
// message. A silent connection opened after it is the clock.
func TestCurveIdleAfterFirstMessageIsNotReaped(t *testing.T) {
	const d = 300 * time.Millisecond
	server := mustKeyPair(t)
	r, err := replyingRouter("tcp://127.0.0.1:0", Options{
		CurveServer: &server, CurveAllowNull: func(net.Addr) bool { return true },
		FirstMessageTimeout: d, FrameProgressTimeout: d,
	}, func(r *Router, p PeerID, f [][]byte) { _ = r.Send(p, f...) })
	require.NoError(t, err)
	defer r.Close()
	opts, _ := curveDealerOpts(t, server.Public)
	opts.Hello = [][]byte{[]byte("hello")}
	c := dialPipe(t, r.Addr().String(), opts)
	assert.Equal(t, [][]byte{[]byte("hello")}, c.recv(t))

	silent := dialRaw(t, r.Addr(), "")
	waitClosed(t, silent.nc)
	require.Eventually(t, func() bool { return r.Stats().FirstMessageTimeouts == 1 }, waitFor, tick)

	require.NoError(t, c.Send([]byte("still here")))
	assert.Equal(t, [][]byte{[]byte("still here")}, c.recv(t))
	assert.Zero(t, r.Stats().StalledFrames)
	assert.EqualValues(t, 1, r.Stats().FirstMessageTimeouts, "only the silent connection was reaped")
}
