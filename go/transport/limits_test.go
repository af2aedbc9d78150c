package transport

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// partialFrame is the header of a last frame announcing size bytes and the
// first sent bytes of its body.
func partialFrame(size, sent int) []byte {
	b := make([]byte, 9, 9+sent)
	b[0] = flagLong
	binary.BigEndian.PutUint64(b[1:], uint64(size))
	return append(b, bytes.Repeat([]byte("p"), sent)...)
}

// recordWarnings gives opts a logger whose entries the hook keeps.
func recordWarnings(opts Options) (Options, *logtest.Hook) {
	l, hook := logtest.NewNullLogger()
	opts.Logger = l
	return opts, hook
}

// warnings returns the warnings whose message contains msg.
func warnings(hook *logtest.Hook, msg string) []*logrus.Entry {
	var out []*logrus.Entry
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.WarnLevel && strings.Contains(e.Message, msg) {
			out = append(out, e)
		}
	}
	return out
}

// requireWarned waits for a warning containing msg and checks that it
// names the peer's address and the limit.
func requireWarned(t *testing.T, hook *logtest.Hook, msg, limit string) *logrus.Entry {
	t.Helper()
	require.Eventually(t, func() bool { return len(warnings(hook, msg)) > 0 }, waitFor, tick, "no warning %q", msg)
	e := warnings(hook, msg)[0]
	assert.Contains(t, e.Data, "peer_addr")
	assert.Contains(t, e.Data, limit)
	return e
}

// echoes checks that d's message comes back.
func echoes(t *testing.T, d *dealerPipe, body []byte) {
	t.Helper()
	require.NoError(t, d.Send(body))
	got := d.recv(t)
	require.Len(t, got, 1)
	assert.True(t, bytes.Equal(body, got[0]), "echo differs")
}

func TestSilentConnectionsAfterHandshakeAreReaped(t *testing.T) {
	const silent = 300
	opts, hook := recordWarnings(Options{FirstMessageTimeout: 300 * time.Millisecond})
	r := echoRouter(t, opts)
	baseline := runtime.NumGoroutine()

	// A peer that said something first may then stay idle as long as it
	// likes.
	legit := dialPipe(t, r.Addr().String(), DealerOptions{})
	legit.waitConnected(t)
	echoes(t, legit, []byte("hello"))

	peers := make([]*rawPeer, 0, silent)
	for range silent {
		p := dialRaw(t, r.Addr(), "")
		// ZMTP PINGs are not messages: they do not keep a connection.
		require.NoError(t, p.zc.SendCmd(zmq4.CmdPing, []byte{0, 0}))
		peers = append(peers, p)
	}
	for _, p := range peers {
		waitClosed(t, p.nc)
	}
	require.Eventually(t, func() bool {
		st := r.Stats()
		return st.FirstMessageTimeouts == silent && st.Connections == 1 && st.Peers == 1
	}, waitFor, tick, "stats: %+v", r.Stats())
	require.Eventually(t, func() bool { return runtime.NumGoroutine() <= baseline+8 },
		waitFor, tick, "goroutines: %d, baseline %d", runtime.NumGoroutine(), baseline)

	// Every silent connection was closed after the legit peer's message:
	// it was idle for longer than the deadline and is still served.
	echoes(t, legit, []byte("still here"))
	assert.Equal(t, uint64(silent), r.Stats().FirstMessageTimeouts)
	requireWarned(t, hook, "sent no message after its handshake", "first_message_timeout")
	assert.Less(t, len(warnings(hook, "sent no message")), silent/2, "a flood of warnings is rate-limited")
}

func TestPartialFrameThenSilenceIsDroppedAndBudgetReturned(t *testing.T) {
	opts, hook := recordWarnings(Options{MaxFrameSize: 4 << 20, FrameProgressTimeout: 300 * time.Millisecond})
	r := echoRouter(t, opts)
	p := dialRaw(t, r.Addr(), "staller")
	require.NoError(t, p.zc.SendMsg(zmq4.NewMsgString("hello")))
	require.NoError(t, p.nc.SetReadDeadline(time.Now().Add(waitFor)))
	_, err := p.zc.RecvMsg()
	require.NoError(t, err)

	_, err = p.nc.Write(partialFrame(4<<20, 1<<20))
	require.NoError(t, err)
	waitClosed(t, p.nc)
	require.Eventually(t, func() bool {
		st := r.Stats()
		return st.StalledFrames == 1 && st.Connections == 0 && st.BufferedBytes == 0
	}, waitFor, tick, "stats: %+v", r.Stats())
	assert.Zero(t, r.Stats().FirstMessageTimeouts)
	requireWarned(t, hook, "stopped making progress", "frame_progress_timeout")
}

// pipeConn is a net.Conn reading from a pipe, for the guard alone.
type pipeConn struct {
	streamConn
	pr *io.PipeReader
}

func (c pipeConn) Read(p []byte) (int, error) { return c.pr.Read(p) }

