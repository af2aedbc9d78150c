// Package transport is huly-net's ZeroMQ socket layer: a ROUTER and a DEALER
// that speak ZMTP 3 with NULL security through go-zeromq/zmq4's connection
// level: zmq4.Open performs the greeting and the NULL handshake over a
// guarded net.Conn of ours; after it, messages are framed by this package
// (ZMTP 3 frames are a flag byte, a size and a body), because zmq4's
// SendMsg/RecvMsg allocate per frame, parse twice and write twice per frame,
// which kept the socket below half the speed of plain TCP. zmq4 stays the
// reference codec in the tests: both directions are checked against it.
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
	"errors"
	"io"
	"time"

	"github.com/sirupsen/logrus"
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
