package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"testing/iotest"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// streamConn is a net.Conn that reads from r and discards writes: enough for
// the guard and zmq4's decoder, which never look at the address or deadlines.
type streamConn struct {
	r io.Reader
	net.Conn
}

func (c streamConn) Read(p []byte) (int, error)             { return c.r.Read(p) }
func (c streamConn) Write(p []byte) (int, error)            { return len(p), nil }
func (c streamConn) Close() error                           { return nil }
func (c streamConn) SetDeadline(time.Time) error            { return nil }
func (c streamConn) SetWriteDeadline(time.Time) error       { return nil }
func (c streamConn) SetReadDeadline(time.Time) error        { return nil }
func (c streamConn) RemoteAddr() net.Addr                   { return &net.TCPAddr{} }
func (c streamConn) LocalAddr() net.Addr                    { return &net.TCPAddr{} }
func (c streamConn) SetKeepAlive(bool) error                { return nil }
func (c streamConn) SetKeepAlivePeriod(time.Duration) error { return nil }

func frame(flags byte, body []byte) []byte {
	if len(body) > 255 {
		b := make([]byte, 9, 9+len(body))
		b[0] = flags | flagLong
		binary.BigEndian.PutUint64(b[1:], uint64(len(body)))
		return append(b, body...)
	}
	return append([]byte{flags, byte(len(body))}, body...)
}

func command(name string, data []byte) []byte {
	body := append([]byte{byte(len(name))}, name...)
	return frame(flagCommand, append(body, data...))
}

// greeting and READY of a NULL-security ROUTER, as a peer would send them.
func routerPreamble() []byte {
	g := make([]byte, greetingSize)
	g[0], g[9], g[10], g[11] = 0xff, 0x7f, 3, 0
	copy(g[12:], "NULL")
	prop := func(k, v string) []byte {
		b := append([]byte{byte(len(k))}, k...)
		var l [4]byte
		binary.BigEndian.PutUint32(l[:], uint32(len(v)))
		return append(append(b, l[:]...), v...)
	}
	return append(g, command("READY", prop("Socket-Type", "ROUTER"))...)
}

func TestGuardStripsCommandsAndPassesFrames(t *testing.T) {
	greeting := bytes.Repeat([]byte{9}, greetingSize)
	var stream, want []byte
	stream = append(stream, greeting...)
	want = append(want, greeting...)
	for _, f := range [][]byte{
		frame(flagMore, []byte("1")),
		frame(flagMore, bytes.Repeat([]byte("L"), 300)), // long size field
		frame(0, nil), // empty frame
	} {
		stream = append(stream, f...)
		want = append(want, f...)
	}
	stream = append(stream, command("PING", []byte{0, 10, 'a', 'b'})...)
	stream = append(stream, command("PONG", nil)...)
	last := frame(0, []byte("after"))
	stream = append(stream, last...)
	want = append(want, last...)

	// One byte at a time: the state machine must not depend on chunking.
	g := newGuardConn(streamConn{r: iotest.OneByteReader(bytes.NewReader(stream))}, 1<<20, 16, 16)
	head := make([]byte, greetingSize)
	_, err := io.ReadFull(g, head)
	require.NoError(t, err)
	var pings [][]byte
	g.establish(func(ctx []byte) { pings = append(pings, ctx) })
	rest, err := io.ReadAll(g)
	require.NoError(t, err)
	assert.Equal(t, want, append(head, rest...))
	assert.Equal(t, [][]byte{[]byte("ab")}, pings)
}

func TestGuardStopsOversizeBeforeTheSizeIsComplete(t *testing.T) {
	hdr := make([]byte, 9)
	hdr[0] = flagLong
	binary.BigEndian.PutUint64(hdr[1:], 1<<40)
	stream := append(bytes.Repeat([]byte{0}, greetingSize), hdr...)
	g := newGuardConn(streamConn{r: bytes.NewReader(stream)}, 1<<20, 4096, 16)
	g.establish(nil)
	got, err := io.ReadAll(g)
	require.ErrorIs(t, err, ErrFrameTooLarge)
	// zmq4 never saw the full 9-byte header, so it never allocated.
	assert.Less(t, len(got), greetingSize+9)
}

func TestGuardRejectsHugeCommand(t *testing.T) {
	stream := append(bytes.Repeat([]byte{0}, greetingSize), command("PING", make([]byte, 1000))...)
	g := newGuardConn(streamConn{r: bytes.NewReader(stream)}, 1<<20, 4096, 16)
	g.establish(nil)
	_, err := io.ReadAll(g)
	assert.True(t, errors.Is(err, errBadCommand), "got %v", err)
}

// writeCounter counts Write calls on the underlying connection.
type writeCounter struct {
	net.Conn
	writes int
}

func (w *writeCounter) Write(p []byte) (int, error) {
	w.writes++
	return w.Conn.Write(p)
}

func TestQueuedMessagesGoOutInOneWrite(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	type result struct {
		c   *conn
		err error
	}
	peer := make(chan result, 1)
	go func() {
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			peer <- result{err: err}
			return
		}
		c, err := handshake(context.Background(), nc, zmq4.Dealer, nil, false, Options{}.withDefaults())
		peer <- result{c, err}
	}()
	nc, err := ln.Accept()
	require.NoError(t, err)
	counted := &writeCounter{Conn: nc}
	srv, err := handshake(context.Background(), counted, zmq4.Router, nil, true, Options{}.withDefaults())
	require.NoError(t, err)
	cli := <-peer
	require.NoError(t, cli.err)
	defer cli.c.shutdown(ErrClosed)
	defer srv.shutdown(ErrClosed)

	handshakeWrites := counted.writes
	for i := 0; i < 100; i++ {
		require.NoError(t, srv.enqueue([][]byte{[]byte("2"), []byte("id"), []byte(`"ok"`)}))
	}
	go srv.writeLoop() // the writer finds 100 messages waiting
	got := make(chan int, 1)
	go func() {
		n := 0
		_ = cli.c.readLoop(func([][]byte) {
			if n++; n == 100 {
				got <- n
			}
		})
	}()
	select {
	case n := <-got:
		assert.Equal(t, 100, n)
	case <-time.After(waitFor):
		t.Fatal("messages not delivered")
	}
	assert.Equal(t, 1, counted.writes-handshakeWrites, "100 queued messages, 400 frames, one write")
}

// FuzzGuardedRead feeds arbitrary bytes, after a valid greeting and READY,
// through the guard and zmq4's decoder: never a panic, never a frame over
// the limit.
func FuzzGuardedRead(f *testing.F) {
	f.Add(frame(0, []byte("hello")))
	f.Add(append(frame(flagMore, []byte("1")), frame(0, []byte(`["al",{}]`))...))
	f.Add(command("PING", []byte{0, 1, 'x'}))
	f.Add([]byte{flagLong, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{flagCommand | flagLong, 0, 0, 0, 0, 0, 0, 0x10, 0})
	const limit = 4096
	f.Fuzz(func(t *testing.T, data []byte) {
		in := append(routerPreamble(), data...)
		g := newGuardConn(streamConn{r: bytes.NewReader(in)}, limit, 512, 512)
		zc, err := zmq4.Open(g, nullSecurity(), zmq4.Dealer, nil, false, nil)
		require.NoError(t, err)
		g.establish(func([]byte) {})
		for i := 0; i < 1000; i++ {
			msg, err := zc.RecvMsg()
			if err != nil {
				return
			}
			for _, fr := range msg.Frames {
				require.LessOrEqual(t, len(fr), limit)
			}
		}
	})
}
