package transport

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"golang.org/x/crypto/nacl/box"
	"golang.org/x/crypto/nacl/secretbox"
	"golang.org/x/crypto/salsa20/salsa" //nolint:staticcheck // HSalsa20 is NaCl box key derivation, which CurveZMQ requires

	"github.com/huly-net/huly-net/go/curve"
)

// ZMTP CURVE (ZeroMQ RFC 25) over CurveZMQ (RFC 26), with the NaCl boxes of
// golang.org/x/crypto:
//
//	C → S  greeting, HELLO     C' and Box[64 zero bytes](C'→S)
//	S → C  greeting, WELCOME   Box[S', cookie](S→C')
//	C → S  INITIATE            cookie, Box[C, vouch, metadata](C'→S'),
//	                           vouch = Box[C', S](C→S')
//	S → C  READY               Box[metadata](S'→C')   (or ERROR: reason)
//
// then every ZMTP frame, in both directions, as a MESSAGE:
// "\x07MESSAGE", an 8-byte nonce, Box[flags, body](C'↔S'). Short nonces
// count up per direction, from 1 for HELLO (client) and READY (server);
// a peer's must strictly increase, so a replayed or reordered MESSAGE ends
// the connection. The cookie is sealed with a per-server key that changes
// every minute (the previous one is still accepted).

// Nonce prefixes (RFC 26).
const (
	prefixHello    = "CurveZMQHELLO---"
	prefixWelcome  = "WELCOME-"
	prefixCookie   = "COOKIE--"
	prefixInitiate = "CurveZMQINITIATE"
	prefixVouch    = "VOUCH---"
	prefixReady    = "CurveZMQREADY---"
	prefixMsgC     = "CurveZMQMESSAGEC"
	prefixMsgS     = "CurveZMQMESSAGES"
)

const (
	helloSize    = 2 + 72 + 32 + 8 + 80 // HELLO data: version, padding, C', nonce, box
	welcomeSize  = 16 + 144             // WELCOME data: long nonce, box[S', cookie]
	cookieSize   = 16 + 80              // nonce, secretbox[C', s']
	initiateMin  = cookieSize + 8 + box.Overhead + 32 + 16 + 80
	messageName  = "\x07MESSAGE"
	messageHead  = len(messageName) + 8 // name and short nonce
	curveFrameOv = messageHead + box.Overhead + 1

	// curveFlagCommand marks a command inside a MESSAGE box (libzmq's
	// msg_t::command); curveFlagMore is ZMTP's MORE.
	curveFlagMore    = 0x01
	curveFlagCommand = 0x02
)

// Errors of the CURVE message layer.
var (
	errCurveNonce = errors.New("transport: CURVE message nonce not increasing (replayed or reordered)")
	errCurveBox   = errors.New("transport: CURVE message failed authentication")
)

func shortNonce(prefix string, n uint64) *[24]byte {
	var nonce [24]byte
	copy(nonce[:], prefix)
	binary.BigEndian.PutUint64(nonce[16:], n)
	return &nonce
}

func longNonce(prefix string, r []byte) *[24]byte {
	var nonce [24]byte
	copy(nonce[:], prefix)
	copy(nonce[8:], r)
	return &nonce
}

// boxKey is nacl/box.Precompute with a prepared private key: x/crypto's
// curve25519 runs through crypto/ecdh, which derives the public key of a
// private key each time one is made, so Precompute and Seal/Open with raw
// keys cost two scalar multiplications instead of one; the handshake's
// cost was doubled by it. A peer key of low order is refused.
func boxKey(shared *[32]byte, priv *ecdh.PrivateKey, peer []byte) error {
	pub, err := ecdh.X25519().NewPublicKey(peer)
	if err != nil {
		return protoErr("bad CURVE public key: %v", err)
	}
	secret, err := priv.ECDH(pub)
	if err != nil {
		return protoErr("CURVE key agreement: %v", err)
	}
	var k [32]byte
	copy(k[:], secret)
	var zeros [16]byte
	salsa.HSalsa20(shared, &zeros, &k, &salsa.Sigma)
	return nil
}

// longTermKey prepares a long-term secret key for boxKey.
func longTermKey(kp *curve.KeyPair) (*ecdh.PrivateKey, error) {
	k, err := ecdh.X25519().NewPrivateKey(kp.Secret[:])
	if err != nil {
		return nil, fmt.Errorf("curve secret key: %w", err)
	}
	return k, nil
}

func randomBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		return nil, fmt.Errorf("random nonce: %w", err)
	}
	return b, nil
}

// cookieJar holds a Router's CURVE state: the cookie keys (a random key
// that is replaced every minute, and the one before it) and a small supply
// of fresh short-term key pairs, made ahead so that key generation is not
// on a handshake's path. Each pair is used for one connection only.
type cookieJar struct {
	mu      sync.Mutex
	cur     [32]byte
	prev    [32]byte
	curAt   time.Time
	hasPrev bool

	long      *ecdh.PrivateKey // the server's
	shortKeys chan *ecdh.PrivateKey
}

const shortKeySupply = 16

func newCookieJar(server *curve.KeyPair) (*cookieJar, error) {
	long, err := longTermKey(server)
	if err != nil {
		return nil, err
	}
	return &cookieJar{long: long, shortKeys: make(chan *ecdh.PrivateKey, shortKeySupply)}, nil
}

// supply keeps the short-term key supply full until ctx ends.
func (j *cookieJar) supply(ctx context.Context) {
	for {
		k, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			return // handshakes make their own
		}
		select {
		case j.shortKeys <- k:
		case <-ctx.Done():
			return
		}
	}
}

// shortKey takes a key pair from the supply, or makes one.
func (j *cookieJar) shortKey() (*ecdh.PrivateKey, error) {
	select {
	case k := <-j.shortKeys:
		return k, nil
	default:
		return ecdh.X25519().GenerateKey(rand.Reader)
	}
}

func (j *cookieJar) keys(now time.Time) (cur, prev [32]byte, hasPrev bool, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.curAt.IsZero() || now.Sub(j.curAt) >= time.Minute {
		j.prev, j.hasPrev = j.cur, !j.curAt.IsZero() && now.Sub(j.curAt) < 2*time.Minute
		if _, err := io.ReadFull(rand.Reader, j.cur[:]); err != nil {
			return cur, prev, false, fmt.Errorf("cookie key: %w", err)
		}
		j.curAt = now
	}
	return j.cur, j.prev, j.hasPrev, nil
}

// curveCodec encrypts and decrypts the frames of an established CURVE
// connection. The writing goroutine uses the send half, the reading one
// the receive half.
type curveCodec struct {
	key        [32]byte // precomputed C'/S' box key
	sendPrefix string
	recvPrefix string

	sendNonce uint64 // next to use
	splain    []byte // sealing scratch: flags and body

	recvNonce uint64 // last accepted
	cbuf      []byte // a MESSAGE as read
	rplain    []byte // its opened box
}

func newCurveCodec(shared *[32]byte, server bool) *curveCodec {
	c := &curveCodec{key: *shared, sendPrefix: prefixMsgC, recvPrefix: prefixMsgS}
	if server {
		c.sendPrefix, c.recvPrefix = prefixMsgS, prefixMsgC
	}
	return c
}

// sealedSize is the size on the wire of a frame with an n-byte body.
func sealedSize(n int) int {
	b := curveFrameOv + n
	if b > 255 {
		return 9 + b
	}
	return 2 + b
}

// appendSealed appends one frame as a MESSAGE. As libzmq does, the MESSAGE
// travels in a frame of its own without MORE: the box carries the flags.
func (c *curveCodec) appendSealed(dst []byte, flags byte, body []byte) []byte {
	c.splain = append(append(c.splain[:0], flags), body...)
	n := c.sendNonce
	c.sendNonce++
	size := curveFrameOv + len(body)
	if size > 255 {
		dst = append(dst, flagLong)
		dst = binary.BigEndian.AppendUint64(dst, uint64(size))
	} else {
		dst = append(dst, 0, byte(size))
	}
	dst = append(dst, messageName...)
	dst = binary.BigEndian.AppendUint64(dst, n)
	dst = box.SealAfterPrecomputation(dst, c.splain, shortNonce(c.sendPrefix, n), &c.key)
	if cap(c.splain) > maxKeptScratch {
		c.splain = nil
	}
	return dst
}

// appendMessage appends a whole message's frames, sealed.
func (c *curveCodec) appendMessage(dst []byte, frames [][]byte) []byte {
	for i, f := range frames {
		var flags byte
		if i < len(frames)-1 {
			flags = curveFlagMore
		}
		dst = c.appendSealed(dst, flags, f)
	}
	return dst
}

