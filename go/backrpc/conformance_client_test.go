package backrpc

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/internal/transcript"
	"github.com/huly-net/huly-net/go/transport"
)

// Conformance (c): the server side of the captured scenarios is played by a
// scripted ROUTER that sends the recorded server frames, and the Go Client,
// given the recorded client id, alive timeout and calls, must send what the
// reference client sent, byte for byte: hello on connect, pings, every
// request with the same id and payload, answers to back-requests, close; it
// must resend a retried request after the recorded number of ticks, and
// after a server restart re-register (OnServerChanged) and then resend
// what was pending, with the same ids.

// scriptServer is a ROUTER whose every move the test makes.
type scriptServer struct {
	r  *transport.Router
	in chan sent
}

func newScriptServer(t *testing.T, addr string) *scriptServer {
	s := &scriptServer{in: make(chan sent, 4096)}
	r, err := transport.Listen(addr, transport.RouterHandler{
		OnMessage: func(peer transport.PeerID, frames [][]byte) { s.in <- sent{peer, frames} },
	}, transport.Options{})
	require.NoError(t, err)
	s.r = r
	t.Cleanup(func() { _ = r.Close() })
	return s
}

func (s *scriptServer) send(t *testing.T, peer transport.PeerID, frames [][]byte) {
	assert.NoError(t, s.r.Send(peer, frames...))
}

// clientSession is what one reference client session recorded.
type clientSession struct {
	name        string
	clientID    string
	alive       time.Duration
	hello       [][]byte
	ping        [][]byte
	closeMsg    [][]byte
	serverIDs   []string
	helloAnswer [][]byte
	requests    []string              // distinct request ids, in order of first appearance
	reqFrames   map[string][][]byte   // by id, as first sent
	answers     map[string][][][]byte // recorded server answers by id, in order (retry, response...)
	backReqs    [][][]byte            // back-requests the server sent, in order
	backAnswers map[string][][]byte   // what the client answered them
	events      [][][]byte
}

func readClientSession(t *testing.T, name string, lines []transcript.Line) *clientSession {
	cs := &clientSession{
		name:        name,
		reqFrames:   map[string][][]byte{},
		answers:     map[string][][][]byte{},
		backAnswers: map[string][][]byte{},
	}
	for _, l := range lines {
		body := l.Body()
		m, err := Decode(body)
		require.NoError(t, err, "line %d", l.Num)
		if l.Dir == "out" {
			switch m.Op {
			case OpHello:
				if cs.hello == nil {
					cs.hello, cs.clientID = body, m.ID
					d, ok := ParseHelloPayload(m.Payload)
					require.True(t, ok)
					cs.alive = d
				}
			case OpPing:
				cs.ping = body
			case OpClose:
				cs.closeMsg = body
			case OpRequest:
				if _, ok := cs.reqFrames[m.ID]; !ok {
					cs.reqFrames[m.ID] = body
					cs.requests = append(cs.requests, m.ID)
				}
			case OpResponse, OpResponseError:
				cs.backAnswers[m.ID] = body
			}
			continue
		}
		switch m.Op {
		case OpHello, OpPong, OpAskHello:
			if n := len(cs.serverIDs); n == 0 || cs.serverIDs[n-1] != m.ID {
				cs.serverIDs = append(cs.serverIDs, m.ID)
			}
			if m.Op == OpHello && cs.helloAnswer == nil {
				cs.helloAnswer = body
			}
		case OpResponse, OpResponseError, OpRetry:
			cs.answers[m.ID] = append(cs.answers[m.ID], body)
		case OpRequest:
			cs.backReqs = append(cs.backReqs, body)
		case OpEvent:
			cs.events = append(cs.events, body)
		}
	}
	return cs
}

// play runs the scripted server side for one connected client: it checks
// every message against the recording and answers as recorded.
type scriptPlay struct {
	cs       *clientSession
	srv      *scriptServer
	serverID string
	peer     chan transport.PeerID
	seenReq  chan string
	seenBack chan string
	closed   chan struct{}
	// hold, when set, says whether a request's answer is withheld (the
	// server "dies" before answering it).
	hold func(id string) bool

	mu       sync.Mutex
	sent     map[string]int  // answers sent per id
	reported map[string]bool // requests reported on seenReq
	log      []string        // non-ping messages received, in order
}

func newScriptPlay(cs *clientSession, srv *scriptServer, serverID string) *scriptPlay {
	return &scriptPlay{
		cs: cs, srv: srv, serverID: serverID,
		peer:     make(chan transport.PeerID, 1),
		seenReq:  make(chan string, 1024),
		seenBack: make(chan string, 1024),
		closed:   make(chan struct{}),
		sent:     map[string]int{},
		reported: map[string]bool{},
	}
}

