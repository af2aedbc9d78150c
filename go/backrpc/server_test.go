package backrpc

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/transport"
)

func TestServerIDIsUUIDv4(t *testing.T) {
	s := NewServer(ServerOptions{}, ServerHandler{})
	id, err := uuid.Parse(s.ID())
	require.NoError(t, err)
	assert.Equal(t, uuid.Version(4), id.Version())
	assert.NotEqual(t, s.ID(), NewServer(ServerOptions{}, ServerHandler{}).ID())
	require.NoError(t, s.Close(), "closing a server that never started")
}

// Session rules through the dispatch path, without sockets.

func TestDispatchHelloPingClose(t *testing.T) {
	var connected, closed []ClientInfo
	var pings atomic.Int32
	var mu sync.Mutex
	s, out := newDispatchServer(t, ServerOptions{}, ServerHandler{
		OnClientConnected: func(c ClientInfo) { mu.Lock(); connected = append(connected, c); mu.Unlock() },
		OnClientClosed:    func(c ClientInfo) { mu.Lock(); closed = append(closed, c); mu.Unlock() },
		OnPing:            func(ClientInfo) { pings.Add(1) },
	})
	peer := transport.PeerID("\x00\x6b\x8b\x45\x67")

	// A ping from nobody: pong, then askHello.
	s.handleMessage(peer, EncodeClient(Message{Op: OpPing}))
	_, m := out.next(t)
	assert.Equal(t, Message{Op: OpPong, ID: s.ID(), Payload: []byte{}}, m)
	_, m = out.next(t)
	assert.Equal(t, Message{Op: OpAskHello, ID: s.ID(), Payload: []byte{}}, m)

	s.handleMessage(peer, EncodeClient(Message{Op: OpHello, ID: "c1", Payload: []byte(`{"aliveTimeout":7}`)}))
	to, m := out.next(t)
	assert.Equal(t, peer, to)
	assert.Equal(t, OpHello, m.Op)
	assert.Equal(t, s.ID(), m.ID)
	assert.Equal(t, `{"aliveTimeout":7}`, string(m.Payload), "the answer says what was granted")

	// A second hello of the same client is not a new connection.
	s.handleMessage(peer, EncodeClient(Message{Op: OpHello, ID: "c1", Payload: []byte(`{}`)}))
	_, m = out.next(t)
	assert.Equal(t, OpHello, m.Op)

	s.handleMessage(peer, EncodeClient(Message{Op: OpPing}))
	_, m = out.next(t)
	assert.Equal(t, OpPong, m.Op)
	out.empty(t) // no askHello for a known client

	info, ok := s.Client("c1")
	require.True(t, ok)
	assert.Equal(t, DefaultAliveTimeout, info.AliveTimeout, "a hello without a timeout takes the default")

	s.handleMessage(peer, EncodeClient(Message{Op: OpClose}))
	_, ok = s.Client("c1")
	assert.False(t, ok)
	out.empty(t) // close is not answered

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, connected, 1)
	assert.Equal(t, ClientInfo{ID: "c1", Peer: peer, AliveTimeout: 7 * time.Second, Hello: HelloInfo{AliveTimeout: 7 * time.Second}}, connected[0])
	require.Len(t, closed, 1)
	assert.Equal(t, "c1", closed[0].ID)
	assert.EqualValues(t, 1, pings.Load())
	assert.EqualValues(t, 1, s.Stats().Closes)
}

func TestDispatchRequestFromUnknownPeerGetsRetry1(t *testing.T) {
	s, out := newDispatchServer(t, ServerOptions{}, ServerHandler{HandleRequest: echoHandler})
	s.handleMessage("p", frames("1", "x-0", `["al",{}]`))
	_, m := out.next(t)
	assert.Equal(t, Message{Op: OpRetry, ID: "x-0", Payload: []byte("1")}, m)
}