// open checks and opens one MESSAGE body (name, nonce, box); the result
// (flags, then the frame) is valid until the next call.
func (c *curveCodec) open(body []byte) ([]byte, error) {
	if len(body) < curveFrameOv || string(body[:len(messageName)]) != messageName {
		return nil, fmt.Errorf("%w: not a CURVE MESSAGE (%d bytes)", errBadCommand, len(body))
	}
	n := binary.BigEndian.Uint64(body[len(messageName):])
	if n <= c.recvNonce {
		return nil, fmt.Errorf("%w: nonce %d after %d", errCurveNonce, n, c.recvNonce)
	}
	plain, ok := box.OpenAfterPrecomputation(c.rplain[:0], body[messageHead:], shortNonce(c.recvPrefix, n), &c.key)
	if !ok {
		return nil, errCurveBox
	}
	c.recvNonce = n
	c.rplain = plain
	return plain, nil
}

// writeCurveMessage is writeMessage for a CURVE connection: each frame is
// sealed straight into the batch buffer, or, when large, into a buffer of
// its own that the batch writes without copying.
func (g *guardConn) writeCurveMessage(frames [][]byte) error {
	c := g.cur
	for i, f := range frames {
		var flags byte
		if i < len(frames)-1 {
			flags = curveFlagMore
		}
		if err := g.writeSealed(c, flags, f); err != nil {
			return err
		}
	}
	return nil
}

func (g *guardConn) writeSealed(c *curveCodec, flags byte, body []byte) error {
	size := sealedSize(len(body))
	if size >= largeFrame {
		return g.appendLarge(c.appendSealed(make([]byte, 0, size), flags, body))
	}
	if g.wbuf == nil {
		g.wbuf = *writeBufs.Get().(*[]byte)
	}
	if cap(g.wbuf)-len(g.wbuf) < size {
		if err := g.Flush(); err != nil {
			return err
		}
	}
	g.wbuf = c.appendSealed(g.wbuf, flags, body)
	return nil
}

// writeCommand adds a command (PONG) to the batch, sealed on a CURVE
// connection.
func (g *guardConn) writeCommand(name string, data []byte) error {
	if g.cur == nil {
		return g.bufAppend(appendCommand(nil, name, data))
	}
	body := append(append([]byte{byte(len(name))}, name...), data...)
	return g.writeSealed(g.cur, curveFlagCommand, body)
}

