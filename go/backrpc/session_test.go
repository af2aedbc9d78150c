package backrpc

import (
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Session rules over real sockets on 127.0.0.1.

func TestSocketHelloPong(t *testing.T) {
	s := listenServer(t, "tcp://127.0.0.1:0", ServerOptions{}, ServerHandler{HandleRequest: echoHandler})
	p := dialRaw(t, s.Addr().String())

	// Before hello: a ping draws pong and askHello, a request draws retry 1.
	p.sendMsg(t, Message{Op: OpPing})
	assert.Equal(t, Message{Op: OpPong, ID: s.ID(), Payload: []byte{}}, p.recv(t))
	assert.Equal(t, Message{Op: OpAskHello, ID: s.ID(), Payload: []byte{}}, p.recv(t))
	p.request(t, "c-0", "al", map[string]any{})
	assert.Equal(t, Message{Op: OpRetry, ID: "c-0", Payload: []byte("1")}, p.recv(t))

	m := p.hello(t, "c", 3*time.Second)
	assert.Equal(t, s.ID(), m.ID)
	assert.Equal(t, `{"aliveTimeout":3}`, string(m.Payload), "the answer says what was granted")
	p.sendMsg(t, Message{Op: OpPing})
	assert.Equal(t, OpPong, p.recv(t).Op)
	p.request(t, "c-0", "al", map[string]any{})
	m = p.recv(t)
	assert.Equal(t, OpResponse, m.Op)
	assert.JSONEq(t, `{"method":"al","params":{}}`, string(m.Payload))
}

func TestSocketBadFramesAnsweredAndOthersServed(t *testing.T) {
	s := listenServer(t, "127.0.0.1:0", ServerOptions{}, ServerHandler{HandleRequest: echoHandler})
	bad := dialRaw(t, s.Addr().String())
	good := dialRaw(t, s.Addr().String())
	bad.hello(t, "bad", time.Minute)
	good.hello(t, "good", time.Minute)

	bad.send(t, frames("1", "bad-0", "{not json")...)
	m := bad.recv(t)
	assert.Equal(t, OpResponseError, m.Op)
	assert.Equal(t, "bad-0", m.ID)
	bad.send(t, frames("1", "bad-1")...)
	m = bad.recv(t)
	assert.Equal(t, OpResponseError, m.Op)
	assert.Equal(t, "bad-1", m.ID)
	bad.send(t, frames("Z", "", "")...)
	bad.send(t, frames("")...)

	good.request(t, "good-0", "ak", map[string]any{})
	m = good.recv(t)
	assert.Equal(t, OpResponse, m.Op)
	assert.Equal(t, "good-0", m.ID)

	// The bad peer's session also goes on.
	bad.sendMsg(t, Message{Op: OpPing})
	assert.Equal(t, OpPong, bad.recv(t).Op)
	assert.EqualValues(t, 4, s.Stats().BadMessages)
}

func TestSocketDuplicateIgnoredAndInflightLimit(t *testing.T) {
	g := newGate()
	var calls atomic.Int32
	s := listenServer(t, "127.0.0.1:0", ServerOptions{MaxInflight: 2}, ServerHandler{
		HandleRequest: func(ctx context.Context, c ClientInfo, method string, params json.RawMessage) (any, error) {
			calls.Add(1)
			return params, g.wait(ctx)
		},
	})
	p := dialRaw(t, s.Addr().String())
	p.hello(t, "c", time.Minute)
	p.request(t, "c-0", "a", 0)
	p.request(t, "c-0", "a", 0)
	p.request(t, "c-1", "a", 1)
	p.request(t, "c-2", "a", 2)
	assert.Equal(t, Message{Op: OpRetry, ID: "c-2", Payload: []byte("1")}, p.recv(t))
	g.open()
	got := map[string]string{}
	for range 2 {
		m := p.recv(t)
		require.Equal(t, OpResponse, m.Op)
		got[m.ID] = string(m.Payload)
	}
	assert.Equal(t, map[string]string{"c-0": "0", "c-1": "1"}, got)
	assert.EqualValues(t, 2, calls.Load(), "the duplicate did not run")
	assert.EqualValues(t, 1, s.Stats().Duplicates)
}

func TestSocketAliveTimeoutDrop(t *testing.T) {
	timedOut := make(chan ClientInfo, 1)
	s := listenServer(t, "127.0.0.1:0", ServerOptions{PingInterval: 20 * time.Millisecond}, ServerHandler{
		OnClientTimeout: func(c ClientInfo) { timedOut <- c },
	})
	p := dialRaw(t, s.Addr().String())
	p.hello(t, "sleepy", 100*time.Millisecond)
	select {
	case c := <-timedOut:
		assert.Equal(t, "sleepy", c.ID)
	case <-time.After(waitFor):
		require.FailNow(t, "client not dropped")
	}
	assert.Equal(t, OpAskHello, p.recv(t).Op, "a dropped client is asked to say hello at once")
	p.waitConnected(t) // its connection was closed: this is the next one
	p.sendMsg(t, Message{Op: OpPing})
	assert.Equal(t, OpPong, p.recv(t).Op)
	assert.Equal(t, OpAskHello, p.recv(t).Op, "a dropped client is asked to say hello")
}

func TestSocketAskHelloAfterServerRestart(t *testing.T) {
	addr := freeAddr(t)
	s1 := listenServer(t, addr, ServerOptions{}, ServerHandler{})
	p := dialRaw(t, addr)
	assert.Equal(t, s1.ID(), p.hello(t, "c", time.Minute).ID)
	require.NoError(t, s1.Close())

	s2 := listenServer(t, addr, ServerOptions{}, ServerHandler{})
	p.waitConnected(t)
	p.sendMsg(t, Message{Op: OpPing})
	assert.Equal(t, Message{Op: OpPong, ID: s2.ID(), Payload: []byte{}}, p.recv(t))
	assert.Equal(t, Message{Op: OpAskHello, ID: s2.ID(), Payload: []byte{}}, p.recv(t))
	assert.NotEqual(t, s1.ID(), s2.ID())
}

func TestClientHelloRequestEventsAndClose(t *testing.T) {
	connected := make(chan ClientInfo, 1)
	closed := make(chan ClientInfo, 1)
	s := listenServer(t, "127.0.0.1:0", ServerOptions{MaxAliveTimeout: 2 * time.Hour}, ServerHandler{
		HandleRequest:     echoHandler,
		OnClientConnected: func(c ClientInfo) { connected <- c },
		OnClientClosed:    func(c ClientInfo) { closed <- c },
	})
	events := make(chan string, 4)
	changed := make(chan string, 4)
	c := dialClient(t, s.Addr().String(), ClientOptions{AliveTimeout: time.Hour}, ClientHandler{
		OnEvent:         func(p json.RawMessage) { events <- string(p) },
		OnServerChanged: func(ctx context.Context, id string) { changed <- id },
	})
	require.NoError(t, c.WaitConnected(testCtx(t)))
	assert.True(t, c.Connected())
	assert.Equal(t, s.ID(), c.ServerID())
	assert.Equal(t, s.ID(), <-changed, "first contact is a server change")

	info := <-connected
	assert.Equal(t, c.ID(), info.ID)
	assert.Equal(t, time.Hour, info.AliveTimeout, "announced alive timeout")

	raw, err := c.Request(testCtx(t), "al", map[string]any{})
	require.NoError(t, err)
	assert.JSONEq(t, `{"method":"al","params":{}}`, string(raw))

	require.NoError(t, s.SendEvent(c.ID(), map[string]int{"n": 1}))
	n, err := s.Broadcast([]int{2})
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, `{"n":1}`, <-events)
	assert.Equal(t, `[2]`, <-events)

	require.NoError(t, c.Close(testCtx(t)))
	select {
	case ci := <-closed:
		assert.Equal(t, c.ID(), ci.ID, "close reached the server")
	case <-time.After(waitFor):
		require.FailNow(t, "server did not see close")
	}
	_, err = c.Request(testCtx(t), "al", nil)
	assert.ErrorIs(t, err, ErrClientClosed)
	assert.ErrorIs(t, c.WaitConnected(testCtx(t)), ErrClientClosed)
}

