package server

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/internal/testutil"
	"github.com/huly-net/huly-net/go/internal/transcript"
)

// Wire conformance of the network server (issue 2, item 6 (b) at the
// network level): the client side of every captured scenario, as the
// reference network server saw it (its ROUTER's "in" lines), is replayed
// against our server on 127.0.0.1, one raw DEALER per recorded connection,
// and everything the reference sent back (its "out" lines) must come from
// ours too:
//
//   - answers to requests (response, responseError, retry) by request id,
//     with the same op and, per method, the same content: exact where the
//     values come from the replayed messages (ar au gg cr cs, al and ak as
//     sets), record by record for cl and events, by JSON shape elsewhere;
//   - hello, pong and askHello with our server's id, a UUID v4;
//   - back-requests to the connection that hosts the agent, with the same
//     method and params and an id CLIENTID-N; the replay answers them with
//     the recorded answer under our id;
//   - events, which we send once per check period rather than once per
//     alive timeout: per connection, what the reference announced (which
//     agents and containers were added, updated, removed, in that order per
//     agent or container) must be among what we announced before the
//     connection closed.
//
// Where our server differs on purpose (PROTOCOL.md §10, backrpc's package
// doc), the difference is asserted as such and named; each scenario's set
// of named differences is checked at its end (wantDifferences), so a
// difference that goes away or appears shows up here.
//
// Timing is not replayed: messages go out as soon as the previous answer is
// in. Where the reference's answer depended on time passing (the unused
// timeout before ct, a client timed out before a ping draws askHello), the
// replay waits for our server to reach the same state, with our short
// timeouts. Scenario 05 stops our server and starts a new one on the same
// port where the reference was restarted; scenario 07 runs with MaxInflight
// 26, the reference's effective limit, so that the 27th request draws a
// retry at all (the recorded client's 13 s wait before resending is not
// replayed: it resends once the answers recorded before its resend are in).
// Before the replay speaks on another connection it pings the last one and
// waits for the pong, so that our server has handled everything sent there:
// across connections its order is not the replay's.
//
// Not replayed here: the other processes' sockets, among them the agent's
// own endpoint in scenario 03 (cc, cs, cd on port 3738), which is not the
// network server's; backrpc's replay covers their framing.

var transcriptDir = "../backrpc/testdata/transcripts"

// Differences from the reference that the replay names.
const (
	diffCLNull        = "cl with kind null lists every container (reference: [])"
	diffEndpoint      = "records carry the container's real endpoint (reference: \"\" for containers started through gg)"
	diffLastVisit     = "lastVisit is Unix ms (reference: process-relative, fractional, in records built by gg)"
	diffNullOmitted   = "records leave out null labels and extra (reference: \"labels\":null,\"extra\":null in records built by gg)"
	diffRetryOne      = "retry beyond MaxInflight carries 1 (reference: the in-flight count, 26)"
	diffBadRequest    = "a request that is not JSON or has no payload frame draws responseError (reference: no answer)"
	diffUnknownMethod = "unknown method text has a space: \"Unknown method X\" (reference: \"Unknown methodX\")"
	diffRelayedError  = "an agent's error reaches the caller as the agent sent it (reference: nests the agent's stack in the message)"
	diffStackText     = "error stacks are one Go line, not a JavaScript stack"
	diffHelloInfo     = "the hello answer carries the alive timeout granted and the capabilities (reference: empty payload, which its clients never read)"
	diffDropCloses    = "a client dropped for silence is sent askHello at once and its connection closed (reference: askHello only in answer to its next ping)"
)

// Timing-dependent differences: named and logged, not in wantDifferences.
const (
	diffEventsEarly       = "events reach a connection that the reference never sent them to, its check period (3 s) not having come before the connection left"
	diffEventsBeforeHello = "a connection misses an event that ours broadcast before its hello (the reference, batching for 3 s, still had it queued)"
)

// wantDifferences lists, per scenario, the differences the replay must
// observe.
var wantDifferences = map[string][]string{
	"01-hello-ping":                 {diffHelloInfo},
	"02-agent-register-get-request": {diffHelloInfo, diffEndpoint, diffLastVisit, diffNullOmitted},
	"03-connect-events":             {diffHelloInfo},
	"04-errors":                     {diffHelloInfo, diffRelayedError, diffUnknownMethod, diffStackText},
	"05-server-restart":             {diffHelloInfo, diffEndpoint, diffLastVisit, diffNullOmitted},
	"06-ha-stateless":               {diffHelloInfo, diffCLNull, diffStackText},
	"07-retry-limit":                {diffHelloInfo, diffEndpoint, diffLastVisit, diffNullOmitted, diffRetryOne},
	"08-raw-peer-server-edge-cases": {diffHelloInfo, diffBadRequest, diffDropCloses},
}

