package agent

import (
	"encoding/json"
	"errors"
)

var errNotArray = errors.New("not a JSON array")

// splitArray (a copy of the client package's) returns the elements of a JSON array without decoding them.
// It relies on its input being valid JSON (backrpc validated the payload);
// on anything else it fails or returns elements that do not decode later.
// It exists because decoding into []json.RawMessage goes through reflection
// and copies every element, on the hot path of every back-request.
func splitArray(b []byte) ([]json.RawMessage, error) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return nil, errNotArray
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
					return nil, errNotArray
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
	return nil, errNotArray
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

// decodeString reads a JSON string, without reflection when it has no
// escapes.
func decodeString(b []byte) (string, error) {
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		inner := b[1 : len(b)-1]
		simple := true
		for _, c := range inner {
			if c == '\\' || c == '"' || c < 0x20 {
				simple = false
				break
			}
		}
		if simple {
			return string(inner), nil
		}
	}
	var s string
	err := json.Unmarshal(b, &s)
	return s, err
}
