package bridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Address is a parsed endpoint: "tcp:HOST:PORT" or "unix:PATH" (a leading
// "@" in PATH names an abstract socket).
type Address struct {
	Network string // "tcp" or "unix"
	Addr    string // HOST:PORT or PATH
}

// ParseAddress parses "tcp:HOST:PORT" or "unix:PATH". IPv6 hosts are
// bracketed ("tcp:[::1]:80"). The error names the bad value.
func ParseAddress(s string) (Address, error) {
	network, rest, ok := strings.Cut(s, ":")
	if !ok {
		return Address{}, fmt.Errorf("address %q: want tcp:HOST:PORT or unix:PATH", s)
	}
	switch network {
	case "tcp":
		host, port, err := net.SplitHostPort(rest)
		if err != nil {
			return Address{}, fmt.Errorf("address %q: want tcp:HOST:PORT: %w", s, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil || p < 0 || p > 65535 {
			return Address{}, fmt.Errorf("address %q: port %q is not a number in 0-65535", s, port)
		}
		return Address{Network: "tcp", Addr: net.JoinHostPort(host, port)}, nil
	case "unix":
		if rest == "" {
			return Address{}, fmt.Errorf("address %q: empty unix socket path", s)
		}
		return Address{Network: "unix", Addr: rest}, nil
	default:
		return Address{}, fmt.Errorf("address %q: unknown network %q (want tcp or unix)", s, network)
	}
}

func (a Address) String() string { return a.Network + ":" + a.Addr }

// IsZero reports whether a is the zero Address.
func (a Address) IsZero() bool { return a.Network == "" }

// listen opens a listener on a with a backlog that does not cap bursts of
// connections (socat's default of 5 makes a burst wait for SYN
// retransmits, about a second). Go asks listen(2) for net.core.somaxconn,
// which it reads from /proc; where /proc/sys is hidden (ProcSubset=pid in
// the unit) it falls back to 128. So the backlog is raised afterwards with a
// second listen(2), which Linux allows on a listening socket and clamps to
// somaxconn itself.
//
// A unix socket file left behind by a crashed predecessor is removed, but
// only when nothing accepts on it, so two instances cannot steal each
// other's socket.
func listen(ctx context.Context, a Address) (net.Listener, error) {
	ln, err := listenOnce(ctx, a)
	if err == nil || a.Network != "unix" || strings.HasPrefix(a.Addr, "@") || !errors.Is(err, syscall.EADDRINUSE) {
		return ln, err
	}
	if c, derr := net.Dial("unix", a.Addr); derr == nil {
		_ = c.Close()
		return nil, err
	}
	if fi, serr := os.Lstat(a.Addr); serr == nil && fi.Mode()&os.ModeSocket != 0 {
		if rerr := os.Remove(a.Addr); rerr != nil {
			return nil, fmt.Errorf("%w (removing stale socket: %v)", err, rerr)
		}
		return listenOnce(ctx, a)
	}
	return nil, err
}

// listenBacklog is what listen(2) is asked for; the kernel lowers it to
// net.core.somaxconn.
const listenBacklog = 65535

func listenOnce(ctx context.Context, a Address) (net.Listener, error) {
	// No TCP keepalive on accepted connections (Go enables it by default):
	// see dialer in bridge.go.
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(ctx, a.Network, a.Addr)
	if err != nil {
		return nil, err
	}
	if err := raiseBacklog(ln); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("raising the listen backlog: %w", err)
	}
	return ln, nil
}

func raiseBacklog(ln net.Listener) error {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) { lerr = syscall.Listen(int(fd), listenBacklog) }); err != nil {
		return err
	}
	return lerr
}
