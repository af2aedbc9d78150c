package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
)

// hsParams is what a handshake needs besides the connection.
type hsParams struct {
	server     bool
	socketType string // ours: socketRouter or socketDealer
	identity   []byte // ours (DEALER)
	opts       Options
	// Router only: the minute keys for CURVE cookies, and a last check
	// of the peer (e.g. its identity against the connected peers) before
	// READY; its error is sent to the peer as the ERROR reason.
	cookies *cookieJar
	admit   func(ctx context.Context, info *PeerInfo) error
	// Dealer only: CURVE keys computed while the TCP connection was made.
	curveKeys *curveClientKeys
}

// Precomputed openings of a ROUTER: the same bytes for every connection.
var (
	nullServerOpening  = append(appendGreeting(nil, MechanismNull, false), nullRouterReady...)
	curveServerOpening = appendGreeting(nil, MechanismCurve, true)
)

// runHandshake performs the ZMTP greeting and the security handshake on g
// (deadlines are the caller's). It returns the peer and, for CURVE, the
// frame codec of the connection.
func runHandshake(ctx context.Context, g *guardConn, p hsParams) (PeerInfo, *curveCodec, error) {
	info := PeerInfo{Remote: g.Conn.RemoteAddr()}
	if p.server {
		cc, err := serverHandshake(ctx, g, p, &info)
		return info, cc, err
	}
	if p.opts.CurveClient != nil {
		cc, err := curveClientHandshake(g, p, &info)
		return info, cc, err
	}
	return info, nil, nullClientHandshake(g, p, &info)
}

// nullClientHandshake sends greeting and READY in one write, then reads the
// ROUTER's greeting and READY.
func nullClientHandshake(g *guardConn, p hsParams, info *PeerInfo) error {
	var buf [greetingSize + 9 + 64 + maxIdentity]byte
	out := appendGreeting(buf[:0], MechanismNull, false)
	var meta [64 + maxIdentity]byte
	out = appendCommand(out, "READY", appendMetadata(meta[:0], p.socketType, p.identity))
	if _, err := g.Conn.Write(out); err != nil {
		return fmt.Errorf("write greeting: %w", err)
	}
	gr, err := readGreeting(g.br)
	if err != nil {
		return err
	}
	info.Minor = gr.minor
	if gr.mechanism != MechanismNull {
		return fmt.Errorf("%w: the server requires %s security; we have no key for it", ErrMechanismMismatch, gr.mechanism)
	}
	info.Mechanism = MechanismNull
	return readReady(g, p, info)
}

// readReady reads a NULL READY (or ERROR) and checks the peer's metadata.
func readReady(g *guardConn, p hsParams, info *PeerInfo) error {
	name, data, n, err := peekCommand(g.br, maxHandshakeCommand)
	if err != nil {
		return fmt.Errorf("read READY: %w", err)
	}
	defer g.br.Discard(n) //nolint:errcheck // peeked bytes
	switch name {
	case "READY":
	case "ERROR":
		return parseError(data)
	default:
		return protoErr("%s command instead of READY", name)
	}
	if err := parseMetadata(data, info); err != nil {
		return err
	}
	return checkPeerType(p.socketType, info)
}

// serverHandshake answers one peer. With NULL security only, the greeting
// and READY go out at once. With CURVE only, the CURVE greeting goes out at
// once. With CURVE and NULL peers admitted, the mechanism follows the
// peer's: only the signature goes out first (as RFC 23 allows, and as
// libzmq itself does), the rest once the peer's greeting is in.
func serverHandshake(ctx context.Context, g *guardConn, p hsParams, info *PeerInfo) (*curveCodec, error) {
	curveOn := p.opts.CurveServer != nil
	mixed := curveOn && p.opts.CurveAllowNull != nil
	var opening []byte
	switch {
	case !curveOn:
		opening = nullServerOpening
	case mixed:
		opening = curveServerOpening[:signatureSize]
	default:
		opening = curveServerOpening
	}
	if _, err := g.Conn.Write(opening); err != nil {
		return nil, fmt.Errorf("write greeting: %w", err)
	}
	gr, err := readGreeting(g.br)
	if err != nil {
		return nil, err
	}
	info.Minor = gr.minor

	if !curveOn {
		if gr.mechanism != MechanismNull {
			return nil, fmt.Errorf("%w: peer offers %s, this server has NULL security", ErrMechanismMismatch, gr.mechanism)
		}
		info.Mechanism = MechanismNull
		// Our READY went out with the greeting: a bad peer is closed.
		if err := readReady(g, p, info); err != nil {
			return nil, err
		}
		if p.admit != nil {
			if err := p.admit(ctx, info); err != nil {
				return nil, err
			}
		}
		return nil, nil
	}

	switch {
	case gr.mechanism == MechanismCurve:
		if mixed {
			if _, err := g.Conn.Write(curveServerOpening[signatureSize:]); err != nil {
				return nil, fmt.Errorf("write greeting: %w", err)
			}
		}
		return curveServerHandshake(ctx, g, p, info)
	case gr.mechanism == MechanismNull && mixed && p.opts.CurveAllowNull(info.Remote):
		info.Mechanism = MechanismNull
		var out [greetingSize]byte
		rest := appendGreeting(out[:0], MechanismNull, false)[signatureSize:]
		if _, err := g.Conn.Write(rest); err != nil {
			return nil, fmt.Errorf("write greeting: %w", err)
		}
		if err := readReady(g, p, info); err != nil {
			return nil, refuse(g, err)
		}
		if p.admit != nil {
			if err := p.admit(ctx, info); err != nil {
				return nil, refuse(g, err)
			}
		}
		if _, err := g.Conn.Write(nullRouterReady); err != nil {
			return nil, fmt.Errorf("write READY: %w", err)
		}
		return nil, nil
	default:
		var out []byte
		if mixed {
			out = append(out, curveServerOpening[signatureSize:]...)
		}
		reason := "CURVE security required"
		if gr.mechanism == MechanismNull {
			reason = "CURVE security required; NULL peers are not admitted from " + addrHost(info.Remote)
		}
		out = appendError(out, reason)
		_, _ = g.Conn.Write(out)
		return nil, fmt.Errorf("%w: peer offers %s: %s", ErrMechanismMismatch, gr.mechanism, reason)
	}
}

// refuse sends the peer an ERROR command with err's text as the reason,
// and returns err as an ErrPeerRejected.
func refuse(g *guardConn, err error) error {
	_, _ = g.Conn.Write(appendError(nil, err.Error()))
	if errors.Is(err, ErrPeerRejected) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrPeerRejected, err)
}

func addrHost(a net.Addr) string {
	if a == nil {
		return "?"
	}
	if host, _, err := net.SplitHostPort(a.String()); err == nil {
		return host
	}
	return a.String()
}

// closedByPeer reports whether err is the peer closing the connection.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
