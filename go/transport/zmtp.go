package transport

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/huly-net/huly-net/go/curve"
)

// The ZMTP 3.x greeting and handshake commands (ZeroMQ RFC 23, RFC 37),
// written for this package's two socket types: a ROUTER that accepts and a
// DEALER that connects. Both sides send what they can without waiting: a
// DEALER with NULL security sends its greeting, READY and first message in
// one write; a ROUTER sends its greeting (and, with NULL security, READY) as
// soon as it accepts.

// Mechanism names as the greeting carries them.
const (
	MechanismNull  = "NULL"
	MechanismCurve = "CURVE"
)

// Socket types as the READY metadata carries them.
const (
	socketDealer = "DEALER"
	socketRouter = "ROUTER"
)

const (
	// signatureSize is the part of the greeting a peer may send before
	// knowing anything about us: signature and major version.
	signatureSize = 11
	// maxHandshakeCommand bounds a command during the handshake: READY
	// and INITIATE carry metadata (socket type, identity), never more
	// than a few hundred bytes from a sane peer.
	maxHandshakeCommand = 8 << 10
	// maxIdentity is the longest routing id ZMTP allows.
	maxIdentity = 255
)

// PeerInfo describes an established connection's peer.
type PeerInfo struct {
	// Mechanism is MechanismNull or MechanismCurve.
	Mechanism string
	// PublicKey is the peer's long-term CURVE key (the zero key for NULL).
	PublicKey curve.Key
	// SocketType is the peer's announced socket type ("DEALER", "ROUTER").
	SocketType string
	// Identity is the routing id the peer announced (may be empty).
	Identity string
	// Remote is the peer's address.
	Remote net.Addr
	// Minor is the peer's ZMTP minor version (0 for ZMTP 3.0, 1 for 3.1).
	Minor byte
}

// Handshake errors. A peer's ERROR command is a *RefusedError, which
// matches ErrRefused with errors.Is.
var (
	ErrRefused           = errors.New("transport: peer refused the handshake")
	ErrMechanismMismatch = errors.New("transport: security mechanism mismatch")
	// ErrPeerRejected matches the error of a handshake this side refused
	// (unknown key, wrong socket type, identity in use).
	ErrPeerRejected = errors.New("transport: peer rejected")
	errProtocol     = errors.New("transport: ZMTP protocol violation")
)

// rejectError is a refusal of ours; its text is the ERROR reason.
type rejectError struct{ reason string }

func (e *rejectError) Error() string        { return e.reason }
func (e *rejectError) Is(target error) bool { return target == ErrPeerRejected }

// RefusedError is a peer's ZMTP ERROR command: the reason it gave for
// refusing the handshake (for a CURVE server, usually why our key is not
// accepted).
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string {
	return "peer refused the handshake: " + e.Reason
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errProtocol, fmt.Sprintf(format, args...))
}

// appendGreeting appends a ZMTP 3.1 greeting.
func appendGreeting(dst []byte, mechanism string, asServer bool) []byte {
	var g [greetingSize]byte
	g[0], g[9], g[10], g[11] = 0xff, 0x7f, 3, 1
	copy(g[12:32], mechanism)
	if asServer {
		g[32] = 1
	}
	return append(dst, g[:]...)
}

type greeting struct {
	minor     byte
	mechanism string
	asServer  bool
}

// parseGreeting checks a peer's 64-byte greeting. Any ZMTP 3.x (and later)
// peer is accepted; older ones cannot carry a mechanism.
func parseGreeting(b []byte) (greeting, error) {
	if b[0] != 0xff || b[9]&1 == 0 {
		return greeting{}, protoErr("not a ZMTP peer (bad greeting signature)")
	}
	if b[10] < 3 {
		return greeting{}, protoErr("ZMTP %d.x peer; 3.0 or later required", b[10])
	}
	mech := b[12:32]
	if i := bytes.IndexByte(mech, 0); i >= 0 {
		mech = mech[:i]
	}
	g := greeting{minor: b[11], asServer: b[32] == 1}
	switch string(mech) { // no allocation for the known names
	case MechanismNull:
		g.mechanism = MechanismNull
	case MechanismCurve:
		g.mechanism = MechanismCurve
	default:
		g.mechanism = strings.ToValidUTF8(string(mech), "?")
	}
	if b[10] > 3 {
		g.minor = 1 // a later major version speaks 3.1 to us
	}
	return g, nil
}

// appendCommand appends a command frame: name and data.
func appendCommand(dst []byte, name string, data ...[]byte) []byte {
	n := 1 + len(name)
	for _, d := range data {
		n += len(d)
	}
	if n > 255 {
		dst = append(dst, flagCommand|flagLong)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	} else {
		dst = append(dst, flagCommand, byte(n))
	}
	dst = append(dst, byte(len(name)))
	dst = append(dst, name...)
	for _, d := range data {
		dst = append(dst, d...)
	}
	return dst
}

// appendProperty appends one metadata property (RFC 23: a 1-byte name
// length, the name, a 4-byte value length, the value).
func appendProperty(dst []byte, name string, value []byte) []byte {
	dst = append(dst, byte(len(name)))
	dst = append(dst, name...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(value)))
	return append(dst, value...)
}

