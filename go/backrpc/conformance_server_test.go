package backrpc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/internal/transcript"
)

// Conformance (b): the client side of every captured scenario is replayed,
// byte for byte, against Go servers on 127.0.0.1, and every answer the
// reference server gave must come back with the same shape: op, id (the
// same request id, or our server's id where the reference sent its own),
// and JSON types and keys of the payload.
//
// Network-specific answers (ar, gg, cs, ...) are the network glue's work,
// not this package's: a canned handler returns the recorded answer of each
// request id, and is held until the replay reaches the point where the
// reference client received it, so requests overlap as they did (that is
// what makes scenario 07 hit the in-flight limit). Events and back-requests
// the reference server sent are the glue's too and are skipped.
//
// Deliberate differences, checked as such:
//   - a request whose payload is not JSON, or that has no payload frame, is
//     answered with responseError (the reference stays silent);
//   - retry carries 1, not the in-flight count (scenario 07 runs with
//     MaxInflight 26, the reference's effective limit, to draw it at all);
//   - a session dropped for silence is sent askHello at once, and the
//     connection of a session that ends (silence or close) is closed: the
//     replay waits for its raw peer to reconnect;
//   - the hello answer carries {"aliveTimeout":N} with the alive timeout
//     granted and the server's capabilities, where the reference's payload
//     is empty (its clients never read it).

func TestTranscriptReplayAgainstServer(t *testing.T) {
	for _, f := range loadTranscripts(t) {
		t.Run(f.Name, func(t *testing.T) {
			newServerReplay(t, f).run(t)
		})
	}
}

type answerKey struct{ endpoint, id string }

type cannedAnswer struct {
	msg      Message
	taken    bool
	released bool
	gate     chan struct{}
}

// cannedAnswers hands each request id its recorded answer once the replay
// releases it.
type cannedAnswers struct {
	mu      sync.Mutex
	answers map[answerKey][]*cannedAnswer
}

func (c *cannedAnswers) add(k answerKey, m Message) {
	c.answers[k] = append(c.answers[k], &cannedAnswer{msg: m, gate: make(chan struct{})})
}

func (c *cannedAnswers) take(k answerKey) *cannedAnswer {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range c.answers[k] {
		if !a.taken {
			a.taken = true
			return a
		}
	}
	return nil
}

func (c *cannedAnswers) release(k answerKey) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range c.answers[k] {
		if !a.released {
			a.released = true
			close(a.gate)
			return true
		}
	}
	return false
}