func TestDispatchBadPayloadsAnsweredWithResponseError(t *testing.T) {
	s, out := newDispatchServer(t, ServerOptions{}, ServerHandler{HandleRequest: echoHandler})
	s.handleMessage("p", EncodeClient(Message{Op: OpHello, ID: "c", Payload: EncodeHelloPayload(time.Minute)}))
	out.next(t)

	for _, tc := range []struct {
		frames [][]byte
		id     string
	}{
		{frames("1", "c-2", "{not json"), "c-2"},
		{frames("1", "c-3"), "c-3"},
		{frames("1", "c-4", `{"method":"al"}`), "c-4"},
		{frames("1", "c-5", `[42]`), "c-5"},
	} {
		s.handleMessage("p", tc.frames)
		_, m := out.next(t)
		assert.Equal(t, OpResponseError, m.Op)
		assert.Equal(t, tc.id, m.ID)
		var e map[string]string
		require.NoError(t, json.Unmarshal(m.Payload, &e))
		assert.NotEmpty(t, e["message"])
		assert.Contains(t, e, "stack")
	}
	// Garbage without an id is dropped silently.
	for _, f := range [][][]byte{nil, frames("x"), frames("1"), frames("77", "a", "b"), frames("")} {
		s.handleMessage("p", f)
	}
	out.empty(t)
	assert.EqualValues(t, 9, s.Stats().BadMessages)

	// And the session still works.
	s.handleMessage("p", frames("1", "c-6", `["al",{}]`))
	_, m := out.next(t)
	assert.Equal(t, OpResponse, m.Op)
	assert.JSONEq(t, `{"method":"al","params":{}}`, string(m.Payload))
}

func TestDispatchDuplicateAndInflightLimit(t *testing.T) {
	g := newGate()
	var calls atomic.Int32
	s, out := newDispatchServer(t, ServerOptions{MaxInflight: 2}, ServerHandler{
		HandleRequest: func(ctx context.Context, c ClientInfo, method string, params json.RawMessage) (any, error) {
			calls.Add(1)
			if err := g.wait(ctx); err != nil {
				return nil, err
			}
			id, _ := RequestIDFromContext(ctx)
			return id, nil
		},
	})
	s.handleMessage("p", EncodeClient(Message{Op: OpHello, ID: "c", Payload: EncodeHelloPayload(time.Minute)}))
	out.next(t)

	s.handleMessage("p", frames("1", "c-0", `["a",1]`))
	s.handleMessage("p", frames("1", "c-0", `["a",1]`)) // duplicate in flight: ignored
	s.handleMessage("p", frames("1", "c-1", `["a",2]`))
	s.handleMessage("p", frames("1", "c-2", `["a",3]`)) // third in flight: over the limit
	_, m := out.next(t)
	assert.Equal(t, Message{Op: OpRetry, ID: "c-2", Payload: []byte("1")}, m)
	out.empty(t)

	g.open()
	got := map[string]string{}
	for range 2 {
		_, m := out.next(t)
		require.Equal(t, OpResponse, m.Op)
		got[m.ID] = string(m.Payload)
	}
	assert.Equal(t, map[string]string{"c-0": `"c-0"`, "c-1": `"c-1"`}, got)
	assert.EqualValues(t, 2, calls.Load())
	st := s.Stats()
	assert.EqualValues(t, 1, st.Duplicates)
	assert.EqualValues(t, 1, st.Retries)

	// Once answered, the same id may run again (a resend after a lost answer).
	s.handleMessage("p", frames("1", "c-0", `["a",1]`))
	_, m = out.next(t)
	assert.Equal(t, OpResponse, m.Op)
	assert.EqualValues(t, 3, calls.Load())
}

