package transport

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ZMTP 3 frame flags (RFC 23).
const (
	flagMore    = 0x01
	flagLong    = 0x02
	flagCommand = 0x04

	greetingSize = 64
	// maxCommandSize bounds a command frame after the handshake: the only
	// command we act on is PING (a TTL and at most 16 bytes of context).
	maxCommandSize = 512
)

// ErrFrameTooLarge is returned by a guarded connection when the peer
// announces a frame larger than the configured maximum. The connection is
// unusable afterwards.
var ErrFrameTooLarge = errors.New("transport: frame exceeds the maximum frame size")

// ErrFirstMessageTimeout ends a Router connection that finished the
// handshake and did not begin a message within Options.FirstMessageTimeout.
var ErrFirstMessageTimeout = errors.New("transport: no message within the first-message timeout")

// ErrFrameStalled ends a connection whose message, once begun, went without
// a byte for Options.FrameProgressTimeout.
var ErrFrameStalled = errors.New("transport: message stopped making progress")

// ErrBufferBudget ends a connection whose unfinished message would take the
// bytes buffered by all of a Router's connections over
// Options.MaxBufferedBytes.
var ErrBufferBudget = errors.New("transport: buffered bytes over the shared budget")

// errBadCommand is returned for a command frame that is oversized or empty
// after the handshake.
var errBadCommand = errors.New("transport: malformed ZMTP command after handshake")

type readState uint8

const (
	stGreeting readState = iota // passing the 64-byte greeting through
	stFlag                      // next byte is a frame's flags
	stSize                      // inside the size field (1 or 8 bytes)
	stBody                      // inside a frame body
)

// guardConn is the net.Conn that zmq4.Open and zmq4.Conn read and write
// through. It exists to fix, below zmq4 and without forking it, what zmq4
// gets wrong for a server:
//
//   - zmq4 allocates whatever a frame header announces before reading the
//     body, so the guard parses the incoming byte stream itself and fails the
//     read while the size field is still incomplete from zmq4's point of view;
//   - zmq4 answers ZMTP PING from its read path by writing to the connection,
//     which would interleave with our writer goroutine's frames, so after the
//     handshake the guard removes command frames from the stream and hands
//     PINGs to the owner (who answers from the writer goroutine);
//   - reads are unbuffered in zmq4 (two or three read syscalls per frame), so
//     the guard reads through a bufio.Reader;
//   - zmq4 writes every frame with two writes, so after the handshake the
//     guard collects writes in a batch that the owner flushes once its send
//     queue is empty: small frames are copied into a pooled buffer (held only
//     while a batch is written, so an idle connection holds none), large
//     ones are written from their own memory with the batch (writev).
//
// Only one goroutine reads and only one goroutine writes after the
// handshake; during the handshake one goroutine does both.
type guardConn struct {
	net.Conn
	br *bufio.Reader

	// The batch being written, owned by the writing goroutine: wbuf is
	// a pooled buffer (nil between batches), wvec the segments ready to
	// go (parts of wbuf and large frames), wseg the start in wbuf of the
	// part not yet in wvec.
	wbuf []byte
	wvec net.Buffers
	wseg int

	// hs collects zmq4's handshake writes until it next reads: its
	// greeting and READY command go out in one write each instead of
	// one per header and body. early is a first message to send with the
	// READY command (the flush after the greeting's); hsSent counts the
	// handshake bytes written.
	hs     []byte
	early  []byte
	hsSent int

	maxFrame int64

	// established is set once zmq4.Open has returned: from then on commands
	// are filtered and writes are buffered.
	established atomic.Bool
	onPing      func(context []byte)

	// read state machine, owned by the reading goroutine.
	st        readState
	remain    int64 // bytes left in the greeting, size field or body
	sizeBuf   [8]byte
	sizeLen   int // bytes of the size field collected
	sizeWant  int // 1 or 8
	frameFlag byte

	// scratch collects a message's frames in readMessage; reserved is
	// what its growth for the message being read took from budget.
	scratch        []byte
	reserved       int64
	scratchCharged int
	budget         *byteBudget
	// abandoned is what the unfinished message held when the
	// connection failed.
	abandoned int64

	// Read deadlines after the handshake (see armReadDeadlines), owned
	// by the reading goroutine: started once a message has begun, mid
	// while one is being read, deadlineSet while the connection has a
	// read deadline.
	armed       bool
	progress    time.Duration
	started     bool
	mid         bool
	deadlineSet bool

	// cur, set on a CURVE connection, seals and opens every frame
	// (curve.go); nil for NULL security.
	cur *curveCodec
}

