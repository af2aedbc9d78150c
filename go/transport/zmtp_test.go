package transport

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/go-zeromq/zmq4/security/null"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/curve"
)

// nullSecurity is zmq4's NULL mechanism, the reference our handshake is
// checked against.
func nullSecurity() zmq4.Security { return null.Security() }

func mustKeyPair(t testing.TB) curve.KeyPair {
	t.Helper()
	kp, err := curve.GenerateKeyPair()
	require.NoError(t, err)
	return kp
}

// zmq4 speaks ZMTP 3.0: our ROUTER takes it as a peer and knows its
// version.
func TestZMTP30DealerAgainstRouter(t *testing.T) {
	peers := make(chan PeerID, 1)
	r, err := replyingRouter("tcp://127.0.0.1:0", Options{}, func(r *Router, p PeerID, f [][]byte) {
		peers <- p
		_ = r.Send(p, f...)
	})
	require.NoError(t, err)
	defer r.Close()
	p := dialRaw(t, r.Addr(), "zmq4-peer")
	require.NoError(t, p.zc.SendMsg(zmq4.NewMsgString("x")))
	id := <-peers
	info, ok := r.PeerInfo(id)
	require.True(t, ok)
	assert.Equal(t, byte(0), info.Minor)
	assert.Equal(t, "zmq4-peer", info.Identity)
	assert.Equal(t, MechanismNull, info.Mechanism)
}

// Our DEALER against a ZMTP 3.0 ROUTER (zmq4's connection level): the
// handshake completes and the hello arrives first.
func TestDealerAgainstZMTP30Router(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	got := make(chan [][]byte, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(waitFor))
		zc, err := zmq4.Open(nc, nullSecurity(), zmq4.Router, nil, true, nil)
		if err != nil {
			return
		}
		msg, err := zc.RecvMsg()
		if err == nil {
			got <- msg.Frames
		}
	}()
	dialPipe(t, ln.Addr().String(), DealerOptions{Hello: [][]byte{[]byte("hi")}})
	select {
	case f := <-got:
		assert.Equal(t, [][]byte{[]byte("hi")}, f)
	case <-time.After(waitFor):
		t.Fatal("no hello at the ZMTP 3.0 router")
	}
}

// The NULL handshake is one write each way: the DEALER's greeting and
// READY together, the ROUTER's greeting and READY together.
func TestNullHandshakeIsOneWriteEachWay(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	type result struct {
		c   *conn
		w   *writeCounter
		err error
	}
	cli := make(chan result, 1)
	go func() {
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			cli <- result{err: err}
			return
		}
		w := &writeCounter{Conn: nc}
		c, err := handshake(context.Background(), w, hsParams{socketType: socketDealer, identity: []byte("d"), opts: Options{}.withDefaults()})
		cli <- result{c, w, err}
	}()
	nc, err := ln.Accept()
	require.NoError(t, err)
	sw := &writeCounter{Conn: nc}
	srv, err := handshake(context.Background(), sw, hsParams{server: true, socketType: socketRouter, opts: Options{}.withDefaults()})
	require.NoError(t, err)
	defer srv.shutdown(ErrClosed)
	c := <-cli
	require.NoError(t, c.err)
	defer c.c.shutdown(ErrClosed)
	assert.Equal(t, 1, sw.writes, "router")
	assert.Equal(t, 1, c.w.writes, "dealer")
	assert.Equal(t, "d", srv.info.Identity)
	assert.Equal(t, "ROUTER", c.c.info.SocketType)
}
