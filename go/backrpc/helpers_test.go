package backrpc

import (
	"context"
	"encoding/json"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/transport"
)

// waitFor bounds every wait of these tests; none is expected to come near it.
const waitFor = 10 * time.Second

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	t.Cleanup(cancel)
	return ctx
}

// sent is one message a server under test wrote.
type sent struct {
	peer   transport.PeerID
	frames [][]byte
}

// fakeOut stands in for the ROUTER: it records what the server sends.
type fakeOut struct {
	ch chan sent
}

func newFakeOut() *fakeOut { return &fakeOut{ch: make(chan sent, 4096)} }

func (f *fakeOut) Send(peer transport.PeerID, frames ...[]byte) error {
	if len(frames) == 0 {
		return transport.ErrNoFrames
	}
	f.ch <- sent{peer: peer, frames: frames}
	return nil
}

func (f *fakeOut) next(t testing.TB) (transport.PeerID, Message) {
	t.Helper()
	select {
	case s := <-f.ch:
		require.Len(t, s.frames, 3, "the server sends three frames after the routing id")
		m, err := Decode(s.frames)
		require.NoError(t, err)
		return s.peer, m
	case <-time.After(waitFor):
		require.FailNow(t, "no message from the server")
		return "", Message{}
	}
}

// empty asserts nothing was sent so far. Only meaningful after synchronous
// dispatch paths (handleMessage returns after its own sends).
func (f *fakeOut) empty(t testing.TB) {
	t.Helper()
	require.Len(t, f.ch, 0, "unexpected message from the server")
}

func newDispatchServer(t testing.TB, opts ServerOptions, h ServerHandler) (*Server, *fakeOut) {
	t.Helper()
	s := NewServer(opts, h)
	out := newFakeOut()
	s.serveWith(out)
	t.Cleanup(func() { _ = s.Close() })
	return s, out
}

func listenServer(t testing.TB, addr string, opts ServerOptions, h ServerHandler) *Server {
	t.Helper()
	s := NewServer(opts, h)
	require.NoError(t, s.Listen(addr))
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// rawPeer is a bare DEALER: it sends exactly the frames a test gives and
// records what arrives, with no session logic of its own.
type rawPeer struct {
	d         *transport.Dealer
	in        chan [][]byte
	connected chan struct{}
	once      sync.Once
}

func dialRaw(t testing.TB, addr string) *rawPeer {
	t.Helper()
	p := &rawPeer{in: make(chan [][]byte, 4096), connected: make(chan struct{}, 16)}
	p.d = transport.Dial(addr, transport.DealerHandler{
		OnConnect: func() { p.connected <- struct{}{} },
		OnMessage: func(frames [][]byte) { p.in <- frames },
	}, transport.DealerOptions{MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	t.Cleanup(func() { _ = p.d.Close() })
	p.waitConnected(t)
	return p
}

func (p *rawPeer) waitConnected(t testing.TB) {
	t.Helper()
	select {
	case <-p.connected:
	case <-time.After(waitFor):
		require.FailNow(t, "raw peer did not connect")
	}
}

func (p *rawPeer) send(t testing.TB, frames ...[]byte) {
	t.Helper()
	require.NoError(t, p.d.Send(frames...))
}

func (p *rawPeer) sendMsg(t testing.TB, m Message) {
	t.Helper()
	p.send(t, EncodeClient(m)...)
}

func (p *rawPeer) recvFrames(t testing.TB) [][]byte {
	t.Helper()
	select {
	case f := <-p.in:
		return f
	case <-time.After(waitFor):
		require.FailNow(t, "nothing arrived at the raw peer")
		return nil
	}
}

func (p *rawPeer) recv(t testing.TB) Message {
	t.Helper()
	f := p.recvFrames(t)
	require.Len(t, f, 3, "server messages have three frames")
	m, err := Decode(f)
	require.NoError(t, err)
	return m
}

func (p *rawPeer) hello(t testing.TB, clientID string, alive time.Duration) Message {
	t.Helper()
	p.sendMsg(t, Message{Op: OpHello, ID: clientID, Payload: EncodeHelloPayload(alive)})
	m := p.recv(t)
	require.Equal(t, OpHello, m.Op)
	return m
}

func (p *rawPeer) request(t testing.TB, id, method string, params any) {
	t.Helper()
	payload, err := EncodeRequestPayload(method, params)
	require.NoError(t, err)
	p.sendMsg(t, Message{Op: OpRequest, ID: id, Payload: payload})
}

// freeAddr reserves a loopback port for a server that must later restart
// on the same address.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func dialClient(t testing.TB, addr string, opts ClientOptions, h ClientHandler) *Client {
	t.Helper()
	if opts.Transport.MinBackoff == 0 {
		opts.Transport.MinBackoff = 10 * time.Millisecond
		opts.Transport.MaxBackoff = 100 * time.Millisecond
	}
	c, err := Dial(addr, opts, h)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		_ = c.Close(ctx)
	})
	return c
}

// gate holds handlers until the test opens it.
type gate struct {
	once sync.Once
	ch   chan struct{}
}

func newGate() *gate { return &gate{ch: make(chan struct{})} }

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

func (g *gate) wait(ctx context.Context) error {
	select {
	case <-g.ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// echoHandler answers every request with {"method":..,"params":..}.
func echoHandler(ctx context.Context, client ClientInfo, method string, params json.RawMessage) (any, error) {
	return map[string]any{"method": method, "params": params}, nil
}