func TestClientRemoteErrors(t *testing.T) {
	s := listenServer(t, "127.0.0.1:0", ServerOptions{}, ServerHandler{
		HandleRequest: func(ctx context.Context, c ClientInfo, method string, params json.RawMessage) (any, error) {
			return nil, errors.New("Unknown method" + method)
		},
	})
	c := dialClient(t, s.Addr().String(), ClientOptions{}, ClientHandler{})
	_, err := c.Request(testCtx(t), "zz", map[string]int{"a": 1})
	var re *RemoteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "Unknown methodzz", re.Message)
	assert.Equal(t, "Error: Unknown methodzz", re.Stack)
}

func TestClientRequestBeforeConnectWaits(t *testing.T) {
	addr := freeAddr(t)
	c := dialClient(t, addr, ClientOptions{}, ClientHandler{})
	res := make(chan error, 1)
	go func() {
		_, err := c.Request(testCtx(t), "al", nil)
		res <- err
	}()
	require.Eventually(t, func() bool { return c.Stats().Pending == 1 }, waitFor, 5*time.Millisecond)
	listenServer(t, addr, ServerOptions{}, ServerHandler{HandleRequest: echoHandler})
	select {
	case err := <-res:
		assert.NoError(t, err, "sent once the server answered hello")
	case <-time.After(waitFor):
		require.FailNow(t, "request never completed")
	}
}

