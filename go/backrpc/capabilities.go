package backrpc

import (
	"encoding/json"
	"slices"
	"time"
)

// Capabilities are the protocol extensions a Go peer announces in its hello,
// in a form a TypeScript 0.7 peer ignores: an extra "capabilities" field in
// the client's hello payload, and a JSON payload in the server's hello
// answer, whose payload the reference leaves empty and its clients never
// read. A peer uses an extension only when the other side announced it; a
// peer that announces nothing (every TS 0.7 peer) is spoken to exactly as
// the reference would.
//
// Client → server hello:  {"aliveTimeout":3,"capabilities":["state"]}
// Server → client hello:  {"aliveTimeout":3,"capabilities":["state"]}
//
// In the server's answer aliveTimeout is the timeout granted (the server
// caps what a client may ask for), in seconds.
const (
	// CapStatePublish: the server accepts a repeated agent registration
	// (`ar`) as an update of the agent's containers (it keeps the ones it
	// already had), so an agent may re-register to publish container state.
	// The TS 0.7 server detaches containers on a second `ar`; an agent that
	// does not see this capability registers once per server session.
	CapStatePublish = "state"
	// CapInterest: events are delivered by interest (the client's
	// references, pending gets and explicit subscriptions) instead of to
	// every client.
	CapInterest = "interest"
	// CapStream: streamed responses.
	CapStream = "stream"
	// CapOps: operator commands (drain, undrain, terminate).
	CapOps = "ops"
)

// HelloInfo is what one side of a session announced in its hello.
type HelloInfo struct {
	// AliveTimeout: in a client hello, what the client asks for (0 when
	// not given); in a server answer, what the server granted (0 when the
	// server did not say, as a TS 0.7 server never does).
	AliveTimeout time.Duration
	// Capabilities, sorted; nil when none were announced.
	Capabilities []string
}

// Has reports whether capability name was announced.
func (h HelloInfo) Has(name string) bool {
	_, found := slices.BinarySearch(h.Capabilities, name)
	return found
}

// maxCapabilities bounds what a peer may announce; names past it are
// ignored, as are names longer than maxCapabilityLen.
const (
	maxCapabilities  = 32
	maxCapabilityLen = 64
)

// EncodeHelloInfo writes a hello payload with the alive timeout and the
// capabilities: {"aliveTimeout":N} alone when there are none, which is
// byte for byte what a TS 0.7 client sends.
func EncodeHelloInfo(h HelloInfo) []byte {
	p := EncodeHelloPayload(h.AliveTimeout)
	if len(h.Capabilities) == 0 {
		return p
	}
	caps, _ := json.Marshal(h.Capabilities) // []string cannot fail
	out := make([]byte, 0, len(p)+len(caps)+18)
	out = append(out, p[:len(p)-1]...)
	out = append(out, `,"capabilities":`...)
	out = append(out, caps...)
	return append(out, '}')
}

// ParseHelloInfo reads a hello payload of either side. A payload that is
// empty or not a JSON object (a TS 0.7 server's answer) gives the zero
// HelloInfo; an alive timeout that is missing or unusable gives 0.
// Capabilities are de-duplicated, sorted and bounded.
func ParseHelloInfo(p []byte) HelloInfo {
	var h HelloInfo
	if alive, ok := ParseHelloPayload(p); ok {
		h.AliveTimeout = alive
	}
	if len(p) == 0 || !json.Valid(p) {
		return h
	}
	var raw struct {
		Capabilities []json.RawMessage `json:"capabilities"`
	}
	if err := json.Unmarshal(p, &raw); err != nil {
		return h
	}
	for _, c := range raw.Capabilities {
		if len(h.Capabilities) == maxCapabilities {
			break
		}
		var name string
		if json.Unmarshal(c, &name) != nil || name == "" || len(name) > maxCapabilityLen {
			continue
		}
		h.Capabilities = append(h.Capabilities, name)
	}
	slices.Sort(h.Capabilities)
	h.Capabilities = slices.Compact(h.Capabilities)
	return h
}