func (p *scriptPlay) messages() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.log...)
}

// run serves until ctx ends. Mismatches are reported with assert (this is
// not the test goroutine).
func (p *scriptPlay) run(ctx context.Context, t *testing.T) {
	peerSet := false
	for {
		var in sent
		select {
		case in = <-p.srv.in:
		case <-ctx.Done():
			return
		}
		if !peerSet {
			p.peer <- in.peer
			peerSet = true
		}
		m, err := Decode(in.frames)
		if !assert.NoError(t, err) {
			continue
		}
		if m.Op != OpPing {
			p.mu.Lock()
			p.log = append(p.log, fmt.Sprintf("%s %s", m.Op, m.ID))
			p.mu.Unlock()
		}
		where := fmt.Sprintf("%s: %s %s", p.cs.name, m.Op, m.ID)
		switch m.Op {
		case OpHello:
			assert.Equal(t, p.cs.hello, in.frames, where)
			p.srv.send(t, in.peer, frames("0", p.serverID, ""))
		case OpPing:
			want := p.cs.ping
			if want == nil {
				// The recorded session ended before its first ping; a
				// slower run pings, in the reference's shape.
				want = EncodeClient(Message{Op: OpPing})
			}
			assert.Equal(t, want, in.frames, where)
			// The client may be gone by the time the pong is written.
			_ = p.srv.r.Send(in.peer, frames("6", p.serverID, "")...)
		case OpRequest:
			assert.Equal(t, p.cs.reqFrames[m.ID], in.frames, "%s: same id, same bytes", where)
			// A request is reported once: a resend of the same id (after
			// retry) is not the next request of the script.
			p.mu.Lock()
			first := p.sent[m.ID] == 0 && !p.reported[m.ID]
			p.reported[m.ID] = true
			p.mu.Unlock()
			if first {
				select {
				case p.seenReq <- m.ID:
				default:
				}
			}
			if p.hold != nil && p.hold(m.ID) {
				continue
			}
			p.mu.Lock()
			k := p.sent[m.ID]
			p.sent[m.ID]++
			p.mu.Unlock()
			answers := p.cs.answers[m.ID]
			if assert.Less(t, k, len(answers), "%s: more sends than recorded answers", where) {
				p.srv.send(t, in.peer, answers[k])
			}
		case OpResponse, OpResponseError:
			assert.Equal(t, p.cs.backAnswers[m.ID], in.frames, where)
			p.seenBack <- m.ID
		case OpClose:
			assert.Equal(t, p.cs.closeMsg, in.frames, where)
			close(p.closed)
			return
		default:
			assert.Fail(t, "unexpected message", where)
		}
	}
}

func (cs *clientSession) recordedResult(t *testing.T, id string) Message {
	a := cs.answers[id]
	require.NotEmpty(t, a, "no recorded answer for %s", id)
	m, err := Decode(a[len(a)-1])
	require.NoError(t, err)
	return m
}

// backHandler answers back-requests with what the reference client
// answered them.
func (cs *clientSession) backHandler(ctx context.Context, method string, params json.RawMessage) (any, error) {
	id, _ := RequestIDFromContext(ctx)
	f, ok := cs.backAnswers[id]
	if !ok {
		return nil, fmt.Errorf("no recorded answer to back-request %s", id)
	}
	m, err := Decode(f)
	if err != nil {
		return nil, err
	}
	if m.Op == OpResponseError {
		return nil, DecodeErrorPayload(m.Payload)
	}
	return json.RawMessage(m.Payload), nil
}

func (cs *clientSession) requestArgs(t *testing.T, id string) (string, json.RawMessage) {
	m, err := Decode(cs.reqFrames[id])
	require.NoError(t, err)
	method, params, err := DecodeRequestPayload(m.Payload)
	require.NoError(t, err)
	return method, params
}

func clientOptionsFor(cs *clientSession) ClientOptions {
	return ClientOptions{
		ClientID:     cs.clientID,
		AliveTimeout: cs.alive,
		PingInterval: 10 * time.Millisecond,
		RetryTick:    time.Millisecond, // 26 ticks: 26 ms instead of 13 s
		Transport:    transport.DealerOptions{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond},
	}
}

func checkResult(t *testing.T, want Message, raw json.RawMessage, err error, where string) {
	if want.Op == OpResponseError {
		var re *RemoteError
		if assert.ErrorAs(t, err, &re, where) {
			w := DecodeErrorPayload(want.Payload)
			assert.Equal(t, w.Message, re.Message, where)
			assert.Equal(t, w.Stack, re.Stack, where)
		}
		return
	}
	if assert.NoError(t, err, where) {
		assert.Equal(t, string(want.Payload), string(raw), where)
	}
}