func newGuardConn(c net.Conn, maxFrame int64, readBuf int) *guardConn {
	g := &guardConn{
		Conn:     c,
		maxFrame: maxFrame,
		st:       stGreeting,
		remain:   greetingSize,
	}
	g.br = bufio.NewReaderSize(readSource{g}, readBuf)
	return g
}

// armReadDeadlines applies the read deadlines of an established
// connection, from its reading goroutine: the first message must begin
// within first (none when not positive), and a message that has begun
// must not go without a byte for progress (none when not positive).
// Between messages the connection may stay idle.
func (g *guardConn) armReadDeadlines(first, progress time.Duration) error {
	g.armed = true
	g.progress = progress
	if first > 0 && !g.started {
		if err := g.Conn.SetReadDeadline(time.Now().Add(first)); err != nil {
			return fmt.Errorf("set first-message deadline: %w", err)
		}
		g.deadlineSet = true
	}
	return nil
}

// readSource is what the guard's buffered reader reads from: the
// connection, with the read deadline adjusted before each read to where
// the reader is (before the first message, inside a message, between
// messages), so that it costs nothing while data arrives in the buffer.
type readSource struct{ g *guardConn }

func (s readSource) Read(p []byte) (int, error) {
	g := s.g
	if !g.armed {
		return g.Conn.Read(p)
	}
	if g.started {
		if g.mid && g.progress > 0 {
			if err := g.Conn.SetReadDeadline(time.Now().Add(g.progress)); err != nil {
				return 0, err
			}
			g.deadlineSet = true
		} else if g.deadlineSet {
			if err := g.Conn.SetReadDeadline(time.Time{}); err != nil {
				return 0, err
			}
			g.deadlineSet = false
		}
	}
	n, err := g.Conn.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		if !g.started {
			err = fmt.Errorf("%w: %w", ErrFirstMessageTimeout, err)
		} else {
			err = fmt.Errorf("%w for %s: %w", ErrFrameStalled, g.progress, err)
		}
	}
	return n, err
}

// byteBudget is the memory a Router's connections may hold together for
// unfinished messages.
type byteBudget struct {
	limit int64 // negative: unlimited
	used  atomic.Int64
}