func replayOptions(name string) Options {
	o := Options{
		AliveTimeout:  800 * time.Millisecond,
		PingInterval:  100 * time.Millisecond,
		UnusedTimeout: 300 * time.Millisecond,
		// A ct the replay did not expect (see strayTermination) holds our
		// periodic check, and so every event, until it is answered or
		// this runs out: well within answerWait. Every expected
		// back-request is answered within a second even under -race.
		CallTimeout: 3 * time.Second,
	}
	if name == "07-retry-limit" {
		// The reference runs 26 requests of a client at once and retries
		// the 27th; ours would run all 40 under its default of 1024.
		o.MaxInflight = 26
	}
	return o
}

func TestTranscriptReplayAgainstNetworkServer(t *testing.T) {
	files, err := transcript.LoadDir(transcriptDir)
	require.NoError(t, err)
	require.Len(t, files, len(wantDifferences), "a scenario without expectations, or one missing")
	for _, f := range files {
		t.Run(f.Name, func(t *testing.T) {
			want, ok := wantDifferences[f.Name]
			require.True(t, ok, "no expected differences declared for %s", f.Name)
			r := newNetReplay(t, f)
			r.run(t)
			got := sortedKeys(r.diffs)
			delete(r.diffs, diffEventsEarly)
			delete(r.diffs, diffEventsBeforeHello)
			wantSorted := append([]string{}, want...)
			sort.Strings(wantSorted)
			assert.Equal(t, wantSorted, sortedKeys(r.diffs), "differences from the reference")
			for _, d := range got {
				t.Logf("difference: %s", d)
			}
		})
	}
}

type sentRequest struct {
	method string
	params json.RawMessage
}

// replayConn is one recorded connection to the network server (one
// routing id of its ROUTER), played by a raw DEALER.
type replayConn struct {
	*rawConn
	rid       string // recorded routing id, hex
	clientID  string // of its last hello to the current server
	knownAs   string // of its first hello
	helloOn   int32  // rawConn.connects when it last said hello
	sent      map[string]sentRequest
	held      map[string]bool // containers its gg answers handed out
	refEvents []json.RawMessage
	closed    bool
}

type netReplay struct {
	name  string
	lines []transcript.Line // the network server's lines, in capture order
	opts  Options
	addr  string
	srv   *runningServer
	proc  string // the recorded server process now replayed: network, network2
	conns map[string]*replayConn
	order []*replayConn
	// backIDs maps the reference's back-request ids to ours, from the
	// moment our back-request is matched to the recorded answer's.
	backIDs map[string]string
	// backReqs keeps the reference's back-requests by id, for their
	// answers.
	backReqs map[string]sentRequest
	// inText is everything the clients sent: an agent or container our
	// server announces must be named there.
	inText strings.Builder
	// released are the containers released by cr or by their holder's
	// close; restartedAt is when our server was last restarted.
	released    map[string]bool
	restartedAt time.Time
	diffs       map[string]bool
}

func newNetReplay(t *testing.T, f transcript.File) *netReplay {
	r := &netReplay{name: f.Name, opts: replayOptions(f.Name), conns: map[string]*replayConn{},
		backIDs: map[string]string{}, backReqs: map[string]sentRequest{}, released: map[string]bool{}, diffs: map[string]bool{}}
	for _, l := range f.Lines {
		if strings.HasPrefix(l.Proc, "network") && l.Router() {
			require.NotEmpty(t, l.Frames, "line %d: no routing id", l.Num)
			r.lines = append(r.lines, l)
			if l.Dir == "in" {
				for _, fr := range l.Body() {
					r.inText.Write(fr)
				}
			}
		}
	}
	require.NotEmpty(t, r.lines, "%s: no network server lines", f.Name)
	return r
}

func (r *netReplay) diff(d string) { r.diffs[d] = true }

