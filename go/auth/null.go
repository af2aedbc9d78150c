package auth

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// NullAllowList decides which NULL-mechanism peers (no CURVE key, such as
// TypeScript 0.7 peers) a secured network admits: those whose address is
// in one of its networks (--allow-null-from CIDR, repeatable). The zero
// value admits nobody.
type NullAllowList struct {
	prefixes []netip.Prefix
}

// ParseNullAllowList reads CIDRs ("127.0.0.1/32", "10.0.0.0/8",
// "::1/128"); a bare address means that address alone.
func ParseNullAllowList(cidrs []string) (NullAllowList, error) {
	var l NullAllowList
	for _, c := range cidrs {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		}
		if strings.Contains(c, "%") {
			return NullAllowList{}, fmt.Errorf("allow-null-from %q: zones are not supported", c)
		}
		p, err := netip.ParsePrefix(c)
		if err != nil {
			a, aerr := netip.ParseAddr(c)
			if aerr != nil {
				return NullAllowList{}, fmt.Errorf("allow-null-from %q: want a CIDR such as 127.0.0.1/32 or 10.0.0.0/8: %w", c, err)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Addr().Is4In6() {
			// ::ffff:10.0.0.0/104 is 10.0.0.0/8.
			bits := p.Bits() - 96
			if bits < 0 {
				return NullAllowList{}, fmt.Errorf("allow-null-from %q: an IPv4-mapped prefix needs at least 96 bits", c)
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), bits)
		}
		l.prefixes = append(l.prefixes, p.Masked())
	}
	return l, nil
}

// Empty reports whether the list admits nobody.
func (l NullAllowList) Empty() bool { return len(l.prefixes) == 0 }

// String lists the networks, comma separated.
func (l NullAllowList) String() string {
	s := make([]string, len(l.prefixes))
	for i, p := range l.prefixes {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// Admits reports whether a NULL peer at remote may connect. Addresses that
// are not IP (a Unix socket) or cannot be read are refused.
func (l NullAllowList) Admits(remote net.Addr) bool {
	a, ok := addrOf(remote)
	if !ok {
		return false
	}
	for _, p := range l.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Admit is Admits as an error for the peer and the log.
func (l NullAllowList) Admit(remote net.Addr) error {
	if l.Admits(remote) {
		return nil
	}
	where := "unknown address"
	if remote != nil {
		where = remote.String()
	}
	reason := "no --allow-null-from network is configured"
	if !l.Empty() {
		reason = "its address is not in --allow-null-from " + l.String()
	}
	return &DeniedError{Key: NullKey, Name: "NULL", Action: "connect to the network", Reason: fmt.Sprintf("the network requires a CURVE key from %s: %s", where, reason)}
}

func addrOf(remote net.Addr) (netip.Addr, bool) {
	var ip net.IP
	switch a := remote.(type) {
	case nil:
		return netip.Addr{}, false
	case *net.TCPAddr:
		ip = a.IP
	case *net.UDPAddr:
		ip = a.IP
	case *net.IPAddr:
		ip = a.IP
	default:
		ap, err := netip.ParseAddrPort(remote.String())
		if err != nil {
			return netip.Addr{}, false
		}
		return ap.Addr().Unmap().WithZone(""), true
	}
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}