func TestClientRequestBoundedByContext(t *testing.T) {
	c := dialClient(t, freeAddr(t), ClientOptions{}, ClientHandler{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Request(ctx, "al", nil)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Zero(t, c.Stats().Pending, "an abandoned request is forgotten")
	assert.ErrorIs(t, c.WaitConnected(ctx), context.Canceled)
}

func TestClientResendsPendingAfterServerRestart(t *testing.T) {
	addr := freeAddr(t)
	firstSeen := make(chan string, 1)
	s1 := listenServer(t, addr, ServerOptions{}, ServerHandler{
		HandleRequest: func(ctx context.Context, c ClientInfo, method string, params json.RawMessage) (any, error) {
			id, _ := RequestIDFromContext(ctx)
			firstSeen <- id
			<-ctx.Done() // the server dies before answering
			return nil, ctx.Err()
		},
	})

	var mu sync.Mutex
	var order []string
	note := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
	c := dialClient(t, addr, ClientOptions{}, ClientHandler{
		OnServerChanged: func(ctx context.Context, id string) { note("changed " + id) },
	})
	require.NoError(t, c.WaitConnected(testCtx(t)))

	res := make(chan error, 1)
	var raw json.RawMessage
	go func() {
		var err error
		raw, err = c.Request(testCtx(t), "cs", []any{"uuid", "echo", map[string]any{"before": "restart"}})
		res <- err
	}()
	id := <-firstSeen
	require.NoError(t, s1.Close())

	s2 := listenServer(t, addr, ServerOptions{}, ServerHandler{
		HandleRequest: func(ctx context.Context, cl ClientInfo, method string, params json.RawMessage) (any, error) {
			rid, _ := RequestIDFromContext(ctx)
			note("request " + rid)
			return params, nil
		},
	})
	select {
	case err := <-res:
		require.NoError(t, err)
	case <-time.After(waitFor):
		require.FailNow(t, "pending request was not resent")
	}
	assert.JSONEq(t, `["uuid","echo",{"before":"restart"}]`, string(raw))
	assert.Equal(t, s2.ID(), c.ServerID())
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"changed " + s1.ID(), "changed " + s2.ID(), "request " + id}, order,
		"OnServerChanged runs first, then the resend with the same id")
}