func (r *netReplay) run(t *testing.T) {
	r.addr = testutil.FreeAddr(t)
	r.proc = r.lines[0].Proc
	r.srv = runServer(t, "tcp://"+r.addr, r.opts)
	checked := 0
	for i, l := range r.lines {
		if l.Proc != r.proc {
			r.restart(t, l.Proc)
		}
		if l.Dir == "in" {
			r.send(t, i, l)
			r.syncBeforeSwitch(t, i)
			continue
		}
		r.expect(t, l)
		checked++
	}
	assert.Positive(t, checked, "nothing compared")
	t.Logf("%d messages of the reference server compared", checked)
	for _, c := range r.order {
		if !c.closed {
			r.finish(t, c)
		}
	}
	for _, c := range r.order {
		r.compareEvents(t, c)
	}
}

func (r *netReplay) where(l transcript.Line) string {
	return fmt.Sprintf("%s line %d", r.name, l.Num)
}

func (r *netReplay) conn(t *testing.T, l transcript.Line) *replayConn {
	rid := hex.EncodeToString(l.Frames[0])
	c := r.conns[rid]
	if c == nil {
		require.Equal(t, "in", l.Dir, "%s: the server speaks first to %s", r.where(l), rid)
		c = &replayConn{rawConn: dialRawConn(t, rid, "tcp://"+r.addr), rid: rid, sent: map[string]sentRequest{}, held: map[string]bool{}}
		r.conns[rid] = c
		r.order = append(r.order, c)
	}
	require.False(t, c.closed, "%s: %s speaks after its close", r.where(l), rid)
	return c
}

// restart stops our server and starts a new one on the same port, where the
// reference's was restarted, once every connection has seen what the old
// one sent; the DEALERs reconnect by themselves.
func (r *netReplay) restart(t *testing.T, proc string) {
	t.Logf("restarting the server where the reference became %s", proc)
	before := map[*replayConn]int32{}
	for _, c := range r.order {
		if !c.closed {
			r.settle(t, c)
			before[c] = c.connects.Load()
		}
	}
	r.srv.stop(t)
	r.srv = runServer(t, "tcp://"+r.addr, r.opts)
	r.restartedAt = time.Now()
	for c, n := range before {
		require.Eventually(t, func() bool { return c.connects.Load() > n && c.d.Connected() },
			answerWait, 5*time.Millisecond, "%s did not reconnect", c.rid)
		c.clientID = "" // the new server knows nobody
	}
	r.proc = proc
}

// send replays one message a client sent.
func (r *netReplay) send(t *testing.T, i int, l transcript.Line) {
	c := r.conn(t, l)
	body := append([][]byte(nil), l.Body()...)
	m, decErr := backrpc.Decode(body)
	switch {
	case decErr == nil && m.Op == backrpc.OpHello:
		// Routing ids are per server process (PROTOCOL.md §10): one that
		// reappears after the restart must still be the same client for
		// the same DEALER to play it.
		if c.knownAs != "" {
			require.Equal(t, c.knownAs, m.ID, "%s: routing id %s speaks for another client", r.where(l), c.rid)
		}
		c.knownAs, c.clientID = m.ID, m.ID
		c.helloOn = c.connects.Load()
	case decErr == nil && m.Op == backrpc.OpRequest:
		method, params, err := backrpc.DecodeRequestPayload(m.Payload)
		if err == nil {
			c.sent[m.ID] = sentRequest{method, params}
		}
		var p struct {
			UUID string `json:"uuid"`
		}
		if method == "cr" && json.Unmarshal(params, &p) == nil {
			r.released[p.UUID] = true
			delete(c.held, p.UUID)
		}
	case decErr == nil && (m.Op == backrpc.OpResponse || m.Op == backrpc.OpResponseError):
		ours, ok := r.backIDs[m.ID]
		require.True(t, ok, "%s: an answer to back-request %s, which our server did not send", r.where(l), m.ID)
		delete(r.backIDs, m.ID)
		body[1] = []byte(ours)
		if req := r.backReqs[m.ID]; req.method == "ct" {
			r.checkRemovedWithCT(t, c, req, r.where(l))
		}
	case decErr == nil && m.Op == backrpc.OpPing && c.clientID != "" && r.drawsAskHello(i):
		// The reference had timed this client out (scenario 08: silent
		// for longer than the alive timeout its hello asked for); ours
		// must have too before the ping arrives.
		id := c.clientID
		require.Eventually(t, func() bool { _, known := r.srv.s.rpc.Client(id); return !known },
			answerWait, 5*time.Millisecond, "%s: client %s not timed out", r.where(l), id)
		c.clientID = ""
		// Ours told it at once (askHello) and closed its connection: the
		// ping goes on the next one.
		got := c.recv(t, r.where(l)+" askHello at the drop", func(m backrpc.Message) bool { return m.Op == backrpc.OpAskHello })
		assert.Equal(t, r.srv.s.ID(), got.ID)
		require.Eventually(t, func() bool { return c.connects.Load() > c.helloOn && c.d.Connected() },
			answerWait, 5*time.Millisecond, "%s: the connection of a dropped client was not closed", r.where(l))
		r.diff(diffDropCloses)
	case decErr == nil && m.Op == backrpc.OpClose:
		r.finish(t, c)
		c.send(t, body...)
		c.closeAfterFlush()
		c.closed = true
		return
	}
	c.send(t, body...)

	bad := m.Op == backrpc.OpRequest && (decErr != nil || !json.Valid(m.Payload))
	if bad {
		require.False(t, r.answered(i, c.rid, m.ID), "%s: the reference answered a malformed request", r.where(l))
		got := c.recv(t, "responseError to a malformed request", func(g backrpc.Message) bool { return g.ID == m.ID })
		assert.Equal(t, backrpc.OpResponseError, got.Op, r.where(l))
		assert.Equal(t, "{message:string,stack:string}", shape(got.Payload), r.where(l))
		r.diff(diffBadRequest)
	}
}