// readCurveMessage is readMessage for a CURVE connection: each frame is a
// MESSAGE to check and open; commands inside (PING) are handled as on a
// NULL connection.
func (g *guardConn) readCurveMessage() ([][]byte, error) {
	c := g.cur
	var sizes [8]int64
	spans := sizes[:0]
	var total int64
	g.scratch = g.scratch[:0]
	// Between messages the connection may idle; inside one the progress
	// deadline applies (readSource), as on a NULL connection.
	defer func() { g.mid = false }()
	for {
		flag, err := g.br.ReadByte()
		if err != nil {
			return nil, err
		}
		g.mid = true
		var size uint64
		if flag&flagLong != 0 {
			var b [8]byte
			if _, err := readFull(g.br, b[:]); err != nil {
				return nil, err
			}
			size = binary.BigEndian.Uint64(b[:])
		} else {
			b, err := g.br.ReadByte()
			if err != nil {
				return nil, err
			}
			size = uint64(b)
		}
		if size > uint64(g.maxFrame)+uint64(curveFrameOv) {
			return nil, fmt.Errorf("%w: peer announced %d bytes, limit %d", ErrFrameTooLarge, size, g.maxFrame)
		}
		if size < uint64(curveFrameOv) {
			return nil, fmt.Errorf("%w: %d-byte CURVE MESSAGE", errBadCommand, size)
		}
		if uint64(cap(c.cbuf)) < size {
			c.cbuf = make([]byte, size, max(size, 512))
		}
		c.cbuf = c.cbuf[:size]
		if _, err := readFull(g.br, c.cbuf); err != nil {
			return nil, err
		}
		plain, err := c.open(c.cbuf)
		if cap(c.cbuf) > maxKeptScratch {
			c.cbuf = nil
		}
		if err != nil {
			return nil, err
		}
		fl, data := plain[0], plain[1:]
		if fl&curveFlagCommand != 0 {
			if len(spans) > 0 {
				return nil, fmt.Errorf("%w: command inside a multipart message", errBadCommand)
			}
			if err := g.curveCommand(data); err != nil {
				return nil, err
			}
			g.mid = false
			continue
		}
		g.started = true
		n := int64(len(data))
		if total+n > g.maxFrame+messageSlack {
			return nil, fmt.Errorf("%w: message of over %d bytes, limit %d", ErrFrameTooLarge, total+n, g.maxFrame+messageSlack)
		}
		if len(spans) == maxFramesPerMessage {
			return nil, errTooManyFrames
		}
		g.scratch = append(g.scratch, data...)
		spans = append(spans, n)
		total += n
		if fl&curveFlagMore == 0 {
			break
		}
	}
	if cap(c.rplain) > maxKeptScratch {
		c.rplain = nil
	}
	var slab []byte
	if cap(g.scratch) > maxKeptScratch {
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

// curveCommand handles a command that arrived inside a MESSAGE.
func (g *guardConn) curveCommand(body []byte) error {
	if len(body) == 0 || len(body) > maxCommandSize || int(body[0]) > len(body)-1 {
		return fmt.Errorf("%w: %d-byte command", errBadCommand, len(body))
	}
	nl := int(body[0])
	if string(body[1:1+nl]) == "PING" && g.onPing != nil {
		rest := body[1+nl:]
		var ctx []byte
		if len(rest) > 2 {
			ctx = append([]byte(nil), rest[2:]...) // body is scratch
		}
		g.onPing(ctx)
	}
	return nil
}

// curveClientKeys is what a CURVE DEALER can compute before it is
// connected: its short-term key pair and the HELLO box key.
type curveClientKeys struct {
	long     *ecdh.PrivateKey // C, kept by the Dealer across connections
	short    *ecdh.PrivateKey // C'
	toServer [32]byte         // C'·S
}

// prepareCurveClient makes a connection's short-term key and HELLO key;
// long is the prepared long-term key, nil the first time.
func prepareCurveClient(opts Options, long *ecdh.PrivateKey) (*curveClientKeys, error) {
	if long == nil {
		var err error
		if long, err = longTermKey(opts.CurveClient); err != nil {
			return nil, err
		}
	}
	short, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("short-term key: %w", err)
	}
	k := &curveClientKeys{long: long, short: short}
	if err := boxKey(&k.toServer, short, opts.CurveServerKey[:]); err != nil {
		return nil, fmt.Errorf("server key: %w", err)
	}
	return k, nil
}

// curveClientHandshake is the DEALER side: greeting and HELLO in one
// write, INITIATE in another, then READY.
func curveClientHandshake(g *guardConn, p hsParams, info *PeerInfo) (*curveCodec, error) {
	pre := p.curveKeys
	if pre == nil {
		var err error
		if pre, err = prepareCurveClient(p.opts, nil); err != nil {
			return nil, err
		}
	}
	cPub, toServer := pre.short.PublicKey().Bytes(), &pre.toServer

	out := make([]byte, 0, greetingSize+9+helloSize+8)
	out = appendGreeting(out, MechanismCurve, false)
	out = append(out, flagCommand, byte(1+5+helloSize), 5)
	out = append(out, "HELLO"...)
	out = append(out, 1, 0)
	out = append(out, make([]byte, 72)...)
	out = append(out, cPub...)
	out = binary.BigEndian.AppendUint64(out, 1)
	var zero [64]byte
	out = box.SealAfterPrecomputation(out, zero[:], shortNonce(prefixHello, 1), toServer)
	if _, err := g.Conn.Write(out); err != nil {
		return nil, fmt.Errorf("write HELLO: %w", err)
	}

	gr, err := readGreeting(g.br)
	if err != nil {
		return nil, err
	}
	info.Minor = gr.minor
	if gr.mechanism != MechanismCurve {
		return nil, fmt.Errorf("%w: the server speaks %s security, we CURVE", ErrMechanismMismatch, gr.mechanism)
	}
	name, data, n, err := peekCommand(g.br, maxHandshakeCommand)
	if err != nil {
		if closedByPeer(err) {
			return nil, &RefusedError{Reason: "the server closed the connection after our HELLO (wrong server key?)"}
		}
		return nil, fmt.Errorf("read WELCOME: %w", err)
	}
	switch {
	case name == "ERROR":
		err := parseError(data)
		_, _ = g.br.Discard(n)
		return nil, err
	case name != "WELCOME" || len(data) != welcomeSize:
		return nil, protoErr("%s command of %d bytes instead of WELCOME", name, len(data))
	}
	welcome, ok := box.OpenAfterPrecomputation(nil, data[16:], longNonce(prefixWelcome, data[:16]), toServer)
	_, _ = g.br.Discard(n)
	if !ok {
		return nil, protoErr("WELCOME box does not open with the server key")
	}
	sPub := welcome[:32] // S'
	cookie := welcome[32:]

	vn, err := randomBytes(16)
	if err != nil {
		return nil, err
	}
	// The two key agreements of INITIATE are independent: one runs on
	// another goroutine (core), the other here.
	var shared [32]byte // C'·S', for INITIATE, READY and every message
	agreed := make(chan error, 1)
	go func() { agreed <- boxKey(&shared, pre.short, sPub) }()
	var vouchKey [32]byte // C·S'
	err = boxKey(&vouchKey, pre.long, sPub)
	if aerr := <-agreed; err == nil {
		err = aerr
	}
	if err != nil {
		return nil, err
	}
	vouch := box.SealAfterPrecomputation(nil, append(cPub[:32:32], p.opts.CurveServerKey[:]...), longNonce(prefixVouch, vn), &vouchKey)
	plain := make([]byte, 0, 32+16+len(vouch)+64+len(p.identity))
	plain = append(plain, pre.long.PublicKey().Bytes()...)
	plain = append(plain, vn...)
	plain = append(plain, vouch...)
	plain = appendMetadata(plain, p.socketType, p.identity)
	var nb [8]byte
	binary.BigEndian.PutUint64(nb[:], 2)
	sealed := box.SealAfterPrecomputation(nil, plain, shortNonce(prefixInitiate, 2), &shared)

	cc := newCurveCodec(&shared, false)
	cc.sendNonce = 3
	out = appendCommand(make([]byte, 0, 9+9+cookieSize+8+len(sealed)), "INITIATE", cookie, nb[:], sealed)
	if _, err := g.Conn.Write(out); err != nil {
		return nil, fmt.Errorf("write INITIATE: %w", err)
	}

	name, data, n, err = peekCommand(g.br, maxHandshakeCommand)
	if err != nil {
		return nil, fmt.Errorf("read READY: %w", err)
	}
	defer g.br.Discard(n) //nolint:errcheck // peeked bytes
	switch {
	case name == "ERROR":
		return nil, parseError(data)
	case name != "READY" || len(data) < 8+box.Overhead:
		return nil, protoErr("%s command of %d bytes instead of READY", name, len(data))
	}
	rn := binary.BigEndian.Uint64(data)
	meta, ok := box.OpenAfterPrecomputation(nil, data[8:], shortNonce(prefixReady, rn), &shared)
	if !ok {
		return nil, protoErr("READY box does not open")
	}
	info.Mechanism = MechanismCurve
	info.PublicKey = p.opts.CurveServerKey
	if err := parseMetadata(meta, info); err != nil {
		return nil, err
	}
	if err := checkPeerType(p.socketType, info); err != nil {
		return nil, err
	}
	cc.recvNonce = rn
	return cc, nil
}

// curveServerHandshake is the ROUTER side, after the greetings.
func curveServerHandshake(ctx context.Context, g *guardConn, p hsParams, info *PeerInfo) (*curveCodec, error) {
	kp := p.opts.CurveServer
	jar := p.cookies
	name, data, n, err := peekCommand(g.br, maxHandshakeCommand)
	if err != nil {
		return nil, fmt.Errorf("read HELLO: %w", err)
	}
	if name != "HELLO" || len(data) != helloSize {
		return nil, protoErr("%s command of %d bytes instead of HELLO", name, len(data))
	}
	if data[0] != 1 {
		return nil, refuse(g, &rejectError{fmt.Sprintf("CURVE version %d.%d not supported", data[0], data[1])})
	}
	var cPub [32]byte // C'
	copy(cPub[:], data[74:106])
	helloNonce := binary.BigEndian.Uint64(data[106:])
	var toClient [32]byte // S·C'
	if err := boxKey(&toClient, jar.long, cPub[:]); err != nil {
		return nil, err
	}
	_, ok := box.OpenAfterPrecomputation(nil, data[114:], shortNonce(prefixHello, helloNonce), &toClient)
	_, _ = g.br.Discard(n)
	if !ok {
		// RFC 26: an invalid HELLO gets no answer (the client used
		// another server key, or it is not a CURVE client).
		return nil, protoErr("HELLO box does not open: the client has another server key")
	}

	short, err := jar.shortKey()
	if err != nil {
		return nil, fmt.Errorf("short-term key: %w", err)
	}
	sPub, sSec := short.PublicKey().Bytes(), short.Bytes()
	cur, _, _, err := jar.keys(time.Now())
	if err != nil {
		return nil, err
	}
	rnd, err := randomBytes(32)
	if err != nil {
		return nil, err
	}
	cookie := append(make([]byte, 0, cookieSize), rnd[:16]...)
	cookie = secretbox.Seal(cookie, append(cPub[:32:32], sSec...), longNonce(prefixCookie, rnd[:16]), &cur)
	welcome := box.SealAfterPrecomputation(nil, append(sPub[:32:32], cookie...), longNonce(prefixWelcome, rnd[16:]), &toClient)
	if _, err := g.Conn.Write(appendCommand(make([]byte, 0, 9+8+welcomeSize), "WELCOME", rnd[16:], welcome)); err != nil {
		return nil, fmt.Errorf("write WELCOME: %w", err)
	}

	name, data, n, err = peekCommand(g.br, maxHandshakeCommand)
	if err != nil {
		return nil, fmt.Errorf("read INITIATE: %w", err)
	}
	if name != "INITIATE" || len(data) < initiateMin {
		return nil, protoErr("%s command of %d bytes instead of INITIATE", name, len(data))
	}
	// The cookie must be ours, from this minute or the last, and hold
	// this connection's keys.
	cur, prev, hasPrev, err := jar.keys(time.Now())
	if err != nil {
		return nil, err
	}
	ck, ok := secretbox.Open(nil, data[16:cookieSize], longNonce(prefixCookie, data[:16]), &cur)
	if !ok && hasPrev {
		ck, ok = secretbox.Open(nil, data[16:cookieSize], longNonce(prefixCookie, data[:16]), &prev)
	}
	if !ok || subtle.ConstantTimeCompare(ck[:32], cPub[:]) != 1 || subtle.ConstantTimeCompare(ck[32:], sSec) != 1 {
		return nil, protoErr("INITIATE cookie invalid or expired")
	}
	initNonce := binary.BigEndian.Uint64(data[cookieSize:])
	if initNonce <= helloNonce {
		return nil, protoErr("INITIATE nonce %d after HELLO nonce %d", initNonce, helloNonce)
	}
	var shared [32]byte // S'·C'
	if err := boxKey(&shared, short, cPub[:]); err != nil {
		return nil, err
	}
	plain, ok := box.OpenAfterPrecomputation(nil, data[cookieSize+8:], shortNonce(prefixInitiate, initNonce), &shared)
	_, _ = g.br.Discard(n)
	if !ok {
		return nil, protoErr("INITIATE box does not open")
	}
	var clientKey [32]byte // C
	copy(clientKey[:], plain[:32])
	var vouchKey [32]byte // S'·C
	if err := boxKey(&vouchKey, short, clientKey[:]); err != nil {
		return nil, err
	}
	vouch, ok := box.OpenAfterPrecomputation(nil, plain[48:128], longNonce(prefixVouch, plain[32:48]), &vouchKey)
	if !ok || !bytes.Equal(vouch[:32], cPub[:]) || !bytes.Equal(vouch[32:], kp.Public[:]) {
		return nil, protoErr("INITIATE vouch invalid")
	}
	info.Mechanism = MechanismCurve
	info.PublicKey = curve.Key(clientKey)
	if err := parseMetadata(plain[128:], info); err != nil {
		return nil, err
	}
	if err := checkPeerType(p.socketType, info); err != nil {
		return nil, refuse(g, err)
	}
	if auth := p.opts.CurveAuthenticate; auth != nil {
		if err := auth(ctx, info.PublicKey, info.Remote); err != nil {
			return nil, refuse(g, err)
		}
	}
	if p.admit != nil {
		if err := p.admit(ctx, info); err != nil {
			return nil, refuse(g, err)
		}
	}

	var nb [8]byte
	binary.BigEndian.PutUint64(nb[:], 1)
	ready := box.SealAfterPrecomputation(nil, routerMetadata, shortNonce(prefixReady, 1), &shared)
	if _, err := g.Conn.Write(appendCommand(make([]byte, 0, 9+6+8+len(ready)), "READY", nb[:], ready)); err != nil {
		return nil, fmt.Errorf("write READY: %w", err)
	}
	cc := newCurveCodec(&shared, true)
	cc.sendNonce = 2
	cc.recvNonce = initNonce
	return cc, nil
}

// routerMetadata is a ROUTER's READY metadata.
var routerMetadata = appendMetadata(nil, socketRouter, nil)
