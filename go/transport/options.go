// Package transport is huly-net's ZeroMQ socket layer: a ROUTER and a DEALER
// that speak ZMTP 3.x (RFC 23, RFC 37) with NULL security or CURVE security
// (RFC 25, RFC 26). The greeting and handshakes are this package's own
// (zmtp*.go, curve.go): they send what the protocol allows in as few writes
// as possible. After the handshake, messages are framed by this package
// (ZMTP 3 frames are a flag byte, a size and a body; with CURVE each frame
// is a sealed MESSAGE), because zmq4's SendMsg/RecvMsg allocate per frame,
// parse twice and write twice per frame, which kept the socket below half
// the speed of plain TCP. go-zeromq/zmq4 and libzmq stay the references in
// the tests: both directions are checked against them.
//
// zmq4's own sockets are not used because of what they do to a server: one
// socket-wide writer lock that a peer which stops reading holds forever,
// silent drops to unknown identities, a panic on an empty message, unbounded
// allocation from a frame header, an accept loop that a silent client stalls,
// and no reconnection worth the name. Here every peer has its own bounded send
// queue and writer goroutine, routing is a map lookup, a reconnecting peer
// with the same identity replaces the old connection, handshakes run with a
// deadline on the connection's own goroutine, and the guarded connection
// bounds frame sizes and batches writes.
package transport

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/curve"
)

// Defaults for Options.
const (
	DefaultMaxFrameSize     = 64 << 20
	DefaultHandshakeTimeout = 5 * time.Second
	DefaultWriteTimeout     = 10 * time.Second
	DefaultSendQueue        = 4096
	// DefaultFrameProgressTimeout is how long a frame (or message) that
	// has begun may go without a byte arriving.
	DefaultFrameProgressTimeout = 10 * time.Second
	// DefaultMaxBufferedBytes is the budget shared by a Router's
	// connections for messages they have begun and not finished.
	DefaultMaxBufferedBytes = 256 << 20

	// fdReserve is what the default MaxConnections leaves of the file
	// descriptor limit for everything that is not a peer connection
	// (listeners, files, outgoing connections, the connection accepted
	// only to be closed): at least minFDReserve, else a tenth.
	minFDReserve = 64

	readBufferSize  = 32 << 10
	writeBufferSize = 32 << 10 // the pooled batch buffer
)

// Errors returned to callers of Send.
var (
	ErrUnknownPeer  = errors.New("transport: unknown peer")
	ErrNoFrames     = errors.New("transport: message has no frames")
	ErrClosed       = errors.New("transport: socket closed")
	ErrNotConnected = errors.New("transport: not connected")
	ErrQueueFull    = errors.New("transport: peer send queue full; peer disconnected")
)

// Options are shared by Router and Dealer.
type Options struct {
	// MaxFrameSize bounds one incoming frame (and, with 64 KiB to spare
	// for the envelope, one message); a header announcing more closes the
	// connection. Default 64 MiB.
	MaxFrameSize int64
	// HandshakeTimeout bounds the ZMTP greeting and handshake. Default 5s.
	HandshakeTimeout time.Duration
	// WriteTimeout bounds one write to a peer; a peer that does not take our
	// bytes within it is disconnected. Default 10s.
	WriteTimeout time.Duration
	// SendQueue is the number of messages queued per peer; when it is full
	// the peer is disconnected (it has stopped reading). Default 4096.
	SendQueue int
	// MaxConnections bounds a Router's open connections (handshaking or
	// established). At the limit, a new connection takes the place of
	// the oldest one that has not begun a message yet, or, when every
	// connection has, is closed as soon as it is accepted. Default: the process's file descriptor limit less a
	// reserve (a tenth, at least 64), so that the server keeps the
	// descriptors to accept, answer and close. Negative: no limit.
	MaxConnections int
	// FirstMessageTimeout bounds the time from the end of a Router
	// connection's handshake to the start of its first message (a hello:
	// a Go peer sends it with the handshake, a TypeScript peer right
	// after); a connection that stays silent is closed. Default: the
	// handshake timeout. Negative: no deadline.
	FirstMessageTimeout time.Duration
	// FrameProgressTimeout bounds the time a Router connection may go
	// without a byte in the middle of a message; a message that stops
	// making progress is dropped with its connection. Default 10s.
	// Negative: no deadline.
	FrameProgressTimeout time.Duration
	// MaxBufferedBytes bounds the memory a Router's connections hold
	// together for messages they have begun and not finished (memory
	// grows with the bytes received, not with the size announced); the
	// connection whose message would go over it is closed. Default 256
	// MiB. Negative: no limit.
	MaxBufferedBytes int64
	// Logger receives connection-level events. Default: a discarding logger.
	Logger logrus.FieldLogger

	// CURVE security (ZMTP-CURVE, RFC 25/26). Router: CurveServer is the
	// server's long-term key pair and turns CURVE on; CurveAuthenticate,
	// when set, decides on each client's long-term public key (its error
	// text goes to the client as the ERROR reason; nil accepts every key);
	// CurveAllowNull, when set, admits NULL-security peers from the
	// addresses it approves (nil: a CURVE Router refuses every NULL peer).
	// Dealer: CurveClient is the client's key pair and turns CURVE on,
	// CurveServerKey the server's public key.
	CurveServer       *curve.KeyPair
	CurveAuthenticate func(ctx context.Context, clientPublic curve.Key, remote net.Addr) error
	CurveAllowNull    func(remote net.Addr) bool
	CurveClient       *curve.KeyPair
	CurveServerKey    curve.Key
}

func (o Options) withDefaults() Options {
	if o.MaxFrameSize <= 0 {
		o.MaxFrameSize = DefaultMaxFrameSize
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.SendQueue <= 0 {
		o.SendQueue = DefaultSendQueue
	}
	if o.MaxConnections == 0 {
		o.MaxConnections = DefaultMaxConnections()
	}
	if o.FirstMessageTimeout == 0 {
		o.FirstMessageTimeout = o.HandshakeTimeout
	}
	if o.FrameProgressTimeout == 0 {
		o.FrameProgressTimeout = DefaultFrameProgressTimeout
	}
	if o.MaxBufferedBytes == 0 {
		o.MaxBufferedBytes = DefaultMaxBufferedBytes
	}
	if o.Logger == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		o.Logger = l
	}
	return o
}

// DefaultMaxConnections is the default of Options.MaxConnections: the soft
// limit on open files (which the Go runtime raises to the hard limit at
// start) less a reserve of a tenth, at least 64. When the limit cannot be
// read, or is too small to leave a reserve, it is half the limit or 64.
func DefaultMaxConnections() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == 0 {
		return minFDReserve
	}
	return maxConnectionsFor(lim.Cur)
}

func maxConnectionsFor(nofile uint64) int {
	const ceiling = 1 << 30
	if nofile > ceiling { // RLIM_INFINITY and friends
		nofile = ceiling
	}
	reserve := max(nofile/10, minFDReserve)
	if nofile < 2*reserve {
		return max(int(nofile/2), 1)
	}
	return int(nofile - reserve)
}