// syncBeforeSwitch makes sure our server has handled what the connection of
// line i sent before the replay speaks on another connection: across
// connections the server's order is not the replay's (a duplicate request
// sent on one connection could otherwise arrive after the agent's answer,
// sent on another, had completed the original). Only for a client the
// server knows: an unknown one would draw askHello.
func (r *netReplay) syncBeforeSwitch(t *testing.T, i int) {
	rid := hex.EncodeToString(r.lines[i].Frames[0])
	c := r.conns[rid]
	if c.closed || c.clientID == "" {
		return
	}
	for _, l := range r.lines[i+1:] {
		if l.Dir != "in" || l.Proc != r.lines[i].Proc {
			continue
		}
		if hex.EncodeToString(l.Frames[0]) != rid {
			c.sync(t)
		}
		return
	}
}

// drawsAskHello reports whether the reference answered the ping at line i
// with askHello, that is, did not know the client then.
func (r *netReplay) drawsAskHello(i int) bool {
	rid := string(r.lines[i].Frames[0])
	for _, l := range r.lines[i+1:] {
		if string(l.Frames[0]) != rid || l.Proc != r.lines[i].Proc {
			continue
		}
		if l.Dir == "in" {
			return false
		}
		if m, err := backrpc.Decode(l.Body()); err == nil && m.Op == backrpc.OpAskHello {
			return true
		}
	}
	return false
}

// answered reports whether the reference answered request id on rid after
// line i.
func (r *netReplay) answered(i int, rid, id string) bool {
	for _, l := range r.lines[i+1:] {
		if l.Dir == "out" && hex.EncodeToString(l.Frames[0]) == rid {
			if m, err := backrpc.Decode(l.Body()); err == nil && m.ID == id {
				return true
			}
		}
	}
	return false
}