func TestDispatchHandlerErrorsAndPanics(t *testing.T) {
	s, out := newDispatchServer(t, ServerOptions{}, ServerHandler{
		HandleRequest: func(ctx context.Context, c ClientInfo, method string, params json.RawMessage) (any, error) {
			switch method {
			case "err":
				return nil, errors.New("boom")
			case "remote":
				return nil, &RemoteError{Message: "boom\nError: boom", Stack: "at agent"}
			case "panic":
				panic("handler bug")
			case "raw":
				return json.RawMessage(`{"pre":"encoded"}`), nil
			case "unencodable":
				return make(chan int), nil
			case "nil":
				return nil, nil
			}
			return nil, errors.New("Unknown method" + method)
		},
	})
	s.handleMessage("p", EncodeClient(Message{Op: OpHello, ID: "c", Payload: EncodeHelloPayload(time.Minute)}))
	out.next(t)

	want := map[string]Message{
		"c-0": {Op: OpResponseError, Payload: []byte(`{"message":"boom","stack":"Error: boom"}`)},
		"c-1": {Op: OpResponseError, Payload: []byte(`{"message":"boom\nError: boom","stack":"at agent"}`)},
		"c-2": {Op: OpResponseError},
		"c-3": {Op: OpResponse, Payload: []byte(`{"pre":"encoded"}`)},
		"c-4": {Op: OpResponseError},
		"c-5": {Op: OpResponse, Payload: []byte(`null`)},
		"c-6": {Op: OpResponseError, Payload: []byte(`{"message":"Unknown methodzz","stack":"Error: Unknown methodzz"}`)},
	}
	for i, method := range []string{"err", "remote", "panic", "raw", "unencodable", "nil", "zz"} {
		s.handleMessage("p", frames("1", RequestID("c", uint64(i)), `["`+method+`",{}]`))
	}
	for range want {
		_, m := out.next(t)
		w, ok := want[m.ID]
		require.True(t, ok, "unexpected id %s", m.ID)
		assert.Equal(t, w.Op, m.Op, m.ID)
		if w.Payload != nil {
			assert.Equal(t, string(w.Payload), string(m.Payload), m.ID)
		} else {
			var e RemoteError
			require.NoError(t, json.Unmarshal(m.Payload, &e), m.ID)
			assert.NotEmpty(t, e.Message, m.ID)
		}
	}
	assert.EqualValues(t, 5, s.Stats().HandlerErrors)
}

func TestDispatchNoHandler(t *testing.T) {
	s, out := newDispatchServer(t, ServerOptions{}, ServerHandler{})
	s.handleMessage("p", EncodeClient(Message{Op: OpHello, ID: "c"}))
	out.next(t)
	s.handleMessage("p", frames("1", "c-0", `["al",{}]`))
	_, m := out.next(t)
	assert.Equal(t, OpResponseError, m.Op)
}

func TestDispatchHelloMovesSessionToNewPeer(t *testing.T) {
	g := newGate()
	var connected, closed atomic.Int32
	s, out := newDispatchServer(t, ServerOptions{}, ServerHandler{
		HandleRequest: func(ctx context.Context, c ClientInfo, method string, params json.RawMessage) (any, error) {
			return "done", g.wait(ctx)
		},
		OnClientConnected: func(ClientInfo) { connected.Add(1) },
		OnClientClosed:    func(ClientInfo) { closed.Add(1) },
	})
	s.handleMessage("old", EncodeClient(Message{Op: OpHello, ID: "c"}))
	out.next(t)
	s.handleMessage("old", frames("1", "c-0", `["a",1]`))

	// The client reconnects (new routing id) while c-0 is in flight.
	s.handleMessage("new", EncodeClient(Message{Op: OpHello, ID: "c"}))
	to, m := out.next(t)
	assert.Equal(t, transport.PeerID("new"), to)
	assert.Equal(t, OpHello, m.Op)
	s.handleMessage("new", frames("1", "c-0", `["a",1]`)) // its resend: still in flight
	out.empty(t)

	g.open()
	to, m = out.next(t)
	assert.Equal(t, transport.PeerID("new"), to, "the answer goes to the current connection")
	assert.Equal(t, OpResponse, m.Op)
	assert.EqualValues(t, 1, connected.Load(), "a reconnection is not a new client")
	assert.EqualValues(t, 0, closed.Load())
	info, ok := s.Client("c")
	require.True(t, ok)
	assert.Equal(t, transport.PeerID("new"), info.Peer)

	// The old routing id is no longer a client.
	s.handleMessage("old", EncodeClient(Message{Op: OpPing}))
	out.next(t)
	_, m = out.next(t)
	assert.Equal(t, OpAskHello, m.Op)

	// A connection that says hello with another client id ends the first.
	s.handleMessage("new", EncodeClient(Message{Op: OpHello, ID: "d"}))
	out.next(t)
	assert.EqualValues(t, 1, closed.Load())
	assert.EqualValues(t, 2, connected.Load())
	_, ok = s.Client("c")
	assert.False(t, ok)
}