// take reserves n bytes, or reports that they would go over the limit.
func (b *byteBudget) take(n int64) bool {
	for {
		cur := b.used.Load()
		if b.limit >= 0 && cur+n > b.limit {
			return false
		}
		if b.used.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

func (b *byteBudget) give(n int64) { b.used.Add(-n) }

// establish switches the connection to its post-handshake mode.
func (g *guardConn) establish(onPing func(context []byte)) {
	g.onPing = onPing
	g.established.Store(true)
}

// Write implements net.Conn. During the handshake it writes through (zmq4
// waits for the peer's answer after each write); afterwards it adds to the
// batch (zmq4 writes a PONG this way, from the writer goroutine).
func (g *guardConn) Write(p []byte) (int, error) {
	if !g.established.Load() {
		// zmq4 reads the peer's answer after each step: held until
		// that read (Read flushes), or until the handshake ends.
		g.hs = append(g.hs, p...)
		return len(p), nil
	}
	if err := g.bufAppend(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Frames of at least largeFrame bytes are not copied into the batch buffer
// but written from their own memory; a batch holding maxSegments segments
// is written out before it grows further.
const (
	largeFrame  = 2 << 10
	maxSegments = 256
)

var writeBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, writeBufferSize)
	return &b
}}

// bufAppend copies p into the batch, writing the batch out when the
// buffer is full.
func (g *guardConn) bufAppend(p []byte) error {
	for len(p) > 0 {
		if g.wbuf == nil {
			g.wbuf = *writeBufs.Get().(*[]byte)
		}
		if len(g.wbuf) == cap(g.wbuf) {
			if err := g.Flush(); err != nil {
				return err
			}
		}
		n := copy(g.wbuf[len(g.wbuf):cap(g.wbuf)], p)
		g.wbuf = g.wbuf[:len(g.wbuf)+n]
		p = p[n:]
	}
	return nil
}

// appendLarge adds p to the batch without copying it; p must stay
// unchanged until the next Flush (transport callers never modify frames
// they sent).
func (g *guardConn) appendLarge(p []byte) error {
	g.closeSegment()
	g.wvec = append(g.wvec, p)
	if len(g.wvec) >= maxSegments {
		return g.Flush()
	}
	return nil
}

func (g *guardConn) closeSegment() {
	if g.wseg < len(g.wbuf) {
		g.wvec = append(g.wvec, g.wbuf[g.wseg:len(g.wbuf):len(g.wbuf)])
		g.wseg = len(g.wbuf)
	}
}

// flushHandshake writes what the handshake has said so far.
func (g *guardConn) flushHandshake() error {
	if len(g.hs) == 0 {
		return nil
	}
	if g.early != nil && g.hsSent >= greetingSize {
		g.hs = append(g.hs, g.early...)
		g.early = nil
	}
	_, err := g.Conn.Write(g.hs)
	g.hsSent += len(g.hs)
	g.hs = g.hs[:0]
	return err
}

// Flush writes the batch: one write, or one writev when it holds large
// frames.
func (g *guardConn) Flush() error {
	g.closeSegment()
	var err error
	switch len(g.wvec) {
	case 0:
	case 1:
		_, err = g.Conn.Write(g.wvec[0])
	default:
		v := g.wvec // WriteTo consumes its receiver
		_, err = v.WriteTo(g.Conn)
	}
	clear(g.wvec) // drop the references to large frames
	g.wvec = g.wvec[:0]
	g.wbuf = g.wbuf[:0]
	g.wseg = 0
	return err
}

// release returns the batch buffer to the pool; call it after Flush.
func (g *guardConn) release() {
	if g.wbuf != nil {
		b := g.wbuf[:0]
		g.wbuf = nil
		writeBufs.Put(&b)
	}
	if cap(g.wvec) > maxSegments {
		g.wvec = nil
	}
}

// Read implements net.Conn for zmq4: it returns the incoming byte stream,
// less post-handshake command frames, and fails on an oversized frame before
// zmq4 has the complete size field.
func (g *guardConn) Read(p []byte) (int, error) {
	if err := g.flushHandshake(); err != nil {
		return 0, err
	}
	n := 0
	for n < len(p) {
		// Never block once we have something to return.
		if n > 0 && g.br.Buffered() == 0 {
			return n, nil
		}
		switch g.st {
		case stGreeting, stBody:
			want := int64(len(p) - n)
			if want > g.remain {
				want = g.remain
			}
			k, err := g.br.Read(p[n : n+int(want)])
			n += k
			g.remain -= int64(k)
			if g.remain == 0 {
				g.st = stFlag
			}
			if err != nil {
				return n, err
			}
		case stFlag:
			b, err := g.br.ReadByte()
			if err != nil {
				return n, err
			}
			if b&flagCommand != 0 && g.established.Load() {
				if err := g.swallowCommand(b); err != nil {
					return n, err
				}
				continue
			}
			g.frameFlag = b
			g.sizeLen = 0
			g.sizeWant = 1
			if b&flagLong != 0 {
				g.sizeWant = 8
			}
			g.st = stSize
			p[n] = b
			n++
		case stSize:
			b, err := g.br.ReadByte()
			if err != nil {
				return n, err
			}
			g.sizeBuf[g.sizeLen] = b
			g.sizeLen++
			if g.sizeLen == g.sizeWant {
				size, err := g.frameSize()
				if err != nil {
					return n, err
				}
				g.remain = size
				g.st = stBody
				if size == 0 {
					g.st = stFlag
				}
			}
			p[n] = b
			n++
		}
	}
	return n, nil
}

func (g *guardConn) frameSize() (int64, error) {
	var size uint64
	if g.sizeWant == 1 {
		size = uint64(g.sizeBuf[0])
	} else {
		size = binary.BigEndian.Uint64(g.sizeBuf[:])
	}
	if size > uint64(g.maxFrame) {
		return 0, fmt.Errorf("%w: peer announced %d bytes, limit %d", ErrFrameTooLarge, size, g.maxFrame)
	}
	return int64(size), nil
}

// swallowCommand consumes a command frame whose flag byte was already read.
func (g *guardConn) swallowCommand(flag byte) error {
	var size uint64
	if flag&flagLong != 0 {
		var b [8]byte
		for i := range b {
			c, err := g.br.ReadByte()
			if err != nil {
				return err
			}
			b[i] = c
		}
		size = binary.BigEndian.Uint64(b[:])
	} else {
		c, err := g.br.ReadByte()
		if err != nil {
			return err
		}
		size = uint64(c)
	}
	if size > maxCommandSize || size == 0 {
		return fmt.Errorf("%w: %d-byte command", errBadCommand, size)
	}
	body := make([]byte, size)
	if _, err := readFull(g.br, body); err != nil {
		return err
	}
	nameLen := int(body[0])
	if nameLen > len(body)-1 {
		return fmt.Errorf("%w: bad command name length", errBadCommand)
	}
	name := string(body[1 : 1+nameLen])
	if name == "PING" && g.onPing != nil {
		// ZMTP 3.1 PING: 2-byte TTL, then up to 16 bytes of context that
		// the PONG must echo.
		rest := body[1+nameLen:]
		var ctx []byte
		if len(rest) > 2 {
			ctx = rest[2:]
		}
		g.onPing(ctx)
	}
	// Every other command (PONG, SUBSCRIBE, ...) means nothing to a
	// ROUTER/DEALER pair after the handshake and is dropped.
	return nil
}

// maxKeptScratch bounds the read buffer a connection keeps between
// messages.
const maxKeptScratch = 64 << 10

// messageSlack is what a whole message may carry beyond the maximum frame
// size: the routing id, op, request id and the empty frame around a payload.
const messageSlack = 64 << 10

// maxFramesPerMessage bounds the frames of one message, so that a peer
// cannot grow a message without bound one empty frame at a time. The
// protocol uses at most five (routing id, op, id, payload, empty).
const maxFramesPerMessage = 1024

// errTooManyFrames is returned for a message of more than
// maxFramesPerMessage frames.
var errTooManyFrames = errors.New("transport: message has too many frames")

// readMessage reads one message after the handshake, straight from the
// buffered reader: zmq4's RecvMsg would parse the stream a second time and
// allocate once per frame plus the growth of its frame slice, which was a
// fifth of the CPU of a pipelined echo. Command frames (PING and the rest)
// are handled as in Read. The frames share one allocation and belong to the
// caller. One message is bounded by the maximum frame size plus
// messageSlack.
func (g *guardConn) readMessage() ([][]byte, error) {
	if g.cur != nil {
		return g.readCurveMessage()
	}
	frames, err := g.readFrames()
	if err != nil {
		// The connection is unusable: what it buffered goes now, not
		// when the connection is collected.
		g.scratch = nil
		g.abandoned = g.reserved
	}
	g.settle()
	return frames, err
}

// settle returns what the message just read (or abandoned) took from the
// budget: a finished message belongs to its receiver.
func (g *guardConn) settle() {
	g.mid = false
	if g.reserved != 0 {
		g.budget.give(g.reserved)
		g.reserved = 0
	}
	g.scratchCharged = 0
}

// charge takes n bytes from the budget for the message being read.
func (g *guardConn) charge(n int) error {
	if g.budget == nil {
		return nil
	}
	if !g.budget.take(int64(n)) {
		return fmt.Errorf("%w: a message needs %d more bytes with %d buffered by all connections, limit %d",
			ErrBufferBudget, n, g.budget.used.Load(), g.budget.limit)
	}
	g.reserved += int64(n)
	return nil
}

// refund gives back n bytes charged for the message being read.
func (g *guardConn) refund(n int) {
	if g.budget != nil && n > 0 {
		g.budget.give(int64(n))
		g.reserved -= int64(n)
	}
}

// resize replaces scratch by a buffer of capacity size holding the same
// bytes; the budget is charged for the new buffer (the old one stays
// charged until the copy is made).
func (g *guardConn) resize(size int) error {
	if err := g.charge(size); err != nil {
		return err
	}
	g.refund(g.scratchCharged)
	g.scratchCharged = size
	grown := make([]byte, len(g.scratch), size)
	copy(grown, g.scratch)
	g.scratch = grown
	return nil
}

// A frame body of more than growStep bytes that does not fit in scratch
// is read into chunks that grow with what arrives (from growStep, doubling
// up to maxChunk), never into memory of the size its header announces;
// once complete it is copied into scratch at its exact size.
const (
	growStep = 64 << 10
	maxChunk = 4 << 20
	// largeHeadroom is room left after a large frame for the small
	// frames that may follow it in the message (the empty delimiter).
	largeHeadroom = 512
)

// readLarge reads a frame body of n bytes onto the end of scratch.
func (g *guardConn) readLarge(n int) error {
	var chunks [][]byte
	charged := 0
	for got, size := 0, growStep; got < n; size = min(2*size, maxChunk) {
		c := min(size, n-got)
		if err := g.charge(c); err != nil {
			return err
		}
		charged += c
		chunk := make([]byte, c)
		if _, err := readFull(g.br, chunk); err != nil {
			return err
		}
		chunks = append(chunks, chunk)
		got += c
	}
	// The chunks become garbage as the frame is copied: the budget
	// holds one copy, so that a frame of the maximum size fits in a
	// budget of that size.
	g.refund(charged)
	if err := g.resize(len(g.scratch) + n + largeHeadroom); err != nil {
		return err
	}
	for _, c := range chunks {
		g.scratch = append(g.scratch, c...)
	}
	return nil
}

func (g *guardConn) readFrames() ([][]byte, error) {
	var sizes [8]int64
	spans := sizes[:0]
	var total int64
	g.scratch = g.scratch[:0]
	for {
		flag, err := g.br.ReadByte()
		if err != nil {
			return nil, err
		}
		g.mid = true
		if flag&flagCommand == 0 {
			g.started = true
		}
		if flag&flagCommand != 0 {
			if len(spans) > 0 {
				return nil, fmt.Errorf("%w: command inside a multipart message", errBadCommand)
			}
			if err := g.swallowCommand(flag); err != nil {
				return nil, err
			}
			g.mid = false // between messages again: idle is allowed
			continue
		}
		var size uint64
		if flag&flagLong != 0 {
			var b [8]byte
			if _, err := readFull(g.br, b[:]); err != nil {
				return nil, err
			}
			size = binary.BigEndian.Uint64(b[:])
		} else {
			c, err := g.br.ReadByte()
			if err != nil {
				return nil, err
			}
			size = uint64(c)
		}
		if size > uint64(g.maxFrame) {
			return nil, fmt.Errorf("%w: peer announced %d bytes, limit %d", ErrFrameTooLarge, size, g.maxFrame)
		}
		if uint64(total)+size > uint64(g.maxFrame)+messageSlack {
			return nil, fmt.Errorf("%w: message of over %d bytes, limit %d", ErrFrameTooLarge, uint64(total)+size, g.maxFrame+messageSlack)
		}
		if len(spans) == maxFramesPerMessage {
			return nil, errTooManyFrames
		}
		n := int(size)
		start, end := len(g.scratch), len(g.scratch)+n
		// The last frame (the payload) is the large one, and a large
		// message keeps this buffer.
		if end > cap(g.scratch) && n > growStep {
			err = g.readLarge(n)
		} else {
			if end > cap(g.scratch) {
				err = g.resize(max(min(2*cap(g.scratch), end+growStep), end, 512))
			}
			if err == nil {
				g.scratch = g.scratch[:end]
				_, err = readFull(g.br, g.scratch[start:])
			}
		}
		if err != nil {
			return nil, err
		}
		spans = append(spans, int64(n))
		total += int64(n)
		if flag&flagMore == 0 {
			break
		}
	}
	var slab []byte
	if cap(g.scratch) > maxKeptScratch {
		// A large message keeps the buffer it was read into: no
		// second copy, and no large buffer kept per connection (with
		// a thousand clients receiving large events, that was most
		// of a process's memory).
		slab = g.scratch[:total:total]
		g.scratch = nil
	} else {
		slab = make([]byte, total)
		copy(slab, g.scratch)
	}
	frames := make([][]byte, len(spans))
	off := int64(0)
	for i, n := range spans {
		frames[i] = slab[off : off+n : off+n]
		off += n
	}
	return frames, nil
}

// writeMessage encodes one message into the write buffer (ZMTP 3 frames,
// NULL security): zmq4's SendMsg makes two writes and a heap allocation per
// frame for the same bytes. The caller flushes.
func (g *guardConn) writeMessage(frames [][]byte) error {
	if g.cur != nil {
		return g.writeCurveMessage(frames)
	}
	var hdr [9]byte
	for i, f := range frames {
		var flag byte
		if i < len(frames)-1 {
			flag = flagMore
		}
		n := 2
		if len(f) > 255 {
			hdr[0] = flag | flagLong
			binary.BigEndian.PutUint64(hdr[1:], uint64(len(f)))
			n = 9
		} else {
			hdr[0] = flag
			hdr[1] = byte(len(f))
		}
		if err := g.bufAppend(hdr[:n]); err != nil {
			return err
		}
		var err error
		if len(f) >= largeFrame {
			err = g.appendLarge(f)
		} else {
			err = g.bufAppend(f)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func readFull(r *bufio.Reader, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k, err := r.Read(p[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
