package server

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/go-zeromq/zmq4/security/null"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/transport"
)

// The server rules of PROTOCOL.md §2 and scenario 08, from peers that write
// frames exactly as the TypeScript client does (no routing id of their own,
// four-frame hello and ping, three-frame requests), and from peers that do
// not speak ZMTP properly at all. The network server must answer what it
// can, drop what it must, and keep serving everybody else.

const rawMaxFrame = 1 << 20

func startRawPeerServer(t *testing.T) *runningServer {
	t.Helper()
	return runServer(t, "tcp://127.0.0.1:0", Options{
		AliveTimeout:  800 * time.Millisecond,
		PingInterval:  100 * time.Millisecond,
		UnusedTimeout: 300 * time.Millisecond,
		Transport: transport.Options{
			MaxFrameSize:     rawMaxFrame,
			HandshakeTimeout: 500 * time.Millisecond,
		},
	})
}

// tsHello says hello as the TypeScript client does and checks the answer.
func tsHello(t *testing.T, c *rawConn, srv *Server, clientID string) {
	t.Helper()
	c.send(t, []byte("0"), []byte(clientID), []byte(`{"aliveTimeout":3}`), []byte{})
	m := c.recv(t, "hello", func(m backrpc.Message) bool { return m.Op == backrpc.OpHello })
	require.Equal(t, srv.ID(), m.ID)
	// The reference's answer is empty; ours says what was granted and
	// what the server supports, which a TS 0.7 client never reads.
	require.Equal(t, `{"aliveTimeout":3,"capabilities":["state"]}`, string(m.Payload))
}

// tsRequest sends a three-frame request and returns the answer to its id.
func tsRequest(t *testing.T, c *rawConn, id string, frames ...[]byte) backrpc.Message {
	t.Helper()
	c.send(t, append([][]byte{[]byte("1"), []byte(id)}, frames...)...)
	return c.recv(t, "answer to "+id, func(m backrpc.Message) bool { return m.ID == id })
}

// stillServes checks that a well-behaved client is answered.
func stillServes(t *testing.T, c *rawConn, id string) {
	t.Helper()
	m := tsRequest(t, c, id, []byte(`["ak",{}]`))
	assert.Equal(t, backrpc.OpResponse, m.Op)
	assert.JSONEq(t, `[]`, string(m.Payload))
}

// waitClosedByServer reads until the server closes nc, bounded.
func waitClosedByServer(t *testing.T, nc net.Conn) {
	t.Helper()
	require.NoError(t, nc.SetReadDeadline(time.Now().Add(answerWait)))
	_, err := io.Copy(io.Discard, nc)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server did not close the connection")
	}
}

// zmtpDealer completes the ZMTP greeting and handshake as a DEALER with no
// routing id and returns the raw connection, to write frames by hand.
func zmtpDealer(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, answerWait)
	require.NoError(t, err)
	t.Cleanup(func() { _ = nc.Close() })
	require.NoError(t, nc.SetDeadline(time.Now().Add(answerWait)))
	_, err = zmq4.Open(nc, null.Security(), zmq4.Dealer, zmq4.SocketIdentity(""), false, nil)
	require.NoError(t, err)
	require.NoError(t, nc.SetDeadline(time.Time{}))
	return nc
}

func TestTSFormatPeerGetsAnswersToBadRequests(t *testing.T) {
	rs := startRawPeerServer(t)
	addr := "tcp://" + rs.s.Addr().String()
	c := dialRawConn(t, "ts", addr)
	const client = "45753fc2-520b-4558-b51f-8bbfcfd73448"
	tsHello(t, c, rs.s, client)

	// Two frames, no payload: the reference stays silent; we answer.
	m := tsRequest(t, c, client+"-1")
	assert.Equal(t, backrpc.OpResponseError, m.Op, "two-frame request")
	assert.Equal(t, "{message:string,stack:string}", shape(m.Payload))

	// A payload that is not JSON.
	m = tsRequest(t, c, client+"-2", []byte("{not json"))
	assert.Equal(t, backrpc.OpResponseError, m.Op, "non-JSON payload")
	assert.Equal(t, "{message:string,stack:string}", shape(m.Payload))

	// JSON, but not [method, params].
	m = tsRequest(t, c, client+"-3", []byte(`{"method":"ak"}`))
	assert.Equal(t, backrpc.OpResponseError, m.Op, "payload that is no request")

	// Params that do not fit the method.
	m = tsRequest(t, c, client+"-4", []byte(`["gg","echo"]`))
	assert.Equal(t, backrpc.OpResponseError, m.Op, "gg with a string for params")

	// A client's event (op 4) is ignored, as by the reference.
	c.send(t, []byte("4"), []byte{}, []byte(`{"any":"body"}`), []byte{})

	stillServes(t, c, client+"-5")
	st := rs.s.Stats().RPC
	assert.GreaterOrEqual(t, st.BadMessages, uint64(3))
	assert.Empty(t, c.barrier(t), "nothing but the answers above")
}

