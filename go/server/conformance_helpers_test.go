package server

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/transport"
)

// answerWait bounds every wait for one answer of our server. Generous: the
// race detector on two shared cores makes a loaded run many times slower,
// and a wait only lasts this long when the answer never comes.
const answerWait = 10 * time.Second

// runningServer is a network server on 127.0.0.1 with its Run loop, which
// a test can stop and start again on the same port.
type runningServer struct {
	s      *Server
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func runServer(t *testing.T, addr string, opts Options) *runningServer {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet()
	}
	s := New(opts)
	require.NoError(t, s.Listen(addr))
	ctx, cancel := context.WithCancel(context.Background())
	rs := &runningServer{s: s, cancel: cancel, done: make(chan error, 1)}
	go func() { rs.done <- s.Run(ctx, 2*time.Second) }()
	t.Cleanup(func() { rs.stop(t) })
	return rs
}

// stop ends the Run loop and waits for the shutdown, bounded.
func (rs *runningServer) stop(t *testing.T) {
	rs.once.Do(func() {
		rs.cancel()
		select {
		case err := <-rs.done:
			assert.NoError(t, err, "server shutdown")
		case <-time.After(answerWait):
			t.Error("server did not stop")
		}
	})
}

// rawConn is a TypeScript-format peer: a DEALER that announces no routing
// id (as libzmq in the TS client does) and sends frames exactly as given,
// with no session logic of its own. Events are kept apart from everything
// else, which the test matches message by message.
type rawConn struct {
	name     string
	d        *transport.Dealer
	connects atomic.Int32
	in       chan backrpc.Message
	stop     chan struct{}
	pending  []backrpc.Message // received, not matched yet; test goroutine only

	evMu    sync.Mutex
	events  []timedEvent
	helloAt time.Time // arrival of the latest hello answer
}

// timedEvent is one event batch and when it arrived.
type timedEvent struct {
	at      time.Time
	payload json.RawMessage
}

func dialRawConn(t *testing.T, name, addr string) *rawConn {
	t.Helper()
	c := &rawConn{name: name, in: make(chan backrpc.Message, 4096), stop: make(chan struct{})}
	c.d = transport.Dial(addr, transport.DealerHandler{
		OnConnect: func() { c.connects.Add(1) },
		OnMessage: c.onMessage,
	}, transport.DealerOptions{MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	t.Cleanup(c.close)
	require.Eventually(t, func() bool { return c.connects.Load() > 0 && c.d.Connected() },
		answerWait, 5*time.Millisecond, "%s: no connection to %s", name, addr)
	return c
}

func (c *rawConn) onMessage(frames [][]byte) {
	m, err := backrpc.Decode(frames)
	if err != nil {
		// Our server must never send this; keep it visible to the test
		// as a message nothing matches.
		m = backrpc.Message{Op: 255, ID: fmt.Sprintf("undecodable %q: %v", frames, err)}
	}
	if err == nil && m.Op == backrpc.OpEvent {
		c.evMu.Lock()
		c.events = append(c.events, timedEvent{time.Now(), append(json.RawMessage(nil), m.Payload...)})
		c.evMu.Unlock()
		return
	}
	if err == nil && m.Op == backrpc.OpHello {
		c.evMu.Lock()
		c.helloAt = time.Now()
		c.evMu.Unlock()
	}
	select {
	case c.in <- m:
	case <-c.stop:
	}
}

// close stops the DEALER at once; idempotent.
func (c *rawConn) close() {
	select {
	case <-c.stop:
		return
	default:
	}
	close(c.stop)
	_ = c.d.Close()
}

// closeAfterFlush writes what is queued (a final close message), then closes.
func (c *rawConn) closeAfterFlush() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	select {
	case <-c.stop:
		return
	default:
	}
	close(c.stop)
	_ = c.d.CloseContext(ctx)
}

func (c *rawConn) send(t *testing.T, frames ...[]byte) {
	t.Helper()
	require.NoError(t, c.d.Send(frames...), "%s: send", c.name)
}

func (c *rawConn) ourEvents() []json.RawMessage {
	c.evMu.Lock()
	defer c.evMu.Unlock()
	out := make([]json.RawMessage, len(c.events))
	for i, e := range c.events {
		out[i] = e.payload
	}
	return out
}

func (c *rawConn) timedEvents() []timedEvent {
	c.evMu.Lock()
	defer c.evMu.Unlock()
	return append([]timedEvent(nil), c.events...)
}

func (c *rawConn) lastHello() time.Time {
	c.evMu.Lock()
	defer c.evMu.Unlock()
	return c.helloAt
}

// recv returns the first message, received or arriving within answerWait,
// that match accepts; the others stay pending for later matches.
func (c *rawConn) recv(t *testing.T, what string, match func(backrpc.Message) bool) backrpc.Message {
	t.Helper()
	deadline := time.NewTimer(answerWait)
	defer deadline.Stop()
	for {
		for i, m := range c.pending {
			if match(m) {
				c.pending = append(c.pending[:i:i], c.pending[i+1:]...)
				return m
			}
		}
		select {
		case m := <-c.in:
			c.pending = append(c.pending, m)
		case <-deadline.C:
			require.FailNowf(t, "no answer", "%s: waited %s for %s; unmatched meanwhile: %s",
				c.name, answerWait, what, describe(c.pending))
		}
	}
}

// barrier sends a ping and returns whatever arrived before its pong and was
// not matched: what our server sent that the replay did not expect. The
// server answers a connection's pings in order, after everything it sent
// that connection synchronously before.
func (c *rawConn) barrier(t *testing.T) []backrpc.Message {
	t.Helper()
	// What is already here is unmatched, a stray pong included, which
	// must not pass for the barrier's own.
	for drained := false; !drained; {
		select {
		case m := <-c.in:
			c.pending = append(c.pending, m)
		default:
			drained = true
		}
	}
	left := c.pending
	c.pending = nil
	c.send(t, []byte("5"), []byte{}, []byte{}, []byte{})
	for {
		m := c.recv(t, "the pong to a barrier ping", func(backrpc.Message) bool { return true })
		if m.Op == backrpc.OpPong {
			return left
		}
		left = append(left, m)
	}
}

// sync returns once the server has handled everything sent on c so far:
// it handles one connection's messages in order and answers a ping at
// once. Messages that arrive meanwhile stay pending.
func (c *rawConn) sync(t *testing.T) {
	t.Helper()
	c.send(t, []byte("5"), []byte{}, []byte{}, []byte{})
	c.recv(t, "the pong to a sync ping", func(m backrpc.Message) bool { return m.Op == backrpc.OpPong })
}

func describe(ms []backrpc.Message) string {
	if len(ms) == 0 {
		return "nothing"
	}
	parts := make([]string, len(ms))
	for i, m := range ms {
		p := string(m.Payload)
		if len(p) > 160 {
			p = p[:160] + "…"
		}
		parts[i] = fmt.Sprintf("[%s %q %s]", m.Op, m.ID, p)
	}
	return strings.Join(parts, " ")
}

// ---- comparing payloads ----

func decodeJSON(t *testing.T, p []byte, where string) any {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal(p, &v), "%s: payload %q is not JSON", where, p)
	return v
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// shapeOf describes a JSON value by types and object keys, recursively; an
// array by the set of its elements' shapes, so that lists of different
// lengths with the same kind of element compare equal.
func shapeOf(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "bool"
	case float64:
		return "number"
	case string:
		return "string"
	case []any:
		set := map[string]bool{}
		for _, e := range x {
			set[shapeOf(e)] = true
		}
		return "[" + strings.Join(sortedKeys(set), "|") + "]"
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			keys[i] = k + ":" + shapeOf(x[k])
		}
		return "{" + strings.Join(keys, ",") + "}"
	}
	return fmt.Sprintf("%T", v)
}