func (c *cannedAnswers) handler(endpoint string) func(ctx context.Context, cl ClientInfo, method string, params json.RawMessage) (any, error) {
	return func(ctx context.Context, cl ClientInfo, method string, params json.RawMessage) (any, error) {
		id, _ := RequestIDFromContext(ctx)
		a := c.take(answerKey{endpoint, id})
		if a == nil {
			return nil, fmt.Errorf("no recorded answer for %s at %s", id, endpoint)
		}
		select {
		case <-a.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if a.msg.Op == OpResponseError {
			return nil, DecodeErrorPayload(a.msg.Payload)
		}
		return json.RawMessage(a.msg.Payload), nil
	}
}

type replayEndpoint struct {
	name     string // as recorded, tcp://127.0.0.1:3737
	addr     string // ours
	server   *Server
	ids      []string // reference server ids, one per incarnation
	restarts []float64
	window   [][2]float64 // per restart: out-lines in (from, to) wait for it
}

type replaySession struct {
	name     string
	endpoint *replayEndpoint
	peer     *rawPeer
	clientID string // of its last hello
}

type serverReplay struct {
	file      transcript.File
	canned    *cannedAnswers
	endpoints map[string]*replayEndpoint
	sessions  map[string]*replaySession
	lines     []transcript.Line // dealer lines, by time
}

func newServerReplay(t *testing.T, f transcript.File) *serverReplay {
	r := &serverReplay{
		file:      f,
		canned:    &cannedAnswers{answers: map[answerKey][]*cannedAnswer{}},
		endpoints: map[string]*replayEndpoint{},
		sessions:  map[string]*replaySession{},
	}
	for _, l := range transcript.SortByTime(f.Lines) {
		if l.Router() {
			continue
		}
		r.lines = append(r.lines, l)
		ep := r.endpoints[l.Endpoint()]
		if ep == nil {
			ep = &replayEndpoint{name: l.Endpoint()}
			r.endpoints[l.Endpoint()] = ep
		}
		if l.Dir != "in" {
			continue
		}
		m, err := Decode(l.Body())
		require.NoError(t, err, "line %d", l.Num)
		switch m.Op {
		case OpResponse, OpResponseError:
			r.canned.add(answerKey{l.Endpoint(), m.ID}, m)
		case OpHello, OpPong, OpAskHello:
			if n := len(ep.ids); n == 0 || ep.ids[n-1] != m.ID {
				ep.ids = append(ep.ids, m.ID)
				if n > 0 {
					ep.restarts = append(ep.restarts, l.T)
				}
			}
		}
	}
	// The outage before each restart: from the last line the old server
	// sent to the first the new one sent.
	for _, ep := range r.endpoints {
		for _, rt := range ep.restarts {
			last := 0.0
			for _, l := range r.lines {
				if l.Endpoint() == ep.name && l.Dir == "in" && l.T < rt && l.T > last {
					last = l.T
				}
			}
			ep.window = append(ep.window, [2]float64{last, rt})
		}
	}
	return r
}

func (r *serverReplay) startServer(t *testing.T, ep *replayEndpoint) {
	opts := ServerOptions{PingInterval: 20 * time.Millisecond}
	if r.file.Name == "07-retry-limit" {
		opts.MaxInflight = 26 // the reference lets 26 run; the 27th is retried
	}
	ep.server = listenServer(t, ep.addr, opts, ServerHandler{HandleRequest: r.canned.handler(ep.name)})
}

func (r *serverReplay) session(t *testing.T, l transcript.Line) *replaySession {
	s := r.sessions[l.Session()]
	if s == nil {
		ep := r.endpoints[l.Endpoint()]
		s = &replaySession{name: l.Session(), endpoint: ep, peer: dialRaw(t, ep.addr)}
		r.sessions[l.Session()] = s
	}
	return s
}

func (r *serverReplay) run(t *testing.T) {
	for _, ep := range r.endpoints {
		ep.addr = freeAddr(t)
		r.startServer(t, ep)
	}
	var deferred []transcript.Line
	nextRestart := map[string]int{}
	checked := 0
	for i, l := range r.lines {
		ep := r.endpoints[l.Endpoint()]
		// Restart a server at its recorded restart point, then deliver
		// what its peers sent during the outage (the reference client's
		// queue would).
		if k := nextRestart[ep.name]; k < len(ep.restarts) && l.T >= ep.restarts[k] {
			nextRestart[ep.name] = k + 1
			require.NoError(t, ep.server.Close())
			r.startServer(t, ep)
			for _, s := range r.sessions {
				if s.endpoint == ep {
					s.peer.waitConnected(t)
				}
			}
			for _, d := range deferred {
				r.sendOut(t, d, i)
			}
			deferred = nil
		}
		if l.Dir == "out" {
			if k := nextRestart[ep.name]; k < len(ep.window) && l.T > ep.window[k][0] && l.T < ep.window[k][1] {
				deferred = append(deferred, l)
				continue
			}
			r.sendOut(t, l, i)
			continue
		}
		if r.expectIn(t, l) {
			checked++
		}
	}
	require.Empty(t, deferred)
	assert.Positive(t, checked)

	// Barrier: each session's next message must be the pong to a new ping,
	// so nothing unexpected is left queued.
	for _, s := range r.sessions {
		s.peer.sendMsg(t, Message{Op: OpPing})
		m := s.peer.recv(t)
		assert.Equal(t, OpPong, m.Op, "%s: unexpected %s %s before the final pong", s.name, m.Op, m.ID)
	}
}

// sendOut sends a recorded client message as it is and, for the two bad
// requests we answer where the reference did not, checks that answer.
func (r *serverReplay) sendOut(t *testing.T, l transcript.Line, i int) {
	s := r.session(t, l)
	body := l.Body()
	m, decErr := Decode(body)
	if decErr == nil && m.Op == OpHello {
		s.clientID = m.ID
	}
	if decErr == nil && m.Op == OpPing && s.clientID != "" && r.expectsAskHello(l, i) && !r.afterRestart(s, l) {
		// The reference timed this client out here (scenario 08): let
		// ours do the same before the ping arrives.
		srv := s.endpoint.server
		require.Eventually(t, func() bool { _, ok := srv.Client(s.clientID); return !ok },
			waitFor, 5*time.Millisecond, "%s: client %s not timed out", s.name, s.clientID)
		s.clientID = ""
		// Deliberate: the dropped client is told at once (askHello) and
		// its connection closed; the ping goes on the next one.
		got := s.peer.recv(t)
		assert.Equal(t, OpAskHello, got.Op, "line %d: a client dropped for silence is asked to say hello", l.Num)
		s.peer.waitConnected(t)
	}
	s.peer.send(t, body...)
	if decErr == nil && m.Op == OpClose {
		// Deliberate: the connection of a closed session is closed.
		s.clientID = ""
		s.peer.waitConnected(t)
	}

	badRequest := (decErr != nil && m.Op == OpRequest && len(body) == 2) ||
		(decErr == nil && m.Op == OpRequest && !json.Valid(m.Payload))
	if badRequest {
		got := s.peer.recv(t)
		assert.Equal(t, OpResponseError, got.Op, "line %d: Go answers a bad request", l.Num)
		assert.Equal(t, m.ID, got.ID, "line %d", l.Num)
		assert.Equal(t, `{message:string,stack:string}`, jsonShape(got.Payload), "line %d", l.Num)
	}
}

// expectsAskHello reports whether the reference answered the ping at line
// index i with askHello.
func (r *serverReplay) expectsAskHello(ping transcript.Line, i int) bool {
	for _, l := range r.lines[i+1:] {
		if l.Session() != ping.Session() {
			continue
		}
		if l.Dir == "out" {
			return false
		}
		if m, err := Decode(l.Body()); err == nil && m.Op == OpAskHello {
			return true
		}
		if m, err := Decode(l.Body()); err == nil && m.Op == OpPong {
			continue
		}
		return false
	}
	return false
}

func (r *serverReplay) afterRestart(s *replaySession, l transcript.Line) bool {
	for _, w := range s.endpoint.window {
		if l.T > w[0] && l.T < w[1] {
			return true
		}
	}
	return false
}

// expectIn waits for the answer a recorded in-line stands for and compares
// shapes. It reports whether the line was checked (not skipped).
func (r *serverReplay) expectIn(t *testing.T, l transcript.Line) bool {
	want, err := Decode(l.Body())
	require.NoError(t, err)
	switch want.Op {
	case OpEvent, OpRequest:
		return false // the network's events and back-requests: not ours
	case OpResponse, OpResponseError:
		require.True(t, r.canned.release(answerKey{l.Endpoint(), want.ID}), "line %d: nothing to release", l.Num)
	}
	s := r.sessions[l.Session()]
	require.NotNil(t, s, "line %d: an answer before the session spoke", l.Num)
	got := s.peer.recv(t)
	where := fmt.Sprintf("%s line %d (%s %s)", r.file.Name, l.Num, want.Op, want.ID)
	require.Equal(t, want.Op, got.Op, where)
	switch want.Op {
	case OpHello, OpPong, OpAskHello:
		assert.Equal(t, s.endpoint.server.ID(), got.ID, "%s: our server id where the reference sent its own", where)
		assert.Equal(t, idForm(want.ID), idForm(got.ID), where)
	default:
		assert.Equal(t, want.ID, got.ID, where)
	}
	if want.Op == OpHello && len(want.Payload) == 0 {
		// Deliberate: the answer says what was granted.
		h := ParseHelloInfo(got.Payload)
		assert.Positive(t, h.AliveTimeout, "%s: the hello answer names the alive timeout granted, got %q", where, got.Payload)
		assert.Equal(t, string(EncodeHelloInfo(h)), string(got.Payload), "%s: the hello answer is a HelloInfo", where)
	} else if l.Redacted {
		// Stack text was edited in the capture; compare shape only.
		assert.Equal(t, jsonShape(want.Payload), jsonShape(got.Payload), where)
	} else if want.Op == OpResponse || want.Op == OpResponseError {
		assert.Equal(t, string(want.Payload), string(got.Payload), "%s: the handler's answer passes unchanged", where)
	} else {
		assert.Equal(t, jsonShape(want.Payload), jsonShape(got.Payload), where)
	}
	return true
}

var (
	uuidRE  = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	reqIDRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-\d+$`)
)

// idForm classifies an id frame: empty, uuid, uuid-N, or other.
func idForm(id string) string {
	switch {
	case id == "":
		return "empty"
	case uuidRE.MatchString(id):
		return "uuid"
	case reqIDRE.MatchString(id):
		return "uuid-N"
	}
	return "other"
}

// jsonShape describes a payload by JSON types and object keys, recursively:
// what a peer depends on, without the values that vary per run.
func jsonShape(p []byte) string {
	if len(bytes.TrimSpace(p)) == 0 {
		return "empty"
	}
	var v any
	if err := json.Unmarshal(p, &v); err != nil {
		return "invalid"
	}
	return shapeOf(v)
}

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
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = shapeOf(e)
		}
		return "[" + strings.Join(parts, ",") + "]"
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + ":" + shapeOf(x[k])
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	return fmt.Sprintf("%T", v)
}

func TestJSONShape(t *testing.T) {
	assert.Equal(t, "empty", jsonShape(nil))
	assert.Equal(t, "invalid", jsonShape([]byte("{x")))
	assert.Equal(t, "number", jsonShape([]byte("26")))
	assert.Equal(t, jsonShape([]byte("1")), jsonShape([]byte("26")))
	assert.Equal(t, `{a:[number,string],b:null}`, jsonShape([]byte(`{"b":null,"a":[1,"x"]}`)))
	assert.Equal(t, "uuid", idForm("254e9b3b-ac7a-4db4-8556-77c9fca9bcdd"))
	assert.Equal(t, "uuid-N", idForm("254e9b3b-ac7a-4db4-8556-77c9fca9bcdd-12"))
	assert.Equal(t, "other", idForm("x"))
	assert.Equal(t, "empty", idForm(""))
}