func TestClientReHelloOnAskHello(t *testing.T) {
	// The server drops the client (alive timeout shorter than its pings),
	// the next ping draws askHello, the client says hello again and
	// re-registers.
	s := listenServer(t, "127.0.0.1:0", ServerOptions{PingInterval: 20 * time.Millisecond}, ServerHandler{})
	changed := make(chan string, 8)
	c := dialClient(t, s.Addr().String(), ClientOptions{
		AliveTimeout: 100 * time.Millisecond,
		PingInterval: 300 * time.Millisecond,
	}, ClientHandler{OnServerChanged: func(ctx context.Context, id string) { changed <- id }})
	assert.Equal(t, s.ID(), <-changed)
	select {
	case id := <-changed:
		assert.Equal(t, s.ID(), id, "same server, but it forgot us: register again")
	case <-time.After(waitFor):
		require.FailNow(t, "no re-hello after askHello")
	}
	assert.GreaterOrEqual(t, s.Stats().Timeouts, uint64(1))
	assert.GreaterOrEqual(t, s.Stats().Hellos, uint64(2))
	assert.GreaterOrEqual(t, c.Stats().ServerChanges, uint64(2))
}

func TestClientRetry(t *testing.T) {
	g := newGate()
	var calls sync.Map
	s := listenServer(t, "127.0.0.1:0", ServerOptions{MaxInflight: 1}, ServerHandler{
		HandleRequest: func(ctx context.Context, c ClientInfo, method string, params json.RawMessage) (any, error) {
			id, _ := RequestIDFromContext(ctx)
			n, _ := calls.LoadOrStore(id, new(atomic.Int32))
			n.(*atomic.Int32).Add(1)
			if method == "slow" {
				return "slow", g.wait(ctx)
			}
			return "fast", nil
		},
	})
	c := dialClient(t, s.Addr().String(), ClientOptions{RetryTick: 5 * time.Millisecond}, ClientHandler{})
	require.NoError(t, c.WaitConnected(testCtx(t)))

	slow := make(chan error, 1)
	go func() { _, err := c.Request(testCtx(t), "slow", nil); slow <- err }()
	require.Eventually(t, func() bool { return s.Stats().Requests == 1 }, waitFor, time.Millisecond)

	fast := make(chan error, 1)
	go func() { _, err := c.Request(testCtx(t), "fast", nil); fast <- err }()
	require.Eventually(t, func() bool { return c.Stats().Retries >= 2 }, waitFor, time.Millisecond,
		"retried while the slow one holds the only slot")
	g.open()
	require.NoError(t, <-slow)
	require.NoError(t, <-fast)
	n, ok := calls.Load(RequestID(c.ID(), 1))
	require.True(t, ok, "the retried request kept its id")
	assert.EqualValues(t, 1, n.(*atomic.Int32).Load())
	assert.GreaterOrEqual(t, s.Stats().Retries, uint64(2))
}

func TestBackRequestRoundTrip(t *testing.T) {
	s := listenServer(t, "127.0.0.1:0", ServerOptions{}, ServerHandler{HandleRequest: echoHandler})
	c := dialClient(t, s.Addr().String(), ClientOptions{}, ClientHandler{
		HandleRequest: func(ctx context.Context, method string, params json.RawMessage) (any, error) {
			id, _ := RequestIDFromContext(ctx)
			switch method {
			case "gg":
				return map[string]any{"id": id, "params": params}, nil
			case "ct":
				return json.RawMessage(`""`), nil
			}
			return nil, errors.New("Agent x not found")
		},
	})
	require.NoError(t, c.WaitConnected(testCtx(t)))

	// The client's own first request id and the server's first back-request
	// id are both CLIENTID-0: the tables must stay apart.
	own, err := c.Request(testCtx(t), "al", nil)
	require.NoError(t, err)
	assert.JSONEq(t, `{"method":"al","params":null}`, string(own))

	raw, err := s.Call(testCtx(t), c.ID(), "gg", []any{"agent", []any{"echo", map[string]any{}}})
	require.NoError(t, err)
	assert.JSONEq(t, `{"id":"`+c.ID()+`-0","params":["agent",["echo",{}]]}`, string(raw))

	raw, err = s.Call(testCtx(t), c.ID(), "ct", []any{"agent", []any{"uuid"}})
	require.NoError(t, err)
	assert.Equal(t, `""`, string(raw))

	_, err = s.Call(testCtx(t), c.ID(), "zz", nil)
	var re *RemoteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "Agent x not found", re.Message)
	assert.EqualValues(t, 3, c.Stats().BackRequests)
}