func TestTSFormatPeerWithoutHelloIsRetried(t *testing.T) {
	rs := startRawPeerServer(t)
	c := dialRawConn(t, "ts", "tcp://"+rs.s.Addr().String())
	const client = "c2942943-450d-46ad-9297-bd43882370fb"

	// A request before any hello: retry 1, as the reference.
	m := tsRequest(t, c, client+"-0", []byte(`["al",{}]`))
	assert.Equal(t, backrpc.OpRetry, m.Op)
	assert.Equal(t, "1", string(m.Payload))

	// A ping from nobody: pong and askHello, with the server id.
	c.send(t, []byte("5"), []byte{}, []byte{}, []byte{})
	pong := c.recv(t, "pong", func(m backrpc.Message) bool { return m.Op == backrpc.OpPong })
	ask := c.recv(t, "askHello", func(m backrpc.Message) bool { return m.Op == backrpc.OpAskHello })
	assert.Equal(t, rs.s.ID(), pong.ID)
	assert.Equal(t, rs.s.ID(), ask.ID)

	// After hello the same request is served.
	tsHello(t, c, rs.s, client)
	m = tsRequest(t, c, client+"-0", []byte(`["al",{}]`))
	assert.Equal(t, backrpc.OpResponse, m.Op)
	assert.JSONEq(t, `[]`, string(m.Payload))
}

func TestHugeFrameDisconnectsOnlyThatPeer(t *testing.T) {
	rs := startRawPeerServer(t)
	addr := rs.s.Addr().String()
	good := dialRawConn(t, "good", "tcp://"+addr)
	const client = "0bf08fdd-cae3-40bf-ab74-f9564190cbd6"
	tsHello(t, good, rs.s, client)

	// A long frame header announcing 1 TiB: closed before any allocation.
	bad := zmtpDealer(t, addr)
	hdr := make([]byte, 9)
	hdr[0] = 0x02 // LONG, last frame
	binary.BigEndian.PutUint64(hdr[1:], 1<<40)
	_, err := bad.Write(hdr)
	require.NoError(t, err)
	waitClosedByServer(t, bad)

	// One byte over the limit in a real message is refused too.
	bad2 := zmtpDealer(t, addr)
	hdr[0] = 0x03 // LONG and MORE: the op frame that would follow never comes
	binary.BigEndian.PutUint64(hdr[1:], rawMaxFrame+1)
	// The server may close while we still write (a reset or a broken
	// pipe): that is the point, so the write's error says nothing.
	_, _ = bad2.Write(append(hdr, make([]byte, rawMaxFrame+1)...))
	waitClosedByServer(t, bad2)

	assert.Eventually(t, func() bool { return rs.s.Stats().RPC.Transport.OversizeFrames == 2 },
		answerWait, 5*time.Millisecond, "oversize frames counted")
	stillServes(t, good, client+"-0")
}

func TestGarbageInsteadOfGreetingDisconnectsOnlyThatPeer(t *testing.T) {
	rs := startRawPeerServer(t)
	addr := rs.s.Addr().String()
	good := dialRawConn(t, "good", "tcp://"+addr)
	const client = "ffac75e5-edc1-41bb-b918-30d5e7ab1fe4"
	tsHello(t, good, rs.s, client)

	garbage, err := net.DialTimeout("tcp", addr, answerWait)
	require.NoError(t, err)
	t.Cleanup(func() { _ = garbage.Close() })
	_, err = garbage.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n" + string(make([]byte, 64))))
	require.NoError(t, err)

	// A peer that connects and never speaks must not hold the accept loop
	// meanwhile; it is dropped at the handshake deadline.
	silent, err := net.DialTimeout("tcp", addr, answerWait)
	require.NoError(t, err)
	t.Cleanup(func() { _ = silent.Close() })

	// A newcomer is served while both are still connected.
	late := dialRawConn(t, "late", "tcp://"+addr)
	tsHello(t, late, rs.s, "c2942943-450d-46ad-9297-bd43882370fb")
	stillServes(t, late, "c2942943-450d-46ad-9297-bd43882370fb-0")

	waitClosedByServer(t, garbage)
	waitClosedByServer(t, silent)
	assert.Eventually(t, func() bool { return rs.s.Stats().RPC.Transport.HandshakeFailures >= 2 },
		answerWait, 5*time.Millisecond, "failed handshakes counted")
	stillServes(t, good, client+"-0")
	assert.Empty(t, good.barrier(t))
}