// expect matches one message the reference sent with what ours sent.
func (r *netReplay) expect(t *testing.T, l transcript.Line) {
	where := r.where(l)
	c := r.conns[hex.EncodeToString(l.Frames[0])]
	require.NotNil(t, c, "%s: the server speaks first", where)
	require.False(t, c.closed, "%s: the server speaks after the client's close", where)
	want, err := backrpc.Decode(l.Body())
	require.NoError(t, err, where)
	switch want.Op {
	case backrpc.OpEvent:
		c.refEvents = append(c.refEvents, want.Payload)
	case backrpc.OpRequest:
		r.expectBackRequest(t, c, want, where)
	case backrpc.OpHello, backrpc.OpPong, backrpc.OpAskHello:
		got := c.recv(t, where+" "+want.Op.String(), func(m backrpc.Message) bool { return m.Op == want.Op })
		assert.Equal(t, r.srv.s.ID(), got.ID, "%s: our server id where the reference sent its own", where)
		assert.True(t, isUUIDv4(got.ID), "%s: server id %q is not a UUID v4", where, got.ID)
		if want.Op == backrpc.OpHello && len(want.Payload) == 0 {
			// Ours says what it granted and what it supports.
			h := backrpc.ParseHelloInfo(got.Payload)
			assert.Positive(t, h.AliveTimeout, "%s: hello answer %q names no alive timeout", where, got.Payload)
			assert.True(t, h.Has(backrpc.CapStatePublish), "%s: hello answer %q does not announce %q", where, got.Payload, backrpc.CapStatePublish)
			r.diff(diffHelloInfo)
			break
		}
		assert.Equal(t, shape(want.Payload), shape(got.Payload), where)
	case backrpc.OpResponse, backrpc.OpResponseError, backrpc.OpRetry:
		got := c.recv(t, fmt.Sprintf("%s %s %s", where, want.Op, want.ID), func(m backrpc.Message) bool {
			return m.ID == want.ID && (m.Op == backrpc.OpResponse || m.Op == backrpc.OpResponseError || m.Op == backrpc.OpRetry)
		})
		r.compareAnswer(t, c, want, got, l)
	default:
		t.Fatalf("%s: the reference server sent %s", where, want.Op)
	}
}

func (r *netReplay) expectBackRequest(t *testing.T, c *replayConn, want backrpc.Message, where string) {
	method, params, err := backrpc.DecodeRequestPayload(want.Payload)
	require.NoError(t, err, where)
	got := c.recv(t, fmt.Sprintf("%s: back-request %s %s", where, method, params), func(m backrpc.Message) bool {
		if m.Op != backrpc.OpRequest {
			return false
		}
		gm, gp, err := backrpc.DecodeRequestPayload(m.Payload)
		return err == nil && gm == method && jsonEqual(gp, params)
	})
	assert.True(t, isBackRequestID(got.ID, c.clientID), "%s: back-request id %q is not %s-N", where, got.ID, c.clientID)
	r.backIDs[want.ID] = got.ID
	r.backReqs[want.ID] = sentRequest{method, params}
}

// checkRemovedWithCT runs just before the replay answers a ct: where the
// reference had announced the container's removal by then, ours must have
// too (its periodic check broadcasts first and terminates in the
// background, so an agent slow to answer holds back no event).
func (r *netReplay) checkRemovedWithCT(t *testing.T, c *replayConn, req sentRequest, where string) {
	var p []json.RawMessage
	require.NoError(t, json.Unmarshal(req.params, &p), where)
	require.Len(t, p, 2, where)
	var args []string
	require.NoError(t, json.Unmarshal(p[1], &args), where)
	require.Len(t, args, 1, where)
	key := "container " + args[0]
	removed := func(evs []entityEvent) bool {
		for _, e := range evs {
			if e.key == key && e.event == 2 {
				return true
			}
		}
		return false
	}
	ref, err := parseEvents(untimed(c.refEvents))
	require.NoError(t, err, where)
	if !removed(ref) {
		return
	}
	ours, err := parseEvents(c.timedEvents())
	require.NoError(t, err, where)
	assert.True(t, removed(ours), "%s: the removal of %s was not announced before its ct", where, key)
}

// compareAnswer compares our answer to a request with the reference's.
func (r *netReplay) compareAnswer(t *testing.T, c *replayConn, want, got backrpc.Message, l transcript.Line) {
	where := fmt.Sprintf("%s (%s %s)", r.where(l), want.Op, want.ID)
	req := c.sent[want.ID]
	require.Equal(t, want.Op, got.Op, "%s: op; our payload %s", where, got.Payload)
	switch want.Op {
	case backrpc.OpRetry:
		if string(want.Payload) == "1" {
			assert.Equal(t, "1", string(got.Payload), where)
			return
		}
		assert.Equal(t, "26", string(want.Payload), where)
		assert.Equal(t, "1", string(got.Payload), "%s: %s", where, diffRetryOne)
		r.diff(diffRetryOne)
	case backrpc.OpResponseError:
		r.compareError(t, req, want, got, where)
	case backrpc.OpResponse:
		r.compareResult(t, req, want.Payload, got.Payload, where)
		var pair []string
		if req.method == "gg" && json.Unmarshal(got.Payload, &pair) == nil && len(pair) == 2 {
			c.held[pair[0]] = true
		}
	}
}

