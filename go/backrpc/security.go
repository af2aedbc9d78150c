package backrpc

import (
	"errors"
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/curve"
	"github.com/huly-net/huly-net/go/transport"
)

// ErrSessionKey answers a hello whose client id names the session of
// another CURVE key: a session belongs to the key that opened it, so a
// peer that learnt a client id cannot take over its session (its
// references, the agents it hosts, the answers to its requests).
var ErrSessionKey = errors.New("backrpc: client id belongs to a session of another key")

// peerInfoer is the part of a transport.Router that reports a peer's
// security.
type peerInfoer interface {
	PeerInfo(peer transport.PeerID) (transport.PeerInfo, bool)
}

// peerSecurity is the CURVE key (zero for NULL security) and the address of
// a peer's connection.
func (s *Server) peerSecurity(peer transport.PeerID) (curve.Key, string) {
	pi, ok := s.out.(peerInfoer)
	if !ok {
		return curve.Key{}, ""
	}
	info, ok := pi.PeerInfo(peer)
	if !ok {
		return curve.Key{}, ""
	}
	remote := ""
	if info.Remote != nil {
		remote = info.Remote.String()
	}
	return info.PublicKey, remote
}

// refuseForeignHello answers a hello for the session of another key with
// an error and closes the connection shortly after. replaced is the
// session that connection spoke for until this hello (dropped already).
func (s *Server) refuseForeignHello(peer transport.PeerID, id string, key, owner curve.Key, replaced *ClientInfo) {
	s.sessionKeyRefusals.Add(1)
	s.log.WithFields(logrus.Fields{
		"client": ShortID(id), "peer": fmt.Sprintf("%x", peer),
		"key": keyText(key), "session_key": keyText(owner),
	}).Warn("refused a hello: the client id belongs to a session of another key; closing the connection")
	s.send(peer, OpResponseError, "", EncodeErrorPayload(fmt.Errorf("%w: %s", ErrSessionKey, ShortID(id))))
	if replaced != nil && s.h.OnClientClosed != nil {
		s.h.OnClientClosed(*replaced)
	}
	s.disconnectLater(peer)
}

func keyText(k curve.Key) string {
	if k.IsZero() {
		return "NULL"
	}
	return k.String()
}

// CloseClient ends a client's session at once, as if it had said close:
// OnClientClosed runs and its connection is closed (a key removed from the
// authorized keys). It reports whether there was such a session.
func (s *Server) CloseClient(clientID string) bool {
	s.mu.Lock()
	ss := s.byID[clientID]
	s.mu.Unlock()
	if ss == nil {
		return false
	}
	info, ok := s.drop(ss)
	if !ok {
		return false
	}
	if s.h.OnClientClosed != nil {
		s.h.OnClientClosed(info)
	}
	if d, ok := s.out.(disconnecter); ok {
		d.Disconnect(info.Peer)
	}
	return true
}

// ---- client side ----

// RefusedError is what calls return while the server refuses our
// handshake: our key is not authorized, or the server requires a CURVE key
// we do not have. The client keeps trying in the background (the key may
// be authorized later); calls fail at once instead of waiting.
type RefusedError struct {
	Addr   string
	Keyed  bool   // we offered a CURVE key
	Reason string // the server's reason, or why the handshake failed
	Err    error  // the transport's error
}

func (e *RefusedError) Error() string {
	if e.Keyed {
		return "network refused our key: " + e.Reason
	}
	return "network refused us: " + e.Reason + " (set curve_server_key and curve_secret_key_file)"
}

func (e *RefusedError) Unwrap() error { return e.Err }

// onConnectError records a refused handshake and fails what waits for a
// session.
func (c *Client) onConnectError(err error) {
	if !errors.Is(err, transport.ErrRefused) && !errors.Is(err, transport.ErrMechanismMismatch) {
		return
	}
	reason := err.Error()
	var re *transport.RefusedError
	if errors.As(err, &re) {
		reason = re.Reason
	}
	ref := &RefusedError{Addr: c.addr, Keyed: c.opts.Transport.CurveClient != nil, Reason: reason, Err: err}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	first := c.refusal == nil
	c.refusal = ref
	pending := c.pending
	c.pending = map[string]*pendingReq{}
	if c.refusedWake != nil {
		close(c.refusedWake)
		c.refusedWake = nil
	}
	c.mu.Unlock()
	if first {
		c.log.WithError(ref).Warn("the server refused our handshake")
	}
	for _, p := range pending {
		if p.timer != nil {
			p.timer.Stop()
		}
		p.done <- callResult{err: ref}
	}
}

// refusedLocked is the refusal in force, nil once a handshake succeeded.
func (c *Client) refusedLocked() error {
	if c.refusal == nil {
		return nil
	}
	return c.refusal
}

// refusedWakeLocked is closed at the next refusal.
func (c *Client) refusedWakeLocked() chan struct{} {
	if c.refusedWake == nil {
		c.refusedWake = make(chan struct{})
	}
	return c.refusedWake
}

// BroadcastPerKey sends an event to every connected client, the payload
// chosen per CURVE key: payload runs once per distinct key of the
// connected sessions; a nil result sends nothing to that key's sessions.
// It returns how many clients the event was queued for.
func (s *Server) BroadcastPerKey(payload func(key curve.Key) any) (int, error) {
	type target struct {
		peer transport.PeerID
		key  curve.Key
	}
	s.mu.Lock()
	targets := make([]target, 0, len(s.byID))
	for _, ss := range s.byID {
		if ss.detached == nil {
			targets = append(targets, target{ss.info.Peer, ss.info.Key})
		}
	}
	s.mu.Unlock()
	frames := map[curve.Key][][]byte{}
	n := 0
	for _, t := range targets {
		f, done := frames[t.key]
		if !done {
			if p := payload(t.key); p != nil {
				raw, err := MarshalJSON(p)
				if err != nil {
					return n, fmt.Errorf("encode event: %w", err)
				}
				f = EncodeServer(Message{Op: OpEvent, Payload: raw})
			}
			frames[t.key] = f
		}
		if f != nil && s.out.Send(t.peer, f...) == nil {
			n++
		}
	}
	return n, nil
}