func TestLargeFrameMemoryFollowsTheBytesReceived(t *testing.T) {
	pr, pw := io.Pipe()
	g := newGuardConn(pipeConn{pr: pr}, 64<<20, readBufferSize)
	g.st = stFlag
	g.establish(nil)
	budget := &byteBudget{limit: -1}
	g.budget = budget
	done := make(chan error, 1)
	go func() {
		_, err := g.readMessage()
		done <- err
	}()

	// 63 MiB announced, 1 MiB sent.
	_, err := pw.Write(partialFrame(63<<20, 1<<20))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return budget.used.Load() >= 1<<20 }, waitFor, tick)
	used := budget.used.Load()
	assert.LessOrEqual(t, used, int64(2<<20+growStep), "memory for a partial frame grows with what arrived")

	// The connection ends: the memory is returned.
	require.NoError(t, pw.CloseWithError(net.ErrClosed))
	select {
	case err := <-done:
		require.Error(t, err)
	case <-time.After(waitFor):
		t.Fatal("reader did not return")
	}
	assert.Zero(t, budget.used.Load())
	assert.Nil(t, g.scratch)

	// A whole large frame still arrives intact.
	pr, pw = io.Pipe()
	g = newGuardConn(pipeConn{pr: pr}, 64<<20, readBufferSize)
	g.st = stFlag
	g.establish(nil)
	g.budget = budget
	body := bytes.Repeat([]byte("0123456789abcdef"), 300<<10/16+7)
	go func() { _, _ = pw.Write(frame(0, body)) }()
	frames, err := g.readMessage()
	require.NoError(t, err)
	require.Len(t, frames, 1)
	assert.True(t, bytes.Equal(body, frames[0]))
	assert.Zero(t, budget.used.Load(), "a finished message leaves the budget")
}

func TestBufferBudgetClosesTheOffenderOnly(t *testing.T) {
	opts, hook := recordWarnings(Options{MaxFrameSize: 2 << 20, MaxBufferedBytes: 3 << 20, FrameProgressTimeout: -1})
	r := echoRouter(t, opts)
	good := dialPipe(t, r.Addr().String(), DealerOptions{})
	good.waitConnected(t)
	echoes(t, good, []byte("hello"))

	holder := dialRaw(t, r.Addr(), "holder")
	require.NoError(t, holder.zc.SendMsg(zmq4.NewMsgString("hello")))
	_, err := holder.nc.Write(partialFrame(2<<20, 3<<19))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return r.Stats().BufferedBytes >= 3<<19 }, waitFor, tick)

	offender := dialRaw(t, r.Addr(), "offender")
	require.NoError(t, offender.zc.SendMsg(zmq4.NewMsgString("hello")))
	_, _ = offender.nc.Write(partialFrame(2<<20, 2<<20-1000)) // may fail once closed
	waitClosed(t, offender.nc)
	require.Eventually(t, func() bool { return r.Stats().BufferBudgetExceeded == 1 }, waitFor, tick)
	requireWarned(t, hook, "buffered-bytes budget", "max_buffered_bytes")

	// Others keep working, the holder included.
	echoes(t, good, bytes.Repeat([]byte("g"), 200<<10))
	_, err = holder.nc.Write(bytes.Repeat([]byte("p"), 2<<20-3<<19))
	require.NoError(t, err)
	require.NoError(t, holder.nc.SetReadDeadline(time.Now().Add(waitFor)))
	msg, err := holder.zc.RecvMsg()
	require.NoError(t, err)
	assert.Equal(t, "hello", string(msg.Frames[0]))
	msg, err = holder.zc.RecvMsg()
	require.NoError(t, err)
	assert.Len(t, msg.Frames[0], 2<<20)
	assert.Zero(t, r.Stats().BufferedBytes)
}

