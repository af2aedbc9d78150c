package backrpc

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestHelloInfoRoundTrip(t *testing.T) {
	p := EncodeHelloInfo(HelloInfo{AliveTimeout: 3 * time.Second, Capabilities: []string{"state", "interest"}})
	assert.Equal(t, `{"aliveTimeout":3,"capabilities":["state","interest"]}`, string(p))
	h := ParseHelloInfo(p)
	assert.Equal(t, 3*time.Second, h.AliveTimeout)
	assert.Equal(t, []string{"interest", "state"}, h.Capabilities)
	assert.True(t, h.Has(CapStatePublish))
	assert.False(t, h.Has(CapStream))
}

func TestHelloInfoWithoutCapabilitiesIsTheReferenceHello(t *testing.T) {
	assert.Equal(t, `{"aliveTimeout":3}`, string(EncodeHelloInfo(HelloInfo{AliveTimeout: 3 * time.Second})))
}

func TestParseHelloInfoOfAReferenceServer(t *testing.T) {
	for _, p := range []string{"", "null", "garbage", `{"x":1}`, `[1]`} {
		h := ParseHelloInfo([]byte(p))
		assert.Zero(t, h.AliveTimeout, p)
		assert.Empty(t, h.Capabilities, p)
	}
}

func TestParseHelloInfoBoundsWhatAPeerAnnounces(t *testing.T) {
	long := make([]byte, maxCapabilityLen+1)
	for i := range long {
		long[i] = 'a'
	}
	p := `{"aliveTimeout":1,"capabilities":["b","a","a",1,"","` + string(long) + `"`
	for i := 0; i < 100; i++ {
		p += `,"c` + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `"`
	}
	p += `]}`
	h := ParseHelloInfo([]byte(p))
	assert.Len(t, h.Capabilities, maxCapabilities-1) // "a" twice counts once
	assert.True(t, h.Has("a"))
	assert.True(t, h.Has("b"))
}

func FuzzParseHelloInfo(f *testing.F) {
	f.Add([]byte(`{"aliveTimeout":3,"capabilities":["state"]}`))
	f.Add([]byte(`{"capabilities":null}`))
	f.Fuzz(func(t *testing.T, p []byte) {
		h := ParseHelloInfo(p)
		assert.LessOrEqual(t, len(h.Capabilities), maxCapabilities)
		q := ParseHelloInfo(EncodeHelloInfo(h))
		assert.Equal(t, h.Capabilities, q.Capabilities)
	})
}
