package bridge

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// TwoTier declares one container port brought to the host through two
// forwards: a relay inside the container (whose service binds only to its
// own loopback) and a forward on the host to that relay.
type TwoTier struct {
	// Name names both forwards: Name+"-relay" inside, Name on the host.
	Name string
	// ContainerAddress is the container's address as the host reaches it.
	ContainerAddress string
	// RelayPort is where the relay listens inside the container, on every
	// interface, so the host can reach it.
	RelayPort int
	// ServicePort is the service's port on the container's 127.0.0.1.
	ServicePort int
	// HostListen is where the host forward listens: "tcp:HOST:PORT",
	// "HOST:PORT", or a bare port (then on 127.0.0.1).
	HostListen string
}

// RelaySuffix is appended to a TwoTier's Name for the inner forward.
const RelaySuffix = "-relay"

// Forwards returns the inner forward (run inside the container,
// 0.0.0.0:relay → 127.0.0.1:service) and the outer one (run on the host,
// HostListen → containerAddress:relay). Limits and timeouts are left zero
// for the caller to set.
func (d TwoTier) Forwards() (inner, outer Forward, err error) {
	var errs []error
	if d.Name == "" {
		errs = append(errs, errors.New("two-tier forward: name is required"))
	}
	if d.ContainerAddress == "" {
		errs = append(errs, fmt.Errorf("two-tier forward %q: container address is required", d.Name))
	} else if strings.ContainsAny(d.ContainerAddress, "[]/ ") {
		errs = append(errs, fmt.Errorf("two-tier forward %q: container address %q: want a host name or IP without brackets or port", d.Name, d.ContainerAddress))
	}
	if d.RelayPort < 1 || d.RelayPort > 65535 {
		errs = append(errs, fmt.Errorf("two-tier forward %q: relay port %d not in 1-65535", d.Name, d.RelayPort))
	}
	if d.ServicePort < 1 || d.ServicePort > 65535 {
		errs = append(errs, fmt.Errorf("two-tier forward %q: service port %d not in 1-65535", d.Name, d.ServicePort))
	}
	hostListen, herr := normalizeListen(d.HostListen)
	if herr != nil {
		errs = append(errs, fmt.Errorf("two-tier forward %q: host listen: %w", d.Name, herr))
	}
	if err := errors.Join(errs...); err != nil {
		return Forward{}, Forward{}, err
	}
	inner = Forward{
		Name:   d.Name + RelaySuffix,
		Listen: "tcp:" + net.JoinHostPort("0.0.0.0", strconv.Itoa(d.RelayPort)),
		Target: "tcp:" + net.JoinHostPort("127.0.0.1", strconv.Itoa(d.ServicePort)),
	}
	outer = Forward{
		Name:   d.Name,
		Listen: hostListen,
		Target: "tcp:" + net.JoinHostPort(d.ContainerAddress, strconv.Itoa(d.RelayPort)),
	}
	if err := inner.Validate(false); err != nil {
		return Forward{}, Forward{}, err
	}
	if err := outer.Validate(false); err != nil {
		return Forward{}, Forward{}, err
	}
	return inner, outer, nil
}

func normalizeListen(s string) (string, error) {
	switch {
	case s == "":
		return "", errors.New("empty")
	case strings.HasPrefix(s, "tcp:") || strings.HasPrefix(s, "unix:"):
		if _, err := ParseAddress(s); err != nil {
			return "", err
		}
		return s, nil
	}
	if p, err := strconv.Atoi(s); err == nil {
		if p < 1 || p > 65535 {
			return "", fmt.Errorf("port %d not in 1-65535", p)
		}
		return "tcp:" + net.JoinHostPort("127.0.0.1", s), nil
	}
	if _, err := ParseAddress("tcp:" + s); err != nil {
		return "", err
	}
	return "tcp:" + s, nil
}
