package backrpc

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// encodingJSON is what MarshalJSON promises for a string: encoding/json
// without HTML escaping.
func encodingJSON(t testing.TB, s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	require.NoError(t, enc.Encode(s))
	return string(bytes.TrimSuffix(b.Bytes(), []byte{'\n'}))
}

var jsonStrings = []string{
	"", "cs", "5f1c9f3e-0b7a-4b7e-9a55-1d2c3b4a5e6f-12", "<&>", `quote"d`, `back\slash`,
	"tab\there", "nul\x00", "del\x7f", "é", "\u2028\u2029", "bad\xffutf8", "emoji 🎉", "~ }{",
}

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range jsonStrings {
		assert.Equal(t, encodingJSON(t, s), string(AppendJSONString(nil, s)), "%q", s)
		got, err := MarshalJSON(s)
		require.NoError(t, err)
		assert.Equal(t, encodingJSON(t, s), string(got), "%q", s)
	}
	// Appends, never overwrites.
	assert.Equal(t, `["a","b"`, string(AppendJSONString([]byte(`["a",`), "b")))
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range jsonStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := string(AppendJSONString(nil, s)), encodingJSON(t, s); got != want {
			t.Fatalf("%q: got %s, want %s", s, got, want)
		}
	})
}

func TestEncodeRequestPayloadKeepsItsShape(t *testing.T) {
	p, err := EncodeRequestPayload("cs", json.RawMessage(`["u","echo",{"a":1}]`))
	require.NoError(t, err)
	assert.Equal(t, `["cs",["u","echo",{"a":1}]]`, string(p))
	p, err = EncodeRequestPayload("al", nil)
	require.NoError(t, err)
	assert.Equal(t, `["al",null]`, string(p))
	p, err = EncodeRequestPayload("m\"x", map[string]string{"k": "<v>"})
	require.NoError(t, err)
	assert.Equal(t, `["m\"x",{"k":"<v>"}]`, string(p))
	_, err = EncodeRequestPayload("x", func() {})
	assert.Error(t, err)
}

var requestPayloads = []string{
	`["cs",["u","echo",{"a":1}]]`, `["al"]`, `[ "gg" , {"kind":"echo"} , "ignored" ]`, `["m",null]`,
	`[]`, `{}`, `"cs"`, `[1,2]`, `[null,1]`, `["a\"b",[1]]`, `["cs",`, ``, `[" ",{"x":"]"}]`, "[\"\\u00e9\",\n{}]",
}

// The fast decoder must agree with the reflection decoder on every input:
// the same method and params, an error exactly when it errs.
func checkDecodeAgrees(t *testing.T, p []byte) {
	m1, p1, err1 := DecodeRequestPayload(p)
	m2, p2, err2 := decodeRequestPayloadSlow(p)
	if (err1 == nil) != (err2 == nil) {
		t.Fatalf("%q: fast error %v, slow error %v", p, err1, err2)
	}
	if err1 != nil {
		return
	}
	if m1 != m2 || !bytes.Equal(p1, p2) {
		t.Fatalf("%q: fast (%q, %s), slow (%q, %s)", p, m1, p1, m2, p2)
	}
}

func TestDecodeRequestPayloadFastAgreesWithSlow(t *testing.T) {
	for _, p := range requestPayloads {
		checkDecodeAgrees(t, []byte(p))
	}
	m, params, err := DecodeRequestPayload([]byte(`["cs",["u","echo",{"a":1}]]`))
	require.NoError(t, err)
	assert.Equal(t, "cs", m)
	assert.Equal(t, `["u","echo",{"a":1}]`, string(params))
}

func FuzzDecodeRequestPayloadAgrees(f *testing.F) {
	for _, p := range requestPayloads {
		f.Add([]byte(p))
	}
	f.Fuzz(func(t *testing.T, p []byte) { checkDecodeAgrees(t, p) })
}

func BenchmarkDecodeRequestPayload(b *testing.B) {
	p := []byte(`["cs",["5f1c9f3e-0b7a-4b7e-9a55-1d2c3b4a5e6f","echo","xxxxxxxxxxxxxxxx"]]`)
	b.ReportAllocs()
	for range b.N {
		if _, _, err := DecodeRequestPayload(p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeRequestPayload(b *testing.B) {
	params := json.RawMessage(`["5f1c9f3e-0b7a-4b7e-9a55-1d2c3b4a5e6f","echo","xxxxxxxxxxxxxxxx"]`)
	b.ReportAllocs()
	for range b.N {
		if _, err := EncodeRequestPayload("cs", params); err != nil {
			b.Fatal(err)
		}
	}
}

var helloPayloads = []string{
	`{"aliveTimeout":3}`, `{"aliveTimeout":0.25}`, `{"aliveTimeout":-1}`, `{"aliveTimeout":1e400}`,
	`{"aliveTimeout":"3"}`, `{"aliveTimeout":null}`, `{"aliveTimeout":3,"x":1}`, `{"aliveTimeout":3 }`,
	`{"aliveTimeout":true}`, `{"aliveTimeout":[1]}`, `{"aliveTimeout":01}`, `{"aliveTimeout":1.}`, `{}`, ``,
	`{"aliveTimeout":3}}`, `{"aliveTimeout":{}}`, `{"AliveTimeout":5}`, `{"aliveTimeout":31536001}`,
}

// parseHelloSlow is the encoding/json reading the fast path must agree with.
func parseHelloSlow(p []byte) (time.Duration, bool) {
	var h struct {
		AliveTimeout *float64 `json:"aliveTimeout"`
	}
	if err := json.Unmarshal(p, &h); err != nil || h.AliveTimeout == nil {
		return 0, false
	}
	secs := *h.AliveTimeout
	if !(secs > 0) || math.IsInf(secs, 0) {
		return 0, false
	}
	if secs >= maxAliveTimeout.Seconds() {
		return maxAliveTimeout, true
	}
	return time.Duration(secs * float64(time.Second)), true
}

func checkHelloAgrees(t *testing.T, p []byte) {
	d1, ok1 := ParseHelloPayload(p)
	d2, ok2 := parseHelloSlow(p)
	if d1 != d2 || ok1 != ok2 {
		t.Fatalf("%q: got (%v, %v), encoding/json (%v, %v)", p, d1, ok1, d2, ok2)
	}
}

func TestParseHelloPayloadAgreesWithEncodingJSON(t *testing.T) {
	for _, p := range helloPayloads {
		checkHelloAgrees(t, []byte(p))
	}
	d, ok := ParseHelloPayload(EncodeHelloPayload(1500 * time.Millisecond))
	assert.True(t, ok)
	assert.Equal(t, 1500*time.Millisecond, d)
}

func FuzzParseHelloPayload(f *testing.F) {
	for _, p := range helloPayloads {
		f.Add([]byte(p))
	}
	f.Fuzz(func(t *testing.T, p []byte) { checkHelloAgrees(t, p) })
}