func TestClientWithoutBackRequestHandlerAnswersError(t *testing.T) {
	s := listenServer(t, "127.0.0.1:0", ServerOptions{}, ServerHandler{})
	c := dialClient(t, s.Addr().String(), ClientOptions{}, ClientHandler{})
	require.NoError(t, c.WaitConnected(testCtx(t)))
	_, err := s.Call(testCtx(t), c.ID(), "gg", nil)
	var re *RemoteError
	assert.ErrorAs(t, err, &re)
}

func TestClientCloseBoundedWithServerGone(t *testing.T) {
	s := NewServer(ServerOptions{}, ServerHandler{
		HandleRequest: func(ctx context.Context, c ClientInfo, method string, params json.RawMessage) (any, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		},
	})
	require.NoError(t, s.Listen("127.0.0.1:0"))
	c := dialClient(t, s.Addr().String(), ClientOptions{}, ClientHandler{})
	require.NoError(t, c.WaitConnected(testCtx(t)))
	res := make(chan error, 1)
	go func() { _, err := c.Request(testCtx(t), "hang", nil); res <- err }()
	require.Eventually(t, func() bool { return s.Stats().Requests == 1 }, waitFor, time.Millisecond)
	require.NoError(t, s.Close())

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	require.NoError(t, c.Close(ctx))
	assert.ErrorIs(t, <-res, ErrClientClosed)
	assert.NoError(t, c.Close(ctx), "closing twice is fine")
}

func TestClientReconnectSameServerResends(t *testing.T) {
	// The connection drops while a request is in flight; the client comes
	// back to the same server (same id), resends, the server ignores the
	// duplicate and answers on the new connection.
	g := newGate()
	s := listenServer(t, "127.0.0.1:0", ServerOptions{}, ServerHandler{
		HandleRequest: func(ctx context.Context, c ClientInfo, method string, params json.RawMessage) (any, error) {
			return "ok", g.wait(ctx)
		},
	})
	changes := make(chan string, 4)
	c := dialClient(t, s.Addr().String(), ClientOptions{}, ClientHandler{
		OnServerChanged: func(ctx context.Context, id string) { changes <- id },
	})
	require.NoError(t, c.WaitConnected(testCtx(t)))
	res := make(chan error, 1)
	go func() { _, err := c.Request(testCtx(t), "slow", nil); res <- err }()
	require.Eventually(t, func() bool { return s.Stats().Requests == 1 }, waitFor, time.Millisecond)

	info, ok := s.Client(c.ID())
	require.True(t, ok)
	s.router.Disconnect(info.Peer)
	require.Eventually(t, func() bool {
		in, ok := s.Client(c.ID())
		return ok && in.Peer != info.Peer && c.Connected()
	}, waitFor, time.Millisecond, "client back on a new connection")
	require.Eventually(t, func() bool { return s.Stats().Duplicates == 1 }, waitFor, time.Millisecond,
		"the resend reached the server and was ignored")
	g.open()
	require.NoError(t, <-res)
	assert.Len(t, changes, 1, "same server: no second OnServerChanged")
	assert.EqualValues(t, 1, s.Stats().Requests)
	assert.GreaterOrEqual(t, c.Stats().Connections, uint64(2))
}

func TestDialRejectsBadAddress(t *testing.T) {
	for _, a := range []string{"", "nohost", "tcp://*:3737", "tcp://127.0.0.1", ":3737"} {
		_, err := Dial(a, ClientOptions{}, ClientHandler{})
		assert.Error(t, err, a)
	}
}