func TestDispatchAliveTimeoutSweep(t *testing.T) {
	timedOut := make(chan ClientInfo, 1)
	s, out := newDispatchServer(t, ServerOptions{}, ServerHandler{
		OnClientTimeout: func(c ClientInfo) { timedOut <- c },
	})
	s.handleMessage("p", EncodeClient(Message{Op: OpHello, ID: "c", Payload: []byte(`{"aliveTimeout":2}`)}))
	out.next(t)
	s.handleMessage("q", EncodeClient(Message{Op: OpHello, ID: "d", Payload: []byte(`{"aliveTimeout":60}`)}))
	out.next(t)

	// Drive the sweep with explicit times: no waiting on a real clock.
	s.sweep(time.Now().Add(time.Second))
	assert.Len(t, s.Clients(), 2, "both within their alive timeouts")
	s.sweep(time.Now().Add(3 * time.Second))
	select {
	case c := <-timedOut:
		assert.Equal(t, "c", c.ID)
	default:
		require.Fail(t, "OnClientTimeout was not called")
	}
	_, ok := s.Client("c")
	assert.False(t, ok)
	_, ok = s.Client("d")
	assert.True(t, ok)
	assert.EqualValues(t, 1, s.Stats().Timeouts)
}

func TestDispatchBackRequests(t *testing.T) {
	s, out := newDispatchServer(t, ServerOptions{}, ServerHandler{})
	s.handleMessage("p", EncodeClient(Message{Op: OpHello, ID: "c"}))
	out.next(t)
	s.handleMessage("q", EncodeClient(Message{Op: OpHello, ID: "other"}))
	out.next(t)

	_, err := s.Call(testCtx(t), "nobody", "gg", nil)
	assert.ErrorIs(t, err, ErrUnknownClient)

	type res struct {
		raw json.RawMessage
		err error
	}
	results := make(chan res, 3)
	for range 3 {
		go func() {
			raw, err := s.Call(testCtx(t), "c", "gg", []any{"agent", []any{"echo", map[string]any{}}})
			results <- res{raw, err}
		}()
	}
	ids := map[string]bool{}
	for range 3 {
		to, m := out.next(t)
		assert.Equal(t, transport.PeerID("p"), to)
		assert.Equal(t, OpRequest, m.Op)
		assert.Equal(t, `["gg",["agent",["echo",{}]]]`, string(m.Payload))
		ids[m.ID] = true
	}
	assert.Equal(t, map[string]bool{"c-0": true, "c-1": true, "c-2": true}, ids, "CLIENTID-N, server-wide counter")

	// An answer from another client does not resolve the call.
	s.handleMessage("q", frames("2", "c-0", `"spoofed"`))
	s.handleMessage("p", frames("2", "c-0", `["uuid","ref"]`))
	s.handleMessage("p", frames("3", "c-1", `{"message":"Agent down","stack":"at x"}`))
	s.handleMessage("p", frames("2", "c-2", `{not json`))
	s.handleMessage("p", frames("2", "c-9", `"nobody asked"`))

	var oks, remote, bad int
	for range 3 {
		r := <-results
		var re *RemoteError
		switch {
		case r.err == nil:
			assert.Equal(t, `["uuid","ref"]`, string(r.raw))
			oks++
		case errors.As(r.err, &re):
			assert.Equal(t, "Agent down", re.Message)
			assert.Equal(t, "at x", re.Stack)
			remote++
		case errors.Is(r.err, ErrBadResponse):
			bad++
		default:
			t.Errorf("unexpected result %v", r.err)
		}
	}
	assert.Equal(t, [3]int{1, 1, 1}, [3]int{oks, remote, bad})

	// The next id continues the server-wide counter, also for another client.
	go func() { _, _ = s.Call(testCtx(t), "other", "cl", nil) }()
	_, m := out.next(t)
	assert.Equal(t, "other-3", m.ID)

	// A client that closes fails its calls.
	done := make(chan error, 1)
	go func() { _, err := s.Call(testCtx(t), "c", "ct", nil); done <- err }()
	out.next(t)
	s.handleMessage("p", EncodeClient(Message{Op: OpClose}))
	select {
	case err := <-done:
		assert.ErrorIs(t, err, ErrClientGone)
	case <-time.After(waitFor):
		require.FailNow(t, "call not failed by close")
	}

	// A call bounded by ctx ends with it.
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _, _ = out.next(t); cancel() }()
	_, err = s.Call(ctx, "other", "cs", nil)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 1, s.Stats().CallsInFlight, "only the unanswered cl is left")
}

