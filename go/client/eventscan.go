package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/huly-net/huly-net/go/internal/jsonsplit"
	"github.com/huly-net/huly-net/go/network"
)

// errBadEvent is returned for an event payload that is not a JSON object
// of the expected shape.
var errBadEvent = errors.New("malformed network event")

// scanEvent reads a network event payload, which nobody validated, as far
// as the client needs it: the agent entries in full (few, and Get's
// wake-ups read their kinds); of the container entries only those whose
// uuid wanted() asks for, or that are not additions (a removal or an update
// is rare and may concern a reference being obtained right now). The rest
// is skipped without decoding; what is decoded is validated by
// encoding/json. It never reads past the payload, whatever it holds.
func scanEvent(payload []byte, wanted func(uuid []byte) bool) (network.Event, error) {
	var ev network.Event
	if bytes.Equal(bytes.TrimSpace(payload), jsonNull) {
		return ev, nil
	}
	var err error
	ok := eachMember(payload, func(key, value []byte) bool {
		// A repeated key replaces what came before, as in encoding/json.
		switch {
		case keyIs(key, "agents"):
			if e := json.Unmarshal(value, &ev.Agents); e != nil {
				err = fmt.Errorf("%w: agents: %w", errBadEvent, e)
				return false
			}
		case keyIs(key, "containers"):
			ev.Containers = nil
			if bytes.Equal(value, jsonNull) {
				return true
			}
			if !eachElement(value, func(el []byte) bool {
				uuid, added, ok := containerEntry(el)
				if !ok {
					err = fmt.Errorf("%w: container entry %.80q", errBadEvent, el)
					return false
				}
				if added && !wanted(uuid) {
					return true
				}
				var ce network.ContainerEvent
				if e := json.Unmarshal(el, &ce); e != nil {
					err = fmt.Errorf("%w: %w", errBadEvent, e)
					return false
				}
				ev.Containers = append(ev.Containers, ce)
				return true
			}) && err == nil {
				err = fmt.Errorf("%w: containers is not an array", errBadEvent)
			}
			if err != nil {
				return false
			}
		}
		return true
	})
	if err != nil {
		return network.Event{}, err
	}
	if !ok {
		return network.Event{}, fmt.Errorf("%w: not a JSON object", errBadEvent)
	}
	return ev, nil
}

// containerEntry reads the uuid of a container entry, {"container":
// {..., "uuid": ...}, "event": N}, and whether it is an addition (event 0
// or none), without decoding the rest. It fails only when el is not an
// object; a missing or odd uuid reads as "", which a full decode then
// judges.
func containerEntry(el []byte) (uuid []byte, added bool, ok bool) {
	added = true
	ok = eachMember(el, func(key, value []byte) bool {
		switch {
		case keyIs(key, "container"):
			uuid = nil
			eachMember(value, func(k, v []byte) bool {
				if keyIs(k, "uuid") {
					uuid = stringBytes(v)
				}
				return true
			})
		case keyIs(key, "event"):
			// Anything but a plain 0 is read as "not an addition",
			// which only means the entry is decoded in full.
			added = bytes.Equal(value, []byte("0"))
		}
		return true
	})
	return uuid, added, ok
}

var jsonNull = []byte("null")

// stringBytes is the content of a JSON string token: its bytes between the
// quotes when it has no escapes (no copy), else the decoded string; nil
// for anything but a string.
func stringBytes(tok []byte) []byte {
	if len(tok) < 2 || tok[0] != '"' {
		return nil
	}
	if inner := tok[1 : len(tok)-1]; bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return inner
	}
	s, err := jsonsplit.String(tok)
	if err != nil {
		return nil
	}
	return []byte(s)
}

// foldEqual is strings.EqualFold without converting raw, for the ASCII
// keys every event carries.
func foldEqual(raw []byte, want string) bool {
	for _, c := range raw {
		if c >= 0x80 {
			return strings.EqualFold(string(raw), want)
		}
	}
	if len(raw) != len(want) {
		return false
	}
	for i, c := range raw {
		w := want[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= w && w <= 'Z' {
			w += 'a' - 'A'
		}
		if c != w {
			return false
		}
	}
	return true
}

// keyIs compares a raw object key (without its quotes) with want as
// encoding/json matches keys to fields: without regard to case.
func keyIs(raw []byte, want string) bool {
	if bytes.IndexByte(raw, '\\') < 0 {
		return foldEqual(raw, want)
	}
	q := make([]byte, 0, len(raw)+2)
	q = append(append(append(q, '"'), raw...), '"')
	s, err := jsonsplit.String(q)
	return err == nil && strings.EqualFold(s, want)
}

// eachMember calls fn with the raw key (without quotes) and the raw value
// of each member of the JSON object b, until fn returns false. It reports
// false when b is not an object it could walk to the end of (or to where
// fn stopped). Values are delimited, not validated.
func eachMember(b []byte, fn func(key, value []byte) bool) bool {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return true
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return false
		}
		ke := stringEnd(b, i)
		if ke < 0 {
			return false
		}
		key := b[i+1 : ke-1]
		i = skipSpace(b, ke)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		i = skipSpace(b, i+1)
		ve := valueEnd(b, i)
		if ve < 0 {
			return false
		}
		if !fn(key, b[i:ve]) {
			return true
		}
		i = skipSpace(b, ve)
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case '}':
			return true
		case ',':
			i = skipSpace(b, i+1)
		default:
			return false
		}
	}
}

// eachElement calls fn with each raw element of the JSON array b, until
// fn returns false; it reports false when b is not an array it could walk.
func eachElement(b []byte, fn func(value []byte) bool) bool {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return true
	}
	for {
		ve := valueEnd(b, i)
		if ve < 0 {
			return false
		}
		if !fn(b[i:ve]) {
			return true
		}
		i = skipSpace(b, ve)
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case ']':
			return true
		case ',':
			i = skipSpace(b, i+1)
		default:
			return false
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string that starts at b[i]
// (a '"'), or -1 when it does not end.
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// valueEnd returns the index just past the value that starts at b[i], or
// -1. Objects and arrays are delimited by bracket depth, strings by their
// quotes, anything else by the next delimiter.
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				e := stringEnd(b, j)
				if e < 0 {
					return -1
				}
				j = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	case ',', ':', '}', ']':
		return -1
	}
	j := i
	for j < len(b) {
		switch b[j] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return j
		}
		j++
	}
	return j
}
