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
	if o.Logger == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		o.Logger = l
	}
	return o
}
