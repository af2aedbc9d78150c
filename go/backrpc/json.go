package backrpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/huly-net/huly-net/go/internal/jsonsplit"
)

// MarshalJSON encodes v as the reference's JSON.stringify would, as far as
// a Go value allows: nil (JavaScript's undefined) becomes null, a
// json.RawMessage is taken as already encoded (an empty one is null), and
// '<', '>' and '&' are not escaped.
func MarshalJSON(v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return []byte("null"), nil
	case json.RawMessage:
		if len(x) == 0 {
			return []byte("null"), nil
		}
		return x, nil
	case string:
		return AppendJSONString(make([]byte, 0, len(x)+2), x), nil
	}
	return marshalSlow(v)
}

func marshalSlow(v any) ([]byte, error) {
	b := encBufs.Get().(*bytes.Buffer)
	defer encBufs.Put(b)
	b.Reset()
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	out := bytes.TrimSuffix(b.Bytes(), []byte{'\n'})
	return append([]byte(nil), out...), nil
}

var encBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// AppendJSONString appends s encoded as MarshalJSON encodes it. Strings of
// printable ASCII without quotes or backslashes (ids, uuids, method and
// operation names: nearly every string on the hot path) are copied as they
// are; anything else goes through encoding/json, whose escaping (U+2028,
// invalid UTF-8, control characters) is the reference here.
func AppendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			b, _ := marshalSlow(s) // a string always encodes
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// ParseJSON returns p when it is one valid JSON value. Otherwise it reports
// false: the protocol treats a payload that does not parse as "no value".
func ParseJSON(p []byte) (json.RawMessage, bool) {
	if len(p) == 0 || !json.Valid(p) {
		return nil, false
	}
	return json.RawMessage(p), true
}

// EncodeRequestPayload builds a request payload, [method, params].
func EncodeRequestPayload(method string, params any) ([]byte, error) {
	p, err := MarshalJSON(params)
	if err != nil {
		return nil, fmt.Errorf("encode params of %q: %w", method, err)
	}
	out := make([]byte, 0, len(method)+len(p)+5)
	out = append(out, '[')
	out = AppendJSONString(out, method)
	out = append(out, ',')
	out = append(out, p...)
	out = append(out, ']')
	return out, nil
}

// ErrBadRequestPayload is returned for a request payload that is not a JSON
// array whose first element is a method name.
var ErrBadRequestPayload = errors.New("backrpc: request payload is not [method, params]")

// DecodeRequestPayload splits a request payload into its method and params.
// Missing params are null (the reference passes undefined). Elements after
// the second are ignored, as the reference's destructuring does.
//
// The params returned share p's memory.
func DecodeRequestPayload(p []byte) (method string, params json.RawMessage, err error) {
	// Validate once, then split without reflection: decoding into
	// []json.RawMessage walks the payload again through reflect (a
	// global lock under concurrency) and copies every element.
	if json.Valid(p) {
		if parts, err := jsonsplit.Array(p); err == nil && len(parts) > 0 {
			if method, err := jsonsplit.String(parts[0]); err == nil {
				params = json.RawMessage("null")
				if len(parts) > 1 {
					params = parts[1]
				}
				return method, params, nil
			}
		}
	}
	return decodeRequestPayloadSlow(p)
}

// decodeRequestPayloadSlow is the reflection decoder, kept for its error
// messages on bad payloads.
func decodeRequestPayloadSlow(p []byte) (method string, params json.RawMessage, err error) {
	var parts []json.RawMessage
	if err := json.Unmarshal(p, &parts); err != nil {
		return "", nil, fmt.Errorf("%w: %v", ErrBadRequestPayload, err)
	}
	if len(parts) == 0 {
		return "", nil, fmt.Errorf("%w: empty array", ErrBadRequestPayload)
	}
	if err := json.Unmarshal(parts[0], &method); err != nil {
		return "", nil, fmt.Errorf("%w: method is not a string", ErrBadRequestPayload)
	}
	params = json.RawMessage("null")
	if len(parts) > 1 {
		params = parts[1]
	}
	return method, params, nil
}

// RemoteError is an error answered by the peer (a responseError), or one a
// handler returns to have a given message and stack sent as they are (the
// network server relays an agent's errors this way).
type RemoteError struct {
	Message string `json:"message"`
	Stack   string `json:"stack"`
}

func (e *RemoteError) Error() string { return e.Message }

