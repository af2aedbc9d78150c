package backrpc

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func frames(s ...string) [][]byte {
	out := make([][]byte, len(s))
	for i, f := range s {
		out[i] = []byte(f)
	}
	return out
}

func TestDecode(t *testing.T) {
	cases := []struct {
		name    string
		in      [][]byte
		want    Message
		wantErr error
	}{
		{"three frames", frames("1", "c-0", `["al",{}]`), Message{OpRequest, "c-0", []byte(`["al",{}]`)}, nil},
		{"four frames", frames("0", "c", `{"aliveTimeout":3}`, ""), Message{OpHello, "c", []byte(`{"aliveTimeout":3}`)}, nil},
		{"extra frames ignored", frames("5", "", "", "", "junk", "more"), Message{OpPing, "", []byte{}}, nil},
		{"highest op", frames("9", "s", ""), Message{OpAskHello, "s", []byte{}}, nil},
		{"missing payload keeps op and id", frames("1", "c-3"), Message{Op: OpRequest, ID: "c-3"}, ErrShortMessage},
		{"op only", frames("5"), Message{Op: OpPing}, ErrShortMessage},
		{"nothing", nil, Message{}, ErrShortMessage},
		{"two digits", frames("10", "", ""), Message{}, ErrBadOp},
		{"letter", frames("x", "", ""), Message{}, ErrBadOp},
		{"empty op", frames("", "", ""), Message{}, ErrBadOp},
		{"leading space", frames(" 1", "", ""), Message{}, ErrBadOp},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode(tc.in)
			if tc.wantErr != nil {
				require.Error(t, err)
				assert.ErrorIs(t, err, tc.wantErr)
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, tc.want.Op, got.Op)
			assert.Equal(t, tc.want.ID, got.ID)
			assert.Equal(t, string(tc.want.Payload), string(got.Payload))
		})
	}
}

func TestEncodeFrameCounts(t *testing.T) {
	for op := OpHello; op <= OpAskHello; op++ {
		c := EncodeClient(Message{Op: op, ID: "x", Payload: []byte("1")})
		s := EncodeServer(Message{Op: op, ID: "x", Payload: []byte("1")})
		want := 3
		if op == OpHello || op == OpPing || op == OpClose || op == OpEvent {
			want = 4
			assert.Empty(t, c[3], "%s: fourth frame must be empty", op)
		}
		assert.Len(t, c, want, "client %s", op)
		assert.Len(t, s, 3, "server %s", op)
		assert.Equal(t, []byte{byte('0' + op)}, c[0])
		assert.Equal(t, "x", string(s[1]))
	}
	// nil id and payload still give frames (empty ones), never nil slices
	// that a transport might treat as absent.
	f := EncodeClient(Message{Op: OpPing})
	require.Len(t, f, 4)
	for i, fr := range f {
		assert.NotNil(t, fr, "frame %d", i)
	}
}

func TestOpString(t *testing.T) {
	assert.Equal(t, "responseError", OpResponseError.String())
	assert.Equal(t, "askHello", OpAskHello.String())
	assert.Equal(t, "op(12)", Op(12).String())
	assert.False(t, Op(10).Valid())
}

func TestMarshalJSON(t *testing.T) {
	cases := []struct {
		in   any
		want string
	}{
		{nil, "null"},
		{json.RawMessage(nil), "null"},
		{json.RawMessage(`{"a":1}`), `{"a":1}`},
		{"<a&b>", `"<a&b>"`},
		{map[string]any{"k": []int{1, 2}}, `{"k":[1,2]}`},
		{&RemoteError{Message: "m", Stack: "s"}, `{"message":"m","stack":"s"}`},
	}
	for _, tc := range cases {
		got, err := MarshalJSON(tc.in)
		require.NoError(t, err)
		assert.Equal(t, tc.want, string(got))
	}
	_, err := MarshalJSON(make(chan int))
	assert.Error(t, err)
}