// TestTranscriptReplayAgainstClient is conformance (c) for every session of
// a reference client that saw one server (scenario 05 follows).
func TestTranscriptReplayAgainstClient(t *testing.T) {
	played := 0
	for _, f := range loadTranscripts(t) {
		names, by := transcript.Sessions(f.Lines)
		for _, name := range names {
			lines := by[name]
			if lines[0].Router() || lines[0].Proc == "raw" {
				continue // servers, and the hand-made peer of 08
			}
			cs := readClientSession(t, f.Name+" "+name, lines)
			if len(cs.serverIDs) != 1 {
				continue // a restart: TestTranscriptServerRestartAgainstClient
			}
			played++
			t.Run(f.Name+"/"+lines[0].Proc+fmt.Sprint(lines[0].SID), func(t *testing.T) {
				playClientSession(t, cs)
			})
		}
	}
	assert.GreaterOrEqual(t, played, 12, "client and agent sessions of scenarios 01-04, 06, 07")
}

func playClientSession(t *testing.T, cs *clientSession) {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	srv := newScriptServer(t, "127.0.0.1:0")
	play := newScriptPlay(cs, srv, cs.serverIDs[0])
	playDone := make(chan struct{})
	go func() { defer close(playDone); play.run(ctx, t) }()

	events := make(chan string, len(cs.events)+1)
	c, err := Dial(srv.r.Addr().String(), clientOptionsFor(cs), ClientHandler{
		HandleRequest: cs.backHandler,
		OnEvent:       func(p json.RawMessage) { events <- string(p) },
	})
	require.NoError(t, err)
	require.NoError(t, c.WaitConnected(ctx))
	assert.Equal(t, cs.serverIDs[0], c.ServerID())
	peer := <-play.peer

	for _, f := range cs.backReqs {
		srv.send(t, peer, f)
	}
	for _, f := range cs.events {
		srv.send(t, peer, f)
	}

	type result struct {
		id  string
		raw json.RawMessage
		err error
	}
	results := make(chan result, len(cs.requests))
	for _, id := range cs.requests {
		method, params := cs.requestArgs(t, id)
		go func() {
			raw, err := c.Request(ctx, method, params)
			results <- result{id, raw, err}
		}()
		// Issue the next only once this one is on the wire, so that ids
		// are given in the recorded order.
		select {
		case got := <-play.seenReq:
			require.Equal(t, id, got, "%s: request ids in recorded order", cs.name)
		case <-ctx.Done():
			require.FailNow(t, "request not sent", "%s: %s", cs.name, id)
		}
	}
	for range cs.requests {
		r := <-results
		checkResult(t, cs.recordedResult(t, r.id), r.raw, r.err, cs.name+" "+r.id)
	}
	for range cs.backReqs {
		select {
		case <-play.seenBack:
		case <-ctx.Done():
			require.FailNow(t, "back-request not answered", cs.name)
		}
	}
	for i, f := range cs.events {
		select {
		case got := <-events:
			assert.Equal(t, string(f[2]), got, "%s: event %d", cs.name, i)
		case <-ctx.Done():
			require.FailNow(t, "event not delivered", cs.name)
		}
	}

	require.NoError(t, c.Close(ctx))
	if cs.closeMsg != nil {
		select {
		case <-play.closed:
		case <-ctx.Done():
			require.FailNow(t, "close not sent", cs.name)
		}
	}
	cancel()
	<-playDone
	for id, answers := range cs.answers {
		play.mu.Lock()
		n := play.sent[id]
		play.mu.Unlock()
		assert.Equal(t, len(answers), n, "%s: %s sent as often as recorded (retried ones twice)", cs.name, id)
	}
}