func TestConnectionsBeyondTheMaximumAreClosed(t *testing.T) {
	const limit = 5
	opts, hook := recordWarnings(Options{MaxConnections: limit})
	r := echoRouter(t, opts)
	var held []*rawPeer
	for range limit {
		p := dialRaw(t, r.Addr(), "")
		require.NoError(t, p.zc.SendMsg(zmq4.NewMsgString("hello")))
		held = append(held, p)
	}
	require.Eventually(t, func() bool { return r.Stats().Peers == limit }, waitFor, tick)

	// The excess is accepted and closed at once.
	// (The reset can even reach the dialer before connect returns.)
	if extra, err := net.Dial("tcp", r.Addr().String()); err == nil {
		defer extra.Close()
		waitClosed(t, extra)
	}
	require.Eventually(t, func() bool { return r.Stats().ConnectionsRefused >= 1 }, waitFor, tick)
	requireWarned(t, hook, "closed a new connection", "max_connections")
	assert.Equal(t, limit, r.Stats().Connections)

	legit := dialPipe(t, r.Addr().String(), DealerOptions{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	// The excess goes away: the legit client gets in and is answered.
	for _, p := range held {
		require.NoError(t, p.nc.Close())
	}
	legit.waitConnected(t)
	echoes(t, legit, []byte("in"))
	assert.LessOrEqual(t, r.Stats().Connections, limit)
	assert.Zero(t, r.Stats().ConnectionsEvicted, "connections that spoke are never evicted")
}

// At the maximum, the oldest connection that has not said anything makes
// room for a new one: silent connections cannot keep out a client.
func TestSilentConnectionsMakeRoomAtTheMaximum(t *testing.T) {
	const limit = 5
	opts, hook := recordWarnings(Options{MaxConnections: limit, FirstMessageTimeout: -1})
	r := echoRouter(t, opts)
	talker := dialPipe(t, r.Addr().String(), DealerOptions{})
	talker.waitConnected(t)
	echoes(t, talker, []byte("hello"))
	var silent []*rawPeer
	for range limit - 1 {
		silent = append(silent, dialRaw(t, r.Addr(), ""))
	}
	require.Eventually(t, func() bool { return r.Stats().Connections == limit }, waitFor, tick)

	legit := dialPipe(t, r.Addr().String(), DealerOptions{})
	legit.waitConnected(t)
	echoes(t, legit, []byte("in"))
	waitClosed(t, silent[0].nc) // the oldest silent one made room
	assert.Equal(t, uint64(1), r.Stats().ConnectionsEvicted)
	assert.Zero(t, r.Stats().ConnectionsRefused)
	requireWarned(t, hook, "to make room", "max_connections")
	echoes(t, talker, []byte("still here"))
}

func TestDefaultMaxConnectionsKeepsAReserve(t *testing.T) {
	assert.Equal(t, 1024-102, maxConnectionsFor(1024))
	assert.Equal(t, 4096-409, maxConnectionsFor(4096))
	assert.Equal(t, 200-64, maxConnectionsFor(200), "a reserve of at least 64")
	assert.Equal(t, 50, maxConnectionsFor(100), "half when the reserve would take most")
	d := DefaultMaxConnections()
	assert.Positive(t, d)
	assert.Equal(t, d, Options{}.withDefaults().MaxConnections)
	assert.Equal(t, -1, Options{MaxConnections: -1}.withDefaults().MaxConnections)
}

// emfileListener fails one Accept with EMFILE when armed, keeping the
// connection it accepted for the next call.
type emfileListener struct {
	net.Listener
	armed atomic.Bool
	held  net.Conn
}

func (l *emfileListener) Accept() (net.Conn, error) {
	if c := l.held; c != nil {
		l.held = nil
		return c, nil
	}
	c, err := l.Listener.Accept()
	if err == nil && l.armed.CompareAndSwap(true, false) {
		l.held = c
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return c, err
}

// Out of descriptors, the oldest silent connection gives its descriptor
// back at once, instead of a client waiting in the backlog.
func TestOutOfDescriptorsEvictsTheOldestSilentConnection(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ln := &emfileListener{Listener: inner}
	var r *Router
	ready := make(chan struct{})
	r = NewRouter(ln, RouterHandler{OnMessage: func(p PeerID, f [][]byte) {
		<-ready
		_ = r.Send(p, f...)
	}}, Options{MaxConnections: -1, FirstMessageTimeout: -1})
	close(ready)
	defer r.Close()
	silent := []*rawPeer{dialRaw(t, r.Addr(), ""), dialRaw(t, r.Addr(), "")}
	require.Eventually(t, func() bool { return r.Stats().Connections == 2 }, waitFor, tick)

	ln.armed.Store(true)
	legit := dialPipe(t, r.Addr().String(), DealerOptions{})
	legit.waitConnected(t)
	echoes(t, legit, []byte("in"))
	waitClosed(t, silent[0].nc)
	require.Eventually(t, func() bool { return r.Stats().Connections == 2 }, waitFor, tick, "the newer silent one and the client")
	st := r.Stats()
	assert.Equal(t, uint64(1), st.AcceptErrors)
	assert.Equal(t, uint64(1), st.ConnectionsEvicted)
}

// A peer may stay idle between messages, also after a ZMTP PING: only a
// message that has begun has to make progress.
func TestIdleAfterPingIsNotAStall(t *testing.T) {
	const d = 300 * time.Millisecond
	r := echoRouter(t, Options{FirstMessageTimeout: d, FrameProgressTimeout: d})
	p := dialRaw(t, r.Addr(), "pinger")
	require.NoError(t, p.zc.SendMsg(zmq4.NewMsgString("hello")))
	require.NoError(t, p.nc.SetReadDeadline(time.Now().Add(waitFor)))
	_, err := p.zc.RecvMsg()
	require.NoError(t, err)
	require.NoError(t, p.zc.SendCmd(zmq4.CmdPing, []byte{0, 0}))
	cmd, err := p.zc.RecvCmd()
	require.NoError(t, err)
	require.Equal(t, zmq4.CmdPong, cmd.Name)

	// A silent connection opened now is reaped once the deadline has
	// passed: by then the pinger has been idle for longer than it.
	silent := dialRaw(t, r.Addr(), "")
	waitClosed(t, silent.nc)
	require.Eventually(t, func() bool { return r.Stats().FirstMessageTimeouts == 1 }, waitFor, tick)

	require.NoError(t, p.zc.SendMsg(zmq4.NewMsgString("still here")))
	msg, err := p.zc.RecvMsg()
	require.NoError(t, err)
	assert.Equal(t, "still here", string(msg.Frames[0]))
	assert.Zero(t, r.Stats().StalledFrames)
}