func TestRequestPayload(t *testing.T) {
	p, err := EncodeRequestPayload("gg", json.RawMessage(`{"kind":"echo","request":{}}`))
	require.NoError(t, err)
	assert.Equal(t, `["gg",{"kind":"echo","request":{}}]`, string(p))

	p, err = EncodeRequestPayload("al", nil)
	require.NoError(t, err)
	assert.Equal(t, `["al",null]`, string(p))

	m, params, err := DecodeRequestPayload([]byte(`["cs",["u","echo",{"n":1}],"ignored"]`))
	require.NoError(t, err)
	assert.Equal(t, "cs", m)
	assert.JSONEq(t, `["u","echo",{"n":1}]`, string(params))

	m, params, err = DecodeRequestPayload([]byte(`["al"]`))
	require.NoError(t, err)
	assert.Equal(t, "al", m)
	assert.Equal(t, "null", string(params), "missing params are null (undefined)")

	for _, bad := range []string{``, `{not json`, `{}`, `[]`, `[1,{}]`, `"al"`, `null`} {
		_, _, err := DecodeRequestPayload([]byte(bad))
		assert.ErrorIs(t, err, ErrBadRequestPayload, "payload %q", bad)
	}
}

func TestErrorPayload(t *testing.T) {
	p := EncodeErrorPayload(errors.New("boom"))
	assert.JSONEq(t, `{"message":"boom","stack":"Error: boom"}`, string(p))

	relayed := fmt.Errorf("relay: %w", &RemoteError{Message: "m", Stack: "at x"})
	assert.JSONEq(t, `{"message":"m","stack":"at x"}`, string(EncodeErrorPayload(relayed)))

	re := DecodeErrorPayload([]byte(`{"message":"Unknown methodzz","stack":"Error: Unknown methodzz\n at y"}`))
	assert.Equal(t, "Unknown methodzz", re.Message)
	assert.Equal(t, "Error: Unknown methodzz\n at y", re.Stack)
	assert.Equal(t, "Unknown methodzz", re.Error())

	re = DecodeErrorPayload([]byte(`{not json`))
	assert.Contains(t, re.Message, "malformed error response")
}

func TestHelloPayload(t *testing.T) {
	assert.Equal(t, `{"aliveTimeout":3}`, string(EncodeHelloPayload(3*time.Second)))
	assert.Equal(t, `{"aliveTimeout":3600}`, string(EncodeHelloPayload(time.Hour)))
	assert.Equal(t, `{"aliveTimeout":0.25}`, string(EncodeHelloPayload(250*time.Millisecond)))

	d, ok := ParseHelloPayload([]byte(`{"aliveTimeout":1,"x":"extra"}`))
	require.True(t, ok)
	assert.Equal(t, time.Second, d)
	d, ok = ParseHelloPayload([]byte(`{"aliveTimeout":1e300}`))
	require.True(t, ok)
	assert.Equal(t, maxAliveTimeout, d)
	for _, bad := range []string{``, `{`, `{}`, `{"aliveTimeout":"3"}`, `{"aliveTimeout":0}`, `{"aliveTimeout":-1}`, `[]`} {
		_, ok := ParseHelloPayload([]byte(bad))
		assert.False(t, ok, "payload %q", bad)
	}
}

func TestRetryPayload(t *testing.T) {
	assert.Equal(t, 26, ParseRetryPayload([]byte("26")))
	assert.Equal(t, 1, ParseRetryPayload([]byte("1")))
	assert.Equal(t, 1, ParseRetryPayload([]byte("0")))
	assert.Equal(t, 1, ParseRetryPayload([]byte("-5")))
	assert.Equal(t, 1, ParseRetryPayload([]byte("x")))
	assert.Equal(t, maxRetryTicks, ParseRetryPayload([]byte("1e12")))
}

func TestParseJSON(t *testing.T) {
	_, ok := ParseJSON(nil)
	assert.False(t, ok)
	_, ok = ParseJSON([]byte("{not json"))
	assert.False(t, ok)
	raw, ok := ParseJSON([]byte(`"ok"`))
	require.True(t, ok)
	assert.Equal(t, `"ok"`, string(raw))
}

func TestRequestID(t *testing.T) {
	assert.Equal(t, "abc-0", RequestID("abc", 0))
	assert.Equal(t, "abc-41", RequestID("abc", 41))
}
