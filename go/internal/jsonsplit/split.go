// Package jsonsplit splits JSON arrays into their raw elements without
// reflection, for the protocol's [method, params] and [agentId, args]
// envelopes on the hot path.
package jsonsplit

import (
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// ErrNotArray is returned for input that is not a JSON array.
var ErrNotArray = errors.New("not a JSON array")

// Array returns the elements of a JSON array without decoding them.
// It relies on its input being valid JSON (backrpc validated the payload);
// on anything else it fails or returns elements that do not decode later.
// It exists because decoding into []json.RawMessage goes through reflection
// and copies every element, on the hot path of every back-request.
func Array(b []byte) ([]json.RawMessage, error) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return nil, ErrNotArray
	}
	i++
	out := make([]json.RawMessage, 0, 4)
	depth, start, inStr := 0, -1, false
	for ; i < len(b); i++ {
		c := b[i]
		if inStr {
			switch c {
			case '\\':
				i++
			case '"':
				inStr = false
			}
			continue
		}
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '"':
			inStr = true
		case '[', '{':
			depth++
		case ']', '}':
			if depth == 0 { // the closing bracket of the array
				if start >= 0 {
					out = append(out, trimSpace(b[start:i]))
				}
				return out, nil
			}
			depth--
		case ',':
			if depth == 0 {
				if start < 0 {
					return nil, ErrNotArray
				}
				out = append(out, trimSpace(b[start:i]))
				start = -1
				continue
			}
		}
		if start < 0 {
			start = i
		}
	}
	return nil, ErrNotArray
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// String reads a JSON string, without reflection when it has no
// escapes.
func String(b []byte) (string, error) {
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		inner := b[1 : len(b)-1]
		simple := true
		for _, c := range inner {
			if c == '\\' || c == '"' || c < 0x20 {
				simple = false
				break
			}
		}
		// Invalid UTF-8 decodes to U+FFFD: only encoding/json does that.
		if simple && utf8.Valid(inner) {
			return string(inner), nil
		}
	}
	var s string
	err := json.Unmarshal(b, &s)
	return s, err
}
