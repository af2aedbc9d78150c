package backrpc

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHelloAliveTimeoutCapped(t *testing.T) {
	var mu sync.Mutex
	var connected []ClientInfo
	s := listenServer(t, "127.0.0.1:0", ServerOptions{MaxAliveTimeout: 10 * time.Second, Capabilities: []string{CapStatePublish}}, ServerHandler{
		OnClientConnected: func(c ClientInfo) { mu.Lock(); connected = append(connected, c); mu.Unlock() },
	})
	p := dialRaw(t, s.Addr().String())
	p.sendMsg(t, Message{Op: OpHello, ID: "greedy", Payload: []byte(`{"aliveTimeout":31536000,"capabilities":["state","x"]}`)})
	m := p.recv(t)
	require.Equal(t, OpHello, m.Op)
	assert.Equal(t, `{"aliveTimeout":10,"capabilities":["state"]}`, string(m.Payload), "granted the limit, announced the capabilities")
	info, ok := s.Client("greedy")
	require.True(t, ok)
	assert.Equal(t, 10*time.Second, info.AliveTimeout)
	assert.Equal(t, HelloInfo{AliveTimeout: 365 * 24 * time.Hour, Capabilities: []string{"state", "x"}}, info.Hello, "what the client announced is kept")
	assert.EqualValues(t, 1, s.Stats().AliveCapped)

	p.hello(t, "modest", 5*time.Second)
	info, _ = s.Client("modest")
	assert.Equal(t, 5*time.Second, info.AliveTimeout)
	assert.EqualValues(t, 1, s.Stats().AliveCapped, "a timeout within the limit is granted as asked")
}

func TestHelloClientIDTooLongRefused(t *testing.T) {
	connected := make(chan ClientInfo, 1)
	s := listenServer(t, "127.0.0.1:0", ServerOptions{MaxClientIDLen: 64}, ServerHandler{
		OnClientConnected: func(c ClientInfo) { connected <- c },
	})
	p := dialRaw(t, s.Addr().String())
	long := strings.Repeat("x", 65)
	p.sendMsg(t, Message{Op: OpHello, ID: long, Payload: EncodeHelloPayload(time.Hour)})
	m := p.recv(t)
	assert.Equal(t, OpResponseError, m.Op)
	err := DecodeErrorPayload(m.Payload)
	assert.Contains(t, err.Error(), "client id too long: 65 bytes, the limit is 64")
	assert.Empty(t, s.Clients(), "no session for a refused hello")
	assert.EqualValues(t, 1, s.Stats().RefusedHellos)
	p.waitConnected(t) // the connection was closed: this is the next one

	p.hello(t, strings.Repeat("y", 64), time.Second)
	assert.Len(t, s.Clients(), 1, "an id at the limit is fine")
	assert.Len(t, connected, 1)
}

func TestDetachedSessionsBudget(t *testing.T) {
	evicted := make(chan ClientInfo, 4)
	disconnected := make(chan ClientInfo, 4)
	s := listenServer(t, "127.0.0.1:0", ServerOptions{MaxDetachedSessions: 2, AliveTimeout: time.Hour, MaxAliveTimeout: time.Hour}, ServerHandler{
		OnClientTimeout:      func(c ClientInfo) { evicted <- c },
		OnClientDisconnected: func(c ClientInfo) { disconnected <- c },
	})
	for i, id := range []string{"first", "second", "third"} {
		p := dialRaw(t, s.Addr().String())
		p.hello(t, id, time.Hour)
		require.NoError(t, p.d.Close())
		select {
		case c := <-disconnected:
			assert.Equal(t, id, c.ID)
		case <-time.After(waitFor):
			require.FailNow(t, "no disconnect", id)
		}
		if i < 2 {
			assert.Equal(t, i+1, s.Stats().DetachedSessions)
		}
	}
	select {
	case c := <-evicted:
		assert.Equal(t, "first", c.ID, "the session detached longest goes first")
	case <-time.After(waitFor):
		require.FailNow(t, "no eviction")
	}
	st := s.Stats()
	assert.EqualValues(t, 1, st.Evictions)
	assert.Equal(t, 2, st.DetachedSessions)
	assert.Equal(t, 2, st.Clients)
	_, ok := s.Client("first")
	assert.False(t, ok)
}

func TestDetachedSessionCallFailsAndReconnect(t *testing.T) {
	disconnected := make(chan ClientInfo, 1)
	reconnected := make(chan ClientInfo, 1)
	s := listenServer(t, "127.0.0.1:0", ServerOptions{}, ServerHandler{
		OnClientDisconnected: func(c ClientInfo) { disconnected <- c },
		OnClientReconnected:  func(c ClientInfo) { reconnected <- c },
	})
	p := dialRaw(t, s.Addr().String())
	p.hello(t, "c", time.Minute)
	require.NoError(t, p.d.Close())
	select {
	case c := <-disconnected:
		assert.Equal(t, "c", c.ID)
	case <-time.After(waitFor):
		require.FailNow(t, "no disconnect")
	}
	_, err := s.Call(context.Background(), "c", "gg", []any{})
	require.Error(t, err)
	assert.True(t, errors.Is(err, ErrClientGone), "a call to a client whose connection is gone fails at once: %v", err)
	_, ok := s.Client("c")
	assert.True(t, ok, "the session is kept for the client to come back")

	p2 := dialRaw(t, s.Addr().String())
	p2.hello(t, "c", time.Minute)
	select {
	case c := <-reconnected:
		assert.Equal(t, "c", c.ID)
	case <-time.After(waitFor):
		require.FailNow(t, "no reconnect")
	}
	assert.Equal(t, 0, s.Stats().DetachedSessions)
}

func TestCloseClosesConnection(t *testing.T) {
	s := listenServer(t, "127.0.0.1:0", ServerOptions{}, ServerHandler{})
	p := dialRaw(t, s.Addr().String())
	p.hello(t, "c", time.Minute)
	p.sendMsg(t, Message{Op: OpClose})
	p.waitConnected(t) // closed by the server, then reconnected
	_, ok := s.Client("c")
	assert.False(t, ok)
}