func TestClientReconnectsWhenServerFallsSilent(t *testing.T) {
	// A server that answers hello and then nothing: the client takes the
	// connection for dead and makes a new one, which says hello again.
	srv := newScriptServer(t, "127.0.0.1:0")
	hellos := make(chan struct{}, 16)
	ctx := testCtx(t)
	go func() {
		for {
			select {
			case in := <-srv.in:
				if m, err := Decode(in.frames); err == nil && m.Op == OpHello {
					hellos <- struct{}{}
					_ = srv.r.Send(in.peer, frames("0", "quiet-server", "")...)
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	c := dialClient(t, srv.r.Addr().String(), ClientOptions{
		PingInterval:  10 * time.Millisecond,
		ServerTimeout: 100 * time.Millisecond,
	}, ClientHandler{})
	for i := range 2 {
		select {
		case <-hellos:
		case <-ctx.Done():
			require.FailNow(t, "no hello", "hello %d", i)
		}
	}
	// The hello travels with the handshake, so the server can see it
	// before the client has counted the connection: wait for the counts.
	require.Eventually(t, func() bool {
		st := c.Stats()
		return st.Reconnects >= 1 && st.Connections >= 2
	}, waitFor, 5*time.Millisecond, "stats: %+v", c.Stats())
}

func TestNoGoroutinesLeftBehind(t *testing.T) {
	base := userGoroutines()
	s := NewServer(ServerOptions{}, ServerHandler{HandleRequest: echoHandler})
	require.NoError(t, s.Listen("127.0.0.1:0"))
	ctx := testCtx(t)
	clients := make([]*Client, 50)
	for i := range clients {
		c, err := Dial(s.Addr().String(), ClientOptions{}, ClientHandler{
			HandleRequest: func(ctx context.Context, method string, params json.RawMessage) (any, error) { return 1, nil },
		})
		require.NoError(t, err)
		clients[i] = c
	}
	for _, c := range clients {
		_, err := c.Request(ctx, "al", nil)
		require.NoError(t, err)
		_, err = s.Call(ctx, c.ID(), "gg", nil)
		require.NoError(t, err)
	}
	for _, c := range clients {
		require.NoError(t, c.Close(ctx))
	}
	require.NoError(t, s.Close())
	ok := assert.Eventually(t, func() bool { return userGoroutines() <= base }, waitFor, 10*time.Millisecond,
		"goroutines: %d at start", base)
	if !ok {
		buf := make([]byte, 1<<20)
		t.Logf("%s", buf[:runtime.Stack(buf, true)])
	}
}

// userGoroutines counts the goroutines a full stack dump shows (unlike
// runtime.NumGoroutine, not the runtime's own, which it starts lazily),
// leaving out testify's, which run the Eventually conditions.
func userGoroutines() int {
	buf := make([]byte, 1<<20)
	n := 0
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.HasPrefix(g, "goroutine ") && !strings.Contains(g, "github.com/stretchr/testify") {
			n++
		}
	}
	return n
}

func TestClientEventsValidatedUnlessUnchecked(t *testing.T) {
	s := listenServer(t, "127.0.0.1:0", ServerOptions{}, ServerHandler{})
	checked := make(chan string, 4)
	unchecked := make(chan string, 4)
	c1 := dialClient(t, s.Addr().String(), ClientOptions{}, ClientHandler{
		OnEvent: func(p json.RawMessage) { checked <- string(p) },
	})
	c2 := dialClient(t, s.Addr().String(), ClientOptions{}, ClientHandler{
		OnEvent:         func(p json.RawMessage) { unchecked <- string(p) },
		UncheckedEvents: true,
	})
	require.NoError(t, c1.WaitConnected(testCtx(t)))
	require.NoError(t, c2.WaitConnected(testCtx(t)))
	for _, c := range []*Client{c1, c2} {
		require.NoError(t, s.SendEvent(c.ID(), json.RawMessage(`{not json`)))
		require.NoError(t, s.SendEvent(c.ID(), json.RawMessage(`{"n":1}`)))
	}
	assert.Equal(t, `{"n":1}`, <-checked, "the bad event is dropped")
	assert.Equal(t, `{not json`, <-unchecked, "the handler sees what came")
	assert.Equal(t, `{"n":1}`, <-unchecked)
}