func (r *netReplay) compareError(t *testing.T, req sentRequest, want, got backrpc.Message, where string) {
	require.Equal(t, "{message:string,stack:string}", shape(got.Payload), where)
	w, g := backrpc.DecodeErrorPayload(want.Payload), backrpc.DecodeErrorPayload(got.Payload)
	switch {
	case strings.HasPrefix(w.Message, "Unknown method"):
		name := strings.TrimPrefix(w.Message, "Unknown method")
		assert.Equal(t, req.method, name, where)
		assert.Equal(t, "Unknown method "+name, g.Message, "%s: %s", where, diffUnknownMethod)
		r.diff(diffUnknownMethod)
	case req.method == "cs" && strings.Contains(w.Message, "\n"):
		// The reference relays "<agent's message>\n<agent's stack>"; ours
		// passes the agent's error object on as it came.
		agentMsg := strings.SplitN(w.Message, "\n", 2)[0]
		assert.Equal(t, agentMsg, g.Message, "%s: %s", where, diffRelayedError)
		assert.True(t, strings.HasPrefix(g.Stack, "Error: "+agentMsg), "%s: the agent's stack %q", where, g.Stack)
		r.diff(diffRelayedError)
		return
	default:
		assert.Equal(t, w.Message, g.Message, where)
	}
	assert.Equal(t, "Error: "+g.Message, g.Stack, "%s: %s", where, diffStackText)
	r.diff(diffStackText)
}

func (r *netReplay) compareResult(t *testing.T, req sentRequest, want, got []byte, where string) {
	switch req.method {
	case "cl":
		var p struct {
			Kind *string `json:"kind"`
		}
		_ = json.Unmarshal(req.params, &p)
		var w, g []map[string]any
		require.NoError(t, json.Unmarshal(want, &w), where)
		require.NoError(t, json.Unmarshal(got, &g), "%s: %s", where, got)
		if p.Kind == nil {
			assert.Empty(t, w, "%s: the reference lists nothing for kind null", where)
			assert.NotEmpty(t, g, "%s: %s", where, diffCLNull)
			for _, rec := range g {
				assert.NotEmpty(t, rec["uuid"], where)
				assert.NotEmpty(t, rec["endpoint"], where)
			}
			r.diff(diffCLNull)
			return
		}
		r.compareRecords(t, w, g, where)
	case "al":
		assert.ElementsMatch(t, decodeList(t, want, where), decodeList(t, got, where), where)
	case "ak":
		// Ours lists each kind once; the reference repeats a kind per agent.
		wk, gk := map[string]bool{}, map[string]bool{}
		for _, k := range decodeList(t, want, where) {
			wk[k.(string)] = true
		}
		for _, k := range decodeList(t, got, where) {
			assert.False(t, gk[k.(string)], "%s: kind %v listed twice", where, k)
			gk[k.(string)] = true
		}
		assert.Equal(t, wk, gk, where)
	case "ar", "au", "gg", "cr", "cs":
		assert.JSONEq(t, string(want), string(got), where)
	default:
		assert.Equal(t, shape(want), shape(got), where)
	}
}

func decodeList(t *testing.T, p []byte, where string) []any {
	var l []any
	require.NoError(t, json.Unmarshal(p, &l), "%s: %s", where, p)
	return l
}

func (r *netReplay) compareRecords(t *testing.T, want, got []map[string]any, where string) {
	byUUID := map[any]map[string]any{}
	for _, g := range got {
		byUUID[g["uuid"]] = g
	}
	assert.Len(t, got, len(want), "%s: records", where)
	for _, w := range want {
		g, ok := byUUID[w["uuid"]]
		if assert.True(t, ok, "%s: no record of %v", where, w["uuid"]) {
			r.compareRecord(t, w, g, where)
		}
	}
}