// EncodeErrorPayload builds a responseError payload {"message","stack"}.
// A *RemoteError in err's chain is sent as it is; any other error gets a
// JavaScript-like stack line, so that TypeScript peers see the same shape.
func EncodeErrorPayload(err error) []byte {
	var re *RemoteError
	if !errors.As(err, &re) {
		msg := "unknown error"
		if err != nil {
			msg = err.Error()
		}
		re = &RemoteError{Message: msg, Stack: "Error: " + msg}
	}
	b, mErr := MarshalJSON(re)
	if mErr != nil { // two strings always encode; keep the frame valid anyway
		return []byte(`{"message":"unencodable error","stack":""}`)
	}
	return b
}

// DecodeErrorPayload reads a responseError payload. A payload that does not
// parse still yields an error, naming what arrived.
func DecodeErrorPayload(p []byte) *RemoteError {
	var raw struct {
		Message *string `json:"message"`
		Stack   *string `json:"stack"`
	}
	if err := json.Unmarshal(p, &raw); err != nil || raw.Message == nil {
		return &RemoteError{Message: fmt.Sprintf("malformed error response: %q", truncate(p, 200))}
	}
	re := &RemoteError{Message: *raw.Message}
	if raw.Stack != nil {
		re.Stack = *raw.Stack
	}
	return re
}

// DefaultAliveTimeout is the reference's alive timeout, used when a hello
// does not give one.
const DefaultAliveTimeout = 3 * time.Second

// maxAliveTimeout keeps a hostile hello from overflowing time.Duration.
const maxAliveTimeout = 365 * 24 * time.Hour

// EncodeHelloPayload builds a client hello payload, {"aliveTimeout":N} with N
// in seconds (an integer when whole, as the reference writes it).
func EncodeHelloPayload(aliveTimeout time.Duration) []byte {
	secs := aliveTimeout.Seconds()
	var n string
	if secs == math.Trunc(secs) {
		n = strconv.FormatInt(int64(secs), 10)
	} else {
		n = strconv.FormatFloat(secs, 'f', -1, 64)
	}
	return []byte(`{"aliveTimeout":` + n + `}`)
}

// ParseHelloPayload reads the alive timeout of a client hello. It reports
// false when the payload has no usable positive number (the caller then uses
// its default, as the reference does); other fields are ignored.
func ParseHelloPayload(p []byte) (time.Duration, bool) {
	secs, ok := parseHelloFast(p)
	if !ok {
		var h struct {
			AliveTimeout *float64 `json:"aliveTimeout"`
		}
		if err := json.Unmarshal(p, &h); err != nil || h.AliveTimeout == nil {
			return 0, false
		}
		secs = *h.AliveTimeout
	}
	if !(secs > 0) || math.IsInf(secs, 0) {
		return 0, false
	}
	if secs >= maxAliveTimeout.Seconds() {
		return maxAliveTimeout, true
	}
	return time.Duration(secs * float64(time.Second)), true
}

// parseHelloFast reads the hello every client sends, exactly
// {"aliveTimeout":N}, without reflection (it is decoded on the new
// connection's goroutine, whose stack the reflection decoder grew); it
// reports false for anything else, which the decoder then reads.
func parseHelloFast(p []byte) (float64, bool) {
	const prefix = `{"aliveTimeout":`
	if len(p) < len(prefix)+2 || string(p[:len(prefix)]) != prefix || p[len(p)-1] != '}' {
		return 0, false
	}
	num := p[len(prefix) : len(p)-1]
	// A JSON number (json.Valid), as encoding/json would read it.
	if len(num) == 0 || (num[0] != '-' && (num[0] < '0' || num[0] > '9')) || !json.Valid(num) {
		return 0, false
	}
	secs, err := strconv.ParseFloat(string(num), 64)
	return secs, err == nil
}

// maxRetryTicks bounds the wait a retry payload can ask for.
const maxRetryTicks = 1 << 20

// ParseRetryPayload reads the number of ticks a retry asks to wait: at least
// 1 (a payload that does not parse counts as 1).
func ParseRetryPayload(p []byte) int {
	var n float64
	if err := json.Unmarshal(p, &n); err != nil || !(n >= 1) {
		return 1
	}
	if n > maxRetryTicks {
		return maxRetryTicks
	}
	return int(n)
}

// RequestID returns the id "CLIENTID-N" used by both sides for requests.
func RequestID(clientID string, n uint64) string {
	return clientID + "-" + strconv.FormatUint(n, 10)
}
