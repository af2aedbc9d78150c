package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// RefKind says how a client reaches the endpoint an EndpointRef describes.
type RefKind int

// The values are those of the 0.7 wire protocol.
const (
	// RefRouted: requests go through the agent's endpoint server (cc/cs).
	RefRouted RefKind = 0
	// RefDirect: a server of its own (an agent endpoint, or a container with
	// its own direct endpoint).
	RefDirect RefKind = 1
	// RefNoConnect: the agent has no endpoint; requests can only be routed
	// through the network server (cs).
	RefNoConnect RefKind = 2
)

func (k RefKind) String() string {
	switch k {
	case RefRouted:
		return "routed"
	case RefDirect:
		return "direct"
	case RefNoConnect:
		return "noconnect"
	}
	return "RefKind(" + strconv.Itoa(int(k)) + ")"
}

// EndpointRef is a parsed endpoint reference. On the wire a reference is a
// JSON object serialised into a string, and the TypeScript peers compare
// references as strings, so references this project creates must come from
// the constructors below (or String), which write the exact key orders of the
// reference implementation.
type EndpointRef struct {
	Kind    RefKind
	Host    string
	Port    int
	AgentID AgentID
	// UUID is set for container references, empty for agent references.
	UUID ContainerUUID
}

// IsContainer reports whether r names a container rather than an agent.
func (r EndpointRef) IsContainer() bool { return r.UUID != "" }

// String writes r in the key order the reference implementation uses for a
// reference of its shape (see the constructors).
func (r EndpointRef) String() string {
	switch {
	case r.UUID != "" && r.Kind == RefDirect:
		return ContainerDirectRef(r.Host, r.Port, r.UUID, r.AgentID)
	case r.UUID != "":
		return containerRef(r.Kind, r.Host, r.Port, r.AgentID, r.UUID)
	case r.Kind == RefNoConnect:
		// The reference always writes an empty host and port 0 here; keep
		// what was parsed so that String round-trips.
		return noConnectRef(r.AgentID, r.Host, r.Port)
	default:
		return agentRef(r.Kind, r.Host, r.Port, r.AgentID)
	}
}

// AgentDirectRef is the reference of an agent that serves its own endpoint:
// {"host":H,"port":P,"kind":1,"agentId":A}.
func AgentDirectRef(host string, port int, agentID AgentID) string {
	return agentRef(RefDirect, host, port, agentID)
}

// AgentNoConnectRef is the reference of an agent without an endpoint:
// {"kind":2,"agentId":A,"host":"","port":0}.
func AgentNoConnectRef(agentID AgentID) string {
	return noConnectRef(agentID, "", 0)
}

// ContainerOnAgentRef is the reference of a container served through its
// agent: {"kind":K,"host":H,"port":P,"agentId":A,"uuid":U}, K being 2 when
// the agent's reference is noconnect and 0 (routed) otherwise.
func ContainerOnAgentRef(agent EndpointRef, uuid ContainerUUID) string {
	kind := RefRouted
	if agent.Kind == RefNoConnect {
		kind = RefNoConnect
	}
	return containerRef(kind, agent.Host, agent.Port, agent.AgentID, uuid)
}

// ContainerDirectRef is the reference of a container with a server of its
// own: {"kind":1,"host":H,"port":P,"uuid":U,"agentId":A}.
func ContainerDirectRef(host string, port int, uuid ContainerUUID, agentID AgentID) string {
	b := make([]byte, 0, 64+len(host)+len(uuid)+len(agentID))
	b = append(b, `{"kind":1,"host":`...)
	b = appendJSString(b, host)
	b = append(b, `,"port":`...)
	b = strconv.AppendInt(b, int64(port), 10)
	b = append(b, `,"uuid":`...)
	b = appendJSString(b, string(uuid))
	b = append(b, `,"agentId":`...)
	b = appendJSString(b, string(agentID))
	return string(append(b, '}'))
}

func agentRef(kind RefKind, host string, port int, agentID AgentID) string {
	b := make([]byte, 0, 48+len(host)+len(agentID))
	b = append(b, `{"host":`...)
	b = appendJSString(b, host)
	b = append(b, `,"port":`...)
	b = strconv.AppendInt(b, int64(port), 10)
	b = append(b, `,"kind":`...)
	b = strconv.AppendInt(b, int64(kind), 10)
	b = append(b, `,"agentId":`...)
	b = appendJSString(b, string(agentID))
	return string(append(b, '}'))
}