func TestDispatchEvents(t *testing.T) {
	s, out := newDispatchServer(t, ServerOptions{}, ServerHandler{})
	assert.ErrorIs(t, s.SendEvent("c", 1), ErrUnknownClient)
	s.handleMessage("p", EncodeClient(Message{Op: OpHello, ID: "c"}))
	out.next(t)
	s.handleMessage("q", EncodeClient(Message{Op: OpHello, ID: "d"}))
	out.next(t)

	require.NoError(t, s.SendEvent("c", map[string]any{"agents": []any{}}))
	to, m := out.next(t)
	assert.Equal(t, transport.PeerID("p"), to)
	assert.Equal(t, Message{Op: OpEvent, ID: "", Payload: []byte(`{"agents":[]}`)}, m)

	n, err := s.Broadcast(json.RawMessage(`{"x":1}`))
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	peers := map[transport.PeerID]bool{}
	for range 2 {
		to, m := out.next(t)
		peers[to] = true
		assert.Equal(t, `{"x":1}`, string(m.Payload))
	}
	assert.Len(t, peers, 2)

	// Events from a client are ignored, as by the reference.
	s.handleMessage("p", frames("4", "", `{"any":"body"}`, ""))
	out.empty(t)
	_, err = s.Broadcast(make(chan int))
	assert.Error(t, err)
}

func TestServerCloseCancelsHandlers(t *testing.T) {
	started := make(chan struct{})
	s := NewServer(ServerOptions{DrainTimeout: waitFor}, ServerHandler{
		HandleRequest: func(ctx context.Context, c ClientInfo, method string, params json.RawMessage) (any, error) {
			close(started)
			<-ctx.Done()
			return nil, ctx.Err()
		},
	})
	out := newFakeOut()
	s.serveWith(out)
	s.handleMessage("p", EncodeClient(Message{Op: OpHello, ID: "c"}))
	s.handleMessage("p", frames("1", "c-0", `["slow",1]`))
	<-started
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "closing twice is fine")
	_, err := s.Call(testCtx(t), "c", "x", nil)
	assert.ErrorIs(t, err, ErrServerClosed)
	assert.Error(t, s.Listen("127.0.0.1:0"), "a closed server does not start again")
}

func TestServerShutdownBoundedByStuckHandler(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	s, _ := newDispatchServer(t, ServerOptions{}, ServerHandler{
		HandleRequest: func(ctx context.Context, c ClientInfo, method string, params json.RawMessage) (any, error) {
			close(started)
			<-release // ignores ctx on purpose
			return nil, nil
		},
	})
	defer close(release)
	s.handleMessage("p", EncodeClient(Message{Op: OpHello, ID: "c"}))
	s.handleMessage("p", frames("1", "c-0", `["stuck",1]`))
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Shutdown(ctx)
	assert.ErrorIs(t, err, context.Canceled, "Shutdown returns when its ctx ends")
}

func TestServeListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := NewServer(ServerOptions{}, ServerHandler{HandleRequest: echoHandler})
	assert.Zero(t, s.Stats().Transport.Accepted, "stats before serving")
	assert.Nil(t, s.Addr())
	require.NoError(t, s.Serve(ln))
	defer func() { _ = s.Close() }()
	assert.Error(t, s.Serve(ln), "only once")
	assert.Error(t, s.Listen("127.0.0.1:0"), "only once")
	assert.Equal(t, ln.Addr().String(), s.Addr().String())
	p := dialRaw(t, s.Addr().String())
	assert.Equal(t, s.ID(), p.hello(t, "c", time.Minute).ID)
	assert.EqualValues(t, 1, s.Stats().Transport.Accepted)
	assert.Error(t, NewServer(ServerOptions{}, ServerHandler{}).Serve(nil))
}

func TestListenBadAddress(t *testing.T) {
	s := NewServer(ServerOptions{}, ServerHandler{})
	assert.Error(t, s.Listen("not an address"))
	require.NoError(t, s.Close())
}