// compareRecord compares one container record, by key.
func (r *netReplay) compareRecord(t *testing.T, want, got map[string]any, where string) {
	where = fmt.Sprintf("%s: container %v", where, want["uuid"])
	for k, wv := range want {
		gv, ok := got[k]
		switch k {
		case "labels", "extra":
			if wv == nil {
				if !ok {
					r.diff(diffNullOmitted)
				} else {
					assert.Nil(t, gv, "%s: %s", where, k)
				}
				continue
			}
			assert.Equal(t, wv, gv, "%s: %s", where, k)
		case "endpoint":
			if wv == "" {
				ref, _ := gv.(string)
				var e map[string]any
				if assert.NoError(t, json.Unmarshal([]byte(ref), &e), "%s: %s: endpoint %q", where, diffEndpoint, ref) {
					assert.Equal(t, got["uuid"], e["uuid"], "%s: endpoint", where)
					assert.Equal(t, got["agentId"], e["agentId"], "%s: endpoint", where)
				}
				r.diff(diffEndpoint)
				continue
			}
			assert.Equal(t, wv, gv, "%s: endpoint", where)
		case "lastVisit":
			wn, _ := wv.(float64)
			gn, isNum := gv.(float64)
			if assert.True(t, isNum, "%s: lastVisit %v", where, gv) {
				assert.Equal(t, math.Trunc(gn), gn, "%s: lastVisit is whole ms", where)
				assert.Greater(t, gn, 1e12, "%s: lastVisit is Unix ms", where)
			}
			if wn < 1e12 {
				r.diff(diffLastVisit)
			}
		default:
			assert.Equal(t, wv, gv, "%s: %s", where, k)
		}
	}
	for k := range got {
		_, ok := want[k]
		assert.True(t, ok, "%s: key %q the reference does not send", where, k)
	}
}

// ---- events ----

// entityEvent is one entry of an event batch: an agent or a container
// added, updated or removed.
type entityEvent struct {
	key   string // "agent ID" or "container UUID"
	event float64
	body  map[string]any // the agent entry, or the container record
	at    time.Time      // when ours arrived
}

func parseEvents(batches []timedEvent) ([]entityEvent, error) {
	var out []entityEvent
	for _, b := range batches {
		var top map[string]json.RawMessage
		if err := json.Unmarshal(b.payload, &top); err != nil {
			return nil, fmt.Errorf("event %s: %w", b.payload, err)
		}
		if keys := sortedKeys(top); !reflect.DeepEqual(keys, []string{"agents", "containers"}) {
			return nil, fmt.Errorf("event %s: keys %v, want agents and containers", b.payload, keys)
		}
		var ev struct {
			Agents     []map[string]any `json:"agents"`
			Containers []struct {
				Container map[string]any `json:"container"`
				Event     float64        `json:"event"`
			} `json:"containers"`
		}
		if err := json.Unmarshal(b.payload, &ev); err != nil {
			return nil, fmt.Errorf("event %s: %w", b.payload, err)
		}
		for _, a := range ev.Agents {
			e, _ := a["event"].(float64)
			out = append(out, entityEvent{key: fmt.Sprintf("agent %v", a["id"]), event: e, body: a, at: b.at})
		}
		for _, c := range ev.Containers {
			out = append(out, entityEvent{key: fmt.Sprintf("container %v", c.Container["uuid"]), event: c.Event, body: c.Container, at: b.at})
		}
	}
	return out, nil
}

func untimed(batches []json.RawMessage) []timedEvent {
	out := make([]timedEvent, len(batches))
	for i, b := range batches {
		out[i] = timedEvent{payload: b}
	}
	return out
}

// eventCoverage is how our events to one connection stand against the
// reference's.
type eventCoverage struct {
	ref, ours []entityEvent
	pairs     map[int]int // reference entry → ours, same agent or container and kind, in order
	excused   []int       // reference entries ours announced before the connection said hello
}

func (v eventCoverage) complete() bool { return len(v.pairs)+len(v.excused) == len(v.ref) }

func (r *netReplay) coverage(c *replayConn) (eventCoverage, error) {
	var v eventCoverage
	var err error
	if v.ref, err = parseEvents(untimed(c.refEvents)); err != nil {
		return v, fmt.Errorf("reference: %w", err)
	}
	if v.ours, err = parseEvents(c.timedEvents()); err != nil {
		return v, err
	}
	v.pairs = map[int]int{}
	next := map[string]int{}
	for i, e := range v.ref {
		j := next[e.key]
		for ; j < len(v.ours); j++ {
			if v.ours[j].key == e.key && v.ours[j].event == e.event {
				break
			}
		}
		switch {
		case j < len(v.ours):
			v.pairs[i] = j
			next[e.key] = j + 1
		case r.announcedBefore(c, e):
			v.excused = append(v.excused, i)
		}
	}
	return v, nil
}

