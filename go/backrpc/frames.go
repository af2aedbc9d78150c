package backrpc

import (
	"errors"
	"fmt"
)

// Op is an operation code, sent as one ASCII decimal digit.
type Op uint8

// Operation codes of protocol 0.7.
const (
	OpHello         Op = 0 // client: id = client id, payload {"aliveTimeout":N}; server: id = server id
	OpRequest       Op = 1 // id = request id, payload [method, params]
	OpResponse      Op = 2 // id = request id, payload = result
	OpResponseError Op = 3 // id = request id, payload {"message","stack"}
	OpEvent         Op = 4 // id empty, payload = event body
	OpPing          Op = 5 // client → server, empty
	OpPong          Op = 6 // server → client, id = server id
	OpRetry         Op = 7 // server → client, id = request id, payload = ticks to wait
	OpClose         Op = 8 // client → server, empty
	OpAskHello      Op = 9 // server → client, id = server id
)

var opNames = [...]string{"hello", "request", "response", "responseError", "event", "ping", "pong", "retry", "close", "askHello"}

func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Valid reports whether o is one of the ten operation codes.
func (o Op) Valid() bool { return o <= OpAskHello }

// Message is one protocol message without its routing id.
type Message struct {
	Op      Op
	ID      string
	Payload []byte
}

// Decoding errors. A message that fails to decode is logged and dropped (or,
// when it is a request with an id, answered with responseError); it never
// ends a session.
var (
	ErrShortMessage = errors.New("backrpc: message has fewer than 3 frames")
	ErrBadOp        = errors.New("backrpc: op frame is not a decimal digit 0-9")
)

// Decode reads a message from its frames (routing id already removed). It
// accepts 3 or more frames and ignores everything after the third, as the
// reference does. On ErrShortMessage the returned Message still carries the
// op and the id when their frames were present and valid, so that a request
// missing its payload can be answered by id.
func Decode(frames [][]byte) (Message, error) {
	var m Message
	if len(frames) == 0 {
		return m, ErrShortMessage
	}
	op, ok := parseOp(frames[0])
	if !ok {
		return m, fmt.Errorf("%w: %q", ErrBadOp, truncate(frames[0], 16))
	}
	m.Op = op
	if len(frames) < 2 {
		return m, ErrShortMessage
	}
	m.ID = string(frames[1])
	if len(frames) < 3 {
		return m, ErrShortMessage
	}
	m.Payload = frames[2]
	return m, nil
}

func parseOp(b []byte) (Op, bool) {
	if len(b) != 1 || b[0] < '0' || b[0] > '9' {
		return 0, false
	}
	return Op(b[0] - '0'), true
}

// The op frames and the empty frame are shared by every encoded message;
// transport callers promise not to modify frames after Send.
var (
	opFrames   [10][]byte
	emptyFrame = []byte{}
)

func init() {
	for i := range opFrames {
		opFrames[i] = []byte{byte('0' + i)}
	}
}

// fourFrameClientOp reports the ops that the reference client sends with a
// trailing empty frame.
func fourFrameClientOp(o Op) bool {
	return o == OpHello || o == OpPing || o == OpClose || o == OpEvent
}

// EncodeClient returns the frames of a client → server message exactly as
// the reference client writes them: hello, ping, close and event carry a
// fourth, empty frame; request, response and responseError have three.
func EncodeClient(m Message) [][]byte {
	if fourFrameClientOp(m.Op) {
		return [][]byte{opFrame(m.Op), idFrame(m.ID), payloadFrame(m.Payload), emptyFrame}
	}
	return [][]byte{opFrame(m.Op), idFrame(m.ID), payloadFrame(m.Payload)}
}

// EncodeServer returns the frames of a server → client message without the
// routing id (the ROUTER adds it): always three frames.
func EncodeServer(m Message) [][]byte {
	return [][]byte{opFrame(m.Op), idFrame(m.ID), payloadFrame(m.Payload)}
}

func opFrame(o Op) []byte {
	if o.Valid() {
		return opFrames[o]
	}
	// Not reachable through this package; encode what was asked so that a
	// caller's bug shows on the wire instead of panicking.
	return []byte(fmt.Sprintf("%d", uint8(o)))
}

func idFrame(id string) []byte {
	if id == "" {
		return emptyFrame
	}
	return []byte(id)
}

func payloadFrame(p []byte) []byte {
	if p == nil {
		return emptyFrame
	}
	return p
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