func shape(p []byte) string {
	if len(strings.TrimSpace(string(p))) == 0 {
		return "empty"
	}
	var v any
	if json.Unmarshal(p, &v) != nil {
		return "invalid"
	}
	return shapeOf(v)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// isUUIDv4 is what a server id must be (PROTOCOL.md §2).
func isUUIDv4(s string) bool {
	u, err := uuid.Parse(s)
	return err == nil && u.Version() == 4 && len(s) == 36
}

// isBackRequestID checks the CLIENTID-N form of a server's back-request id.
func isBackRequestID(id, clientID string) bool {
	rest, ok := strings.CutPrefix(id, clientID+"-")
	if !ok || rest == "" {
		return false
	}
	for _, r := range rest {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func TestShapeAndIDHelpers(t *testing.T) {
	assert.Equal(t, "empty", shape(nil))
	assert.Equal(t, "invalid", shape([]byte("{x")))
	assert.Equal(t, shape([]byte("1")), shape([]byte("26")))
	assert.Equal(t, `{a:[number|string],b:null}`, shape([]byte(`{"b":null,"a":[1,"x",2]}`)))
	assert.Equal(t, shape([]byte(`[{"a":1}]`)), shape([]byte(`[{"a":1},{"a":2}]`)))
	assert.NotEqual(t, shape([]byte(`[]`)), shape([]byte(`[{"a":1}]`)))
	assert.True(t, jsonEqual([]byte(`{"a":1,"b":[2]}`), []byte(`{"b":[2],"a":1.0}`)))
	assert.False(t, jsonEqual([]byte(`{"a":1}`), []byte(`{"a":"1"}`)))
	assert.True(t, isUUIDv4("254e9b3b-ac7a-4db4-8556-77c9fca9bcdd"))
	assert.False(t, isUUIDv4("254e9b3b-ac7a-1db4-8556-77c9fca9bcdd"), "version 1")
	assert.True(t, isBackRequestID("c-1-12", "c-1"))
	assert.False(t, isBackRequestID("c-1-", "c-1"))
	assert.False(t, isBackRequestID("c-2-1", "c-1"))
}