// announcedBefore reports whether ours broadcast e to another connection
// before c said hello (to the current server): c could not get it, while
// the reference, which batches for 3 s, still had it queued when c came.
func (r *netReplay) announcedBefore(c *replayConn, e entityEvent) bool {
	hello := c.lastHello()
	for _, o := range r.order {
		if o == c {
			continue
		}
		evs, err := parseEvents(o.timedEvents())
		if err != nil {
			continue
		}
		for _, x := range evs {
			if x.key == e.key && x.event == e.event && x.at.After(r.restartedAt) && x.at.Before(hello) {
				return true
			}
		}
	}
	return false
}

// settle waits until our events to c cover what the reference sent it so
// far, then checks that nothing unexpected is queued for c.
func (r *netReplay) settle(t *testing.T, c *replayConn) {
	where := fmt.Sprintf("%s: connection %s", r.name, c.rid)
	require.Eventually(t, func() bool {
		v, err := r.coverage(c)
		return err != nil || v.complete() // an error is reported by compareEvents
	}, answerWait, 5*time.Millisecond, "%s: our events never covered the reference's %s", where, c.refEvents)
	var unexpected []backrpc.Message
	for _, m := range c.barrier(t) {
		if !r.strayTermination(t, c, m, where) {
			unexpected = append(unexpected, m)
		}
	}
	assert.Empty(t, unexpected, "%s: our server sent what the reference did not: %s", where, describe(unexpected))
}

// strayTermination accepts, and answers as the agent would, a ct that the
// reference never sent: for a container released during the replay, whose
// unused timeout (300 ms here, 5 s there) ran out before the replay
// reached the agent's unregistration. Replay speed decides whether it
// happens at all.
func (r *netReplay) strayTermination(t *testing.T, c *replayConn, m backrpc.Message, where string) bool {
	if m.Op != backrpc.OpRequest {
		return false
	}
	method, params, err := backrpc.DecodeRequestPayload(m.Payload)
	var p []json.RawMessage
	var args []string
	if err != nil || method != "ct" || json.Unmarshal(params, &p) != nil || len(p) != 2 ||
		json.Unmarshal(p[1], &args) != nil || len(args) != 1 || !r.released[args[0]] {
		return false
	}
	t.Logf("%s: ours terminated released container %s before the agent left", where, args[0])
	c.send(t, []byte("2"), []byte(m.ID), []byte(`""`))
	return true
}

// finish settles c before its close (or the end of the scenario) and
// counts the containers it held as released.
func (r *netReplay) finish(t *testing.T, c *replayConn) {
	r.settle(t, c)
	for uuid := range c.held {
		r.released[uuid] = true
	}
}

// compareEvents compares, once c is done, what the reference and ours
// announced to it.
func (r *netReplay) compareEvents(t *testing.T, c *replayConn) {
	where := fmt.Sprintf("%s: events to %s", r.name, c.rid)
	v, err := r.coverage(c)
	require.NoError(t, err, where)
	require.True(t, v.complete(), "%s: not covered", where)
	t.Logf("%s: %d entries of the reference, %d matched, %d excused, among our %d", where, len(v.ref), len(v.pairs), len(v.excused), len(v.ours))
	used := map[int]bool{}
	for i, j := range v.pairs {
		used[j] = true
		w, g := v.ref[i], v.ours[j]
		if strings.HasPrefix(w.key, "agent ") {
			assert.True(t, reflect.DeepEqual(w.body, g.body), "%s: %s: %v, ours %v", where, w.key, w.body, g.body)
			continue
		}
		r.compareRecord(t, w.body, g.body, where)
	}
	for _, i := range v.excused {
		t.Logf("%s: ours announced %s %v before this client connected", where, v.ref[i].key, v.ref[i].event)
		r.diff(diffEventsBeforeHello)
	}
	for j, g := range v.ours {
		if used[j] {
			continue
		}
		// Ours announces what the reference would have at its next check,
		// had the connection stayed: allowed, named, and logged; but only
		// of agents and containers that the clients' messages named.
		id := g.key[strings.IndexByte(g.key, ' ')+1:]
		assert.Contains(t, r.inText.String(), id, "%s: ours announced %s, which no client named", where, g.key)
		t.Logf("%s: ours also announced %s %v", where, g.key, g.event)
		r.diff(diffEventsEarly)
	}
}