// TestTranscriptServerRestartAgainstClient is conformance (c) for scenario
// 05: the server restarts on the same port with a new id. The recorded
// client had nothing pending over the restart; here its routed request is
// withheld by the first server, so that the resend can be seen: after the
// new server's hello the client re-gets (the recorded gg, id -2, from
// OnServerChanged), then resends the withheld request with its old id. An
// askHello (recorded frames) makes it say hello again.
func TestTranscriptServerRestartAgainstClient(t *testing.T) {
	var f transcript.File
	for _, ff := range loadTranscripts(t) {
		if ff.Name == "05-server-restart" {
			f = ff
		}
	}
	names, by := transcript.Sessions(f.Lines)
	var cs *clientSession
	for _, name := range names {
		if by[name][0].Proc == "client" {
			cs = readClientSession(t, name, by[name])
		}
	}
	require.NotNil(t, cs)
	require.Len(t, cs.serverIDs, 2, "the recorded client saw two servers")
	require.Len(t, cs.requests, 5, "gg, cs before; gg (re-get), cs, cr after")
	ggID, csID, regetID := cs.requests[0], cs.requests[1], cs.requests[2]

	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	addr := freeAddr(t)

	// First server: answers gg, withholds cs.
	srv1 := newScriptServer(t, addr)
	play1 := newScriptPlay(cs, srv1, cs.serverIDs[0])
	play1.hold = func(id string) bool { return id == csID }
	ctx1, stop1 := context.WithCancel(ctx)
	done1 := make(chan struct{})
	go func() { defer close(done1); play1.run(ctx1, t) }()

	var mu sync.Mutex
	var changes []string
	reget := make(chan error, 1)
	var c *Client
	c, err := Dial(addr, clientOptionsFor(cs), ClientHandler{
		OnServerChanged: func(ctx context.Context, id string) {
			mu.Lock()
			changes = append(changes, id)
			first := id == cs.serverIDs[1] && len(changes) == 2
			mu.Unlock()
			if first {
				method, params := cs.requestArgs(t, regetID)
				raw, err := c.Request(ctx, method, params)
				if err == nil {
					checkResult(t, cs.recordedResult(t, regetID), raw, err, "re-get")
				}
				reget <- err
			}
		},
	})
	require.NoError(t, err)
	defer func() { _ = c.Close(context.Background()) }()
	require.NoError(t, c.WaitConnected(ctx))

	method, params := cs.requestArgs(t, ggID)
	raw, err := c.Request(ctx, method, params)
	checkResult(t, cs.recordedResult(t, ggID), raw, err, "gg")

	csRes := make(chan error, 1)
	go func() {
		method, params := cs.requestArgs(t, csID)
		raw, err := c.Request(ctx, method, params)
		if err == nil {
			checkResult(t, cs.recordedResult(t, csID), raw, err, "cs after restart")
		}
		csRes <- err
	}()
	select {
	case id := <-play1.seenReq:
		require.Equal(t, ggID, id)
	case <-ctx.Done():
		require.FailNow(t, "gg not sent")
	}
	select {
	case id := <-play1.seenReq:
		require.Equal(t, csID, id)
	case <-ctx.Done():
		require.FailNow(t, "cs not sent")
	}

	// The server dies with cs unanswered and comes back with a new id.
	stop1()
	<-done1
	require.NoError(t, srv1.r.Close())
	srv2 := newScriptServer(t, addr)
	play2 := newScriptPlay(cs, srv2, cs.serverIDs[1])
	// The second server has the first one's answer for cs (the recorded
	// client got it before the restart).
	done2 := make(chan struct{})
	ctx2, stop2 := context.WithCancel(ctx)
	defer stop2()
	go func() { defer close(done2); play2.run(ctx2, t) }()

	select {
	case err := <-reget:
		require.NoError(t, err)
	case <-ctx.Done():
		require.FailNow(t, "no re-get after the new server id")
	}
	select {
	case err := <-csRes:
		require.NoError(t, err, "the pending request was resent and answered")
	case <-ctx.Done():
		require.FailNow(t, "pending request not resent")
	}
	assert.Equal(t, []string{"hello " + cs.clientID, "request " + regetID, "request " + csID}, play2.messages(),
		"new server: hello, then the re-get from OnServerChanged, then the resend")

	// askHello, with the recorded frames: the client says hello again.
	peer := <-play2.peer
	var ask [][]byte
	for _, name := range names {
		for _, l := range by[name] {
			if m, err := Decode(l.Body()); err == nil && m.Op == OpAskHello && l.Proc == "client" {
				ask = l.Body()
			}
		}
	}
	require.NotNil(t, ask)
	srv2.send(t, peer, ask)
	require.Eventually(t, func() bool {
		msgs := play2.messages()
		return len(msgs) == 4 && msgs[3] == "hello "+cs.clientID
	}, waitFor, time.Millisecond, "hello again after askHello")
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(changes) == 3
	}, waitFor, time.Millisecond)
	mu.Lock()
	assert.Equal(t, []string{cs.serverIDs[0], cs.serverIDs[1], cs.serverIDs[1]}, changes,
		"first contact, restart, and the server that forgot us")
	mu.Unlock()
	assert.Equal(t, cs.serverIDs[1], c.ServerID())
	assert.Equal(t, 0, c.Stats().Pending)
}