// appendMetadata appends the properties of our READY or INITIATE.
func appendMetadata(dst []byte, socketType string, identity []byte) []byte {
	dst = appendProperty(dst, "Socket-Type", []byte(socketType))
	return appendProperty(dst, "Identity", identity)
}

// parseMetadata reads the properties a peer sent: socket type and
// identity; others are ignored.
func parseMetadata(b []byte, info *PeerInfo) error {
	for len(b) > 0 {
		nl := int(b[0])
		if nl == 0 || 1+nl+4 > len(b) {
			return protoErr("malformed metadata")
		}
		name := b[1 : 1+nl]
		vl := binary.BigEndian.Uint32(b[1+nl:])
		b = b[1+nl+4:]
		if uint64(vl) > uint64(len(b)) {
			return protoErr("malformed metadata value")
		}
		value := b[:vl]
		b = b[vl:]
		switch {
		case asciiEqualFold(name, "Socket-Type"):
			switch string(value) {
			case socketDealer:
				info.SocketType = socketDealer
			case socketRouter:
				info.SocketType = socketRouter
			default:
				info.SocketType = strings.ToValidUTF8(string(value), "?")
			}
		case asciiEqualFold(name, "Identity"):
			if len(value) > maxIdentity {
				return protoErr("identity of %d bytes", len(value))
			}
			info.Identity = string(value)
		}
	}
	return nil
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c, d := b[i], s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// checkPeerType validates the peer's socket type against ours: this
// package pairs DEALER with ROUTER only.
func checkPeerType(ours string, info *PeerInfo) error {
	want := socketRouter
	if ours == socketRouter {
		want = socketDealer
	}
	if info.SocketType != want {
		return &rejectError{fmt.Sprintf("socket type %q cannot talk to a %s", info.SocketType, ours)}
	}
	if ours == socketRouter && info.Identity != "" && info.Identity[0] == 0 {
		// Ids starting with a zero byte are the ones a ROUTER makes up
		// for anonymous peers (as libzmq reserves them); a peer
		// claiming one could take another peer's replies.
		return &rejectError{"identity starting with a zero byte is reserved"}
	}
	return nil
}

// appendError appends an ERROR command; the reason is cut to 255 bytes.
func appendError(dst []byte, reason string) []byte {
	if len(reason) > 255 {
		reason = reason[:255]
	}
	return appendCommand(dst, "ERROR", []byte{byte(len(reason))}, []byte(reason))
}

// parseError reads an ERROR command's data into a *RefusedError.
func parseError(data []byte) error {
	if len(data) == 0 || int(data[0]) > len(data)-1 {
		return &RefusedError{Reason: "(malformed ERROR command)"}
	}
	return &RefusedError{Reason: strings.ToValidUTF8(string(data[1:1+int(data[0])]), "?")}
}

// peekCommand returns the next command in br without consuming it: its
// name and data, valid until the next read, and the bytes to Discard when
// done. A data frame, an oversized or malformed command is an error.
func peekCommand(br *bufio.Reader, limit int) (name string, data []byte, n int, err error) {
	hdr, err := br.Peek(2)
	if err != nil {
		return "", nil, 0, err
	}
	if hdr[0]&flagCommand == 0 {
		return "", nil, 0, protoErr("data frame during the handshake")
	}
	var size uint64
	hl := 2
	if hdr[0]&flagLong != 0 {
		h, err := br.Peek(9)
		if err != nil {
			return "", nil, 0, err
		}
		size = binary.BigEndian.Uint64(h[1:])
		hl = 9
	} else {
		size = uint64(hdr[1])
	}
	if size == 0 || size > uint64(limit) || size > uint64(br.Size()-hl) {
		return "", nil, 0, protoErr("handshake command of %d bytes", size)
	}
	all, err := br.Peek(hl + int(size))
	if err != nil {
		return "", nil, 0, err
	}
	body := all[hl:]
	nl := int(body[0])
	if nl == 0 || nl > len(body)-1 {
		return "", nil, 0, protoErr("malformed command name")
	}
	switch string(body[1 : 1+nl]) { // known names without allocation
	case "READY":
		name = "READY"
	case "ERROR":
		name = "ERROR"
	case "HELLO":
		name = "HELLO"
	case "WELCOME":
		name = "WELCOME"
	case "INITIATE":
		name = "INITIATE"
	default:
		name = strings.ToValidUTF8(string(body[1:1+nl]), "?")
	}
	return name, body[1+nl:], len(all), nil
}

// readGreeting reads the peer's 64-byte greeting.
func readGreeting(br *bufio.Reader) (greeting, error) {
	b, err := br.Peek(greetingSize)
	if err != nil {
		return greeting{}, fmt.Errorf("read greeting: %w", err)
	}
	g, err := parseGreeting(b)
	_, _ = br.Discard(greetingSize)
	return g, err
}

// nullReady is the READY command of a NULL-security ROUTER: the same bytes
// on every connection.
var nullRouterReady = appendCommand(nil, "READY", appendMetadata(nil, socketRouter, nil))