func noConnectRef(agentID AgentID, host string, port int) string {
	b := make([]byte, 0, 48+len(host)+len(agentID))
	b = append(b, `{"kind":2,"agentId":`...)
	b = appendJSString(b, string(agentID))
	b = append(b, `,"host":`...)
	b = appendJSString(b, host)
	b = append(b, `,"port":`...)
	b = strconv.AppendInt(b, int64(port), 10)
	return string(append(b, '}'))
}

func containerRef(kind RefKind, host string, port int, agentID AgentID, uuid ContainerUUID) string {
	b := make([]byte, 0, 64+len(host)+len(uuid)+len(agentID))
	b = append(b, `{"kind":`...)
	b = strconv.AppendInt(b, int64(kind), 10)
	b = append(b, `,"host":`...)
	b = appendJSString(b, host)
	b = append(b, `,"port":`...)
	b = strconv.AppendInt(b, int64(port), 10)
	b = append(b, `,"agentId":`...)
	b = appendJSString(b, string(agentID))
	b = append(b, `,"uuid":`...)
	b = appendJSString(b, string(uuid))
	return string(append(b, '}'))
}

// appendJSString quotes s as JavaScript's JSON.stringify does, which is not
// what encoding/json does: Go escapes <, >, & and U+2028/U+2029, JavaScript
// does not, and references are compared byte for byte by the TS peers.
// Invalid UTF-8 becomes U+FFFD so that the output is always valid JSON.
func appendJSString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c >= 0x20:
				b = append(b, c)
			case c == '\b':
				b = append(b, '\\', 'b')
			case c == '\f':
				b = append(b, '\\', 'f')
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = utf8.AppendRune(b, utf8.RuneError)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// ErrInvalidRef is wrapped by every ParseEndpointRef error.
var ErrInvalidRef = errors.New("invalid endpoint reference")

// ParseEndpointRef parses a reference written in any key order. Unknown keys
// are ignored; kind is required, host, port, agentId and uuid may be absent
// or null.
func ParseEndpointRef(s string) (EndpointRef, error) {
	if s == "" {
		return EndpointRef{}, fmt.Errorf("%w: empty string", ErrInvalidRef)
	}
	var w struct {
		Kind    *json.Number `json:"kind"`
		Host    *string      `json:"host"`
		Port    *json.Number `json:"port"`
		AgentID *string      `json:"agentId"`
		UUID    *string      `json:"uuid"`
	}
	if err := json.Unmarshal([]byte(s), &w); err != nil {
		return EndpointRef{}, fmt.Errorf("%w %q: %w", ErrInvalidRef, truncate(s), err)
	}
	if w.Kind == nil {
		return EndpointRef{}, fmt.Errorf("%w %q: no kind", ErrInvalidRef, truncate(s))
	}
	kind, err := integral(*w.Kind, 0, 2)
	if err != nil {
		return EndpointRef{}, fmt.Errorf("%w %q: kind: %w", ErrInvalidRef, truncate(s), err)
	}
	r := EndpointRef{Kind: RefKind(kind)}
	if w.Port != nil {
		port, err := integral(*w.Port, 0, 65535)
		if err != nil {
			return EndpointRef{}, fmt.Errorf("%w %q: port: %w", ErrInvalidRef, truncate(s), err)
		}
		r.Port = int(port)
	}
	if w.Host != nil {
		r.Host = *w.Host
	}
	if w.AgentID != nil {
		r.AgentID = AgentID(*w.AgentID)
	}
	if w.UUID != nil {
		r.UUID = ContainerUUID(*w.UUID)
	}
	return r, nil
}

// integral accepts a JSON number that is a whole number in [lo, hi]; 3738.0
// is accepted because a JavaScript peer cannot tell it from 3738.
func integral(n json.Number, lo, hi int64) (int64, error) {
	if i, err := n.Int64(); err == nil {
		if i < lo || i > hi {
			return 0, fmt.Errorf("%d out of range [%d, %d]", i, lo, hi)
		}
		return i, nil
	}
	f, err := n.Float64()
	if err != nil || f != math.Trunc(f) || f < float64(lo) || f > float64(hi) {
		return 0, fmt.Errorf("%s is not a whole number in [%d, %d]", n.String(), lo, hi)
	}
	return int64(f), nil
}

func truncate(s string) string {
	const max = 200
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
