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
	g := newGuardConn(streamConn{r: iotest.OneByteReader(bytes.NewReader(stream))}, 1<<20, 16)
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
	g := newGuardConn(streamConn{r: bytes.NewReader(stream)}, 1<<20, 4096)
	g.establish(nil)
	got, err := io.ReadAll(g)
	require.ErrorIs(t, err, ErrFrameTooLarge)
	// zmq4 never saw the full 9-byte header, so it never allocated.
	assert.Less(t, len(got), greetingSize+9)
}

func TestGuardRejectsHugeCommand(t *testing.T) {
	stream := append(bytes.Repeat([]byte{0}, greetingSize), command("PING", make([]byte, 1000))...)
	g := newGuardConn(streamConn{r: bytes.NewReader(stream)}, 1<<20, 4096)
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
		c, err := handshake(context.Background(), nc, hsParams{socketType: socketDealer, opts: Options{}.withDefaults()})
		peer <- result{c, err}
	}()
	nc, err := ln.Accept()
	require.NoError(t, err)
	counted := &writeCounter{Conn: nc}
	srv, err := handshake(context.Background(), counted, hsParams{server: true, socketType: socketRouter, opts: Options{}.withDefaults()})
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

// FuzzGuardedRead feeds arbitrary bytes, after a valid greeting and READY
// (read through zmq4's handshake), to the guarded message reader: never a
// panic, never a frame over the limit.
func FuzzGuardedRead(f *testing.F) {
	f.Add(frame(0, []byte("hello")))
	f.Add(append(frame(flagMore, []byte("1")), frame(0, []byte(`["al",{}]`))...))
	f.Add(command("PING", []byte{0, 1, 'x'}))
	f.Add([]byte{flagLong, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{flagCommand | flagLong, 0, 0, 0, 0, 0, 0, 0x10, 0})
	f.Add(append(frame(flagMore, []byte("a")), command("PING", []byte{0, 0})...))
	const limit = 4096
	f.Fuzz(func(t *testing.T, data []byte) {
		in := append(routerPreamble(), data...)
		g := newGuardConn(streamConn{r: bytes.NewReader(in)}, limit, 512)
		_, err := zmq4.Open(g, nullSecurity(), zmq4.Dealer, nil, false, nil)
		require.NoError(t, err)
		g.establish(func([]byte) {})
		for i := 0; i < 1000; i++ {
			frames, err := g.readMessage()
			if err != nil {
				return
			}
			require.LessOrEqual(t, len(frames), maxFramesPerMessage)
			for _, fr := range frames {
				require.LessOrEqual(t, len(fr), limit)
			}
		}
	})
}

// recordingConn records what is written to it.
type recordingConn struct {
	streamConn
	buf *bytes.Buffer
}

func (c recordingConn) Write(p []byte) (int, error) { return c.buf.Write(p) }

// FuzzCodecMatchesZmq4 checks our framing against zmq4's in both directions:
// what zmq4's SendMsg writes, readMessage reads back; what writeMessage
// writes, zmq4's RecvMsg reads back.
func FuzzCodecMatchesZmq4(f *testing.F) {
	f.Add([]byte("1\x00id-0\x00[\"al\",{}]\x00"), byte(0))
	f.Add(bytes.Repeat([]byte("x"), 700), byte(3))
	f.Add([]byte{}, byte(1))
	f.Fuzz(func(t *testing.T, data []byte, split byte) {
		// Cut data into 1..4 frames (some empty, some over 255 bytes).
		parts := bytes.SplitN(data, []byte{0}, int(split%4)+1)
		var frames [][]byte
		for _, p := range parts {
			frames = append(frames, append([]byte{}, p...))
		}

		// zmq4 → ours.
		var wire bytes.Buffer
		zc, err := zmq4.Open(recordingConn{streamConn{r: bytes.NewReader(routerPreamble())}, &wire}, nullSecurity(), zmq4.Dealer, nil, false, nil)
		require.NoError(t, err)
		wire.Reset()
		require.NoError(t, zc.SendMsg(zmq4.NewMsgFrom(frames...)))
		g := newGuardConn(streamConn{r: bytes.NewReader(wire.Bytes())}, 1<<20, 512)
		g.st = stFlag
		g.establish(nil)
		got, err := g.readMessage()
		require.NoError(t, err)
		require.Equal(t, len(frames), len(got))
		for i := range frames {
			assert.Equal(t, frames[i], got[i])
		}

		// ours → zmq4.
		var out bytes.Buffer
		w := newGuardConn(recordingConn{streamConn{}, &out}, 1<<20, 512)
		require.NoError(t, w.writeMessage(frames))
		require.NoError(t, w.Flush())
		zr, err := zmq4.Open(streamConn{r: bytes.NewReader(append(routerPreamble(), out.Bytes()...))}, nullSecurity(), zmq4.Dealer, nil, false, nil)
		require.NoError(t, err)
		msg, err := zr.RecvMsg()
		require.NoError(t, err)
		require.Equal(t, len(frames), len(msg.Frames))
		for i := range frames {
			assert.Equal(t, frames[i], msg.Frames[i])
		}
	})
}

func TestMessageSizeAndFrameCountBounds(t *testing.T) {
	var stream []byte
	for i := 0; i < maxFramesPerMessage+1; i++ {
		stream = append(stream, frame(flagMore, nil)...)
	}
	g := newGuardConn(streamConn{r: bytes.NewReader(stream)}, 1<<20, 4096)
	g.st = stFlag
	g.establish(nil)
	_, err := g.readMessage()
	assert.ErrorIs(t, err, errTooManyFrames)

	// Many frames each under the limit, together far over it.
	big := bytes.Repeat([]byte("y"), 1000)
	stream = nil
	for i := 0; i < 200; i++ {
		stream = append(stream, frame(flagMore, big)...)
	}
	g = newGuardConn(streamConn{r: bytes.NewReader(stream)}, 1024, 4096)
	g.st = stFlag
	g.establish(nil)
	_, err = g.readMessage()
	assert.ErrorIs(t, err, ErrFrameTooLarge)
}

// The batch writer copies small frames, references large ones and writes
// out when its buffer or its segment list is full: whatever the mix, the
// bytes on the wire are the frames in order.
func TestBatchWriterKeepsOrderAcrossBufferAndLargeFrames(t *testing.T) {
	var out bytes.Buffer
	w := newGuardConn(recordingConn{streamConn{}, &out}, 1<<30, 512)
	var want bytes.Buffer
	add := func(frames ...[]byte) {
		require.NoError(t, w.writeMessage(frames))
		for i, f := range frames {
			flags := byte(0)
			if i < len(frames)-1 {
				flags = flagMore
			}
			want.Write(frame(flags, f))
		}
	}
	sized := func(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }
	add([]byte("1"), sized(largeFrame, 'a'), []byte("x"))
	add(sized(70000, 'b'))
	for i := 0; i < 2*maxSegments; i++ { // forces flushes on the segment bound
		add([]byte{byte(i)}, sized(largeFrame+i, byte(i)))
	}
	for i := 0; i < 3000; i++ { // 45 KB of small frames: the buffer fills
		add([]byte("2"), []byte("id-0123456789"))
	}
	require.NoError(t, w.Flush())
	w.release()
	assert.True(t, bytes.Equal(want.Bytes(), out.Bytes()), "wire bytes differ (%d vs %d bytes)", out.Len(), want.Len())
	assert.Nil(t, w.wbuf, "released")
}
