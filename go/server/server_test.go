package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/network"
)

const waitFor = 10 * time.Second

func quiet() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// startServer runs a network server on 127.0.0.1 with short timeouts.
func startServer(t *testing.T) *Server {
	t.Helper()
	s := New(Options{
		AliveTimeout:  800 * time.Millisecond,
		UnusedTimeout: 300 * time.Millisecond,
		PingInterval:  100 * time.Millisecond,
		Logger:        quiet(),
	})
	require.NoError(t, s.Listen("tcp://127.0.0.1:0"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, time.Second) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return s
}

func dial(t *testing.T, s *Server, h backrpc.ClientHandler) *backrpc.Client {
	t.Helper()
	c, err := backrpc.Dial(s.Addr().String(), backrpc.ClientOptions{
		AliveTimeout: 800 * time.Millisecond,
		PingInterval: 100 * time.Millisecond,
		Logger:       quiet(),
	}, h)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		_ = c.Close(ctx)
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, c.WaitConnected(ctx))
	return c
}

func request(t *testing.T, c *backrpc.Client, method string, params any) json.RawMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	res, err := c.Request(ctx, method, params)
	require.NoError(t, err, method)
	return res
}

// echoAgent answers back-requests as an agent hosting kind "echo" would:
// gg starts (or reuses) container "echo-1", cs echoes, ct records.
type echoAgent struct {
	id         string
	terminated chan string
	gets       atomic.Int32
}

func (a *echoAgent) handle(_ context.Context, method string, params json.RawMessage) (any, error) {
	var p []json.RawMessage
	if err := json.Unmarshal(params, &p); err != nil || len(p) != 2 {
		return nil, fmt.Errorf("bad params %s", params)
	}
	var agentID string
	_ = json.Unmarshal(p[0], &agentID)
	if agentID != a.id {
		return map[string]string{"error": "Agent " + agentID + " not found"}, nil
	}
	var args []json.RawMessage
	_ = json.Unmarshal(p[1], &args)
	switch method {
	case "gg":
		a.gets.Add(1)
		return []string{"echo-1", `{"kind":0,"host":"127.0.0.1","port":3738,"agentId":"` + a.id + `","uuid":"echo-1"}`}, nil
	case "cs":
		var op string
		_ = json.Unmarshal(args[1], &op)
		if op == "fail" {
			return nil, fmt.Errorf("boom")
		}
		if op == "agent-error" {
			return map[string]string{"error": "Container echo-1 is gone"}, nil
		}
		return map[string]json.RawMessage{"op": args[1], "data": args[2]}, nil
	case "ct":
		var uuid string
		_ = json.Unmarshal(args[0], &uuid)
		a.terminated <- uuid
		return "", nil
	}
	return nil, fmt.Errorf("unexpected back-request %s", method)
}

func registerEcho(t *testing.T, s *Server) (*echoAgent, *backrpc.Client) {
	t.Helper()
	a := &echoAgent{id: "agent-1", terminated: make(chan string, 4)}
	c := dial(t, s, backrpc.ClientHandler{HandleRequest: a.handle})
	res := request(t, c, "ar", map[string]any{"uuid": a.id, "containers": []any{}, "kinds": []string{"echo"}, "endpoint": `{"host":"127.0.0.1","port":3738,"kind":1,"agentId":"agent-1"}`})
	assert.JSONEq(t, `[]`, string(res))
	return a, c
}

// eventSink collects network events.
type eventSink struct {
	mu     sync.Mutex
	events []string
}

func (e *eventSink) on(p json.RawMessage) {
	e.mu.Lock()
	e.events = append(e.events, string(p))
	e.mu.Unlock()
}

// sawContainer reports whether an event announced kind for container uuid.
func (e *eventSink) sawContainer(uuid string, kind network.EventKind) bool {
	return e.saw(func(ev network.Event) bool {
		for _, c := range ev.Containers {
			if string(c.Container.UUID) == uuid && c.Event == kind {
				return true
			}
		}
		return false
	})
}

// sawAgent reports whether an event announced kind for agent id.
func (e *eventSink) sawAgent(id string, kind network.EventKind) bool {
	return e.saw(func(ev network.Event) bool {
		for _, a := range ev.Agents {
			if string(a.ID) == id && a.Event == kind {
				return true
			}
		}
		return false
	})
}

func (e *eventSink) saw(match func(network.Event) bool) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, raw := range e.events {
		var ev network.Event
		if json.Unmarshal([]byte(raw), &ev) == nil && match(ev) {
			return true
		}
	}
	return false
}

func TestRegisterGetRouteList(t *testing.T) {
	s := startServer(t)
	agent, _ := registerEcho(t, s)
	user := dial(t, s, backrpc.ClientHandler{})

	assert.JSONEq(t, `["echo"]`, string(request(t, user, "ak", map[string]any{})))

	res := request(t, user, "gg", map[string]any{"kind": "echo", "request": map[string]any{}})
	var got []string
	require.NoError(t, json.Unmarshal(res, &got))
	require.Len(t, got, 2)
	assert.Equal(t, "echo-1", got[0])
	assert.Contains(t, got[1], `"uuid":"echo-1"`)

	res = request(t, user, "cs", []any{"echo-1", "ping", map[string]int{"n": 7}})
	assert.JSONEq(t, `{"op":"ping","data":{"n":7}}`, string(res))

	// cl with kind null lists everything (the reference answers []), and
	// the record carries the real endpoint (the reference's is "").
	var recs []map[string]any
	require.NoError(t, json.Unmarshal(request(t, user, "cl", map[string]any{"kind": nil}), &recs))
	require.Len(t, recs, 1)
	assert.Equal(t, "echo-1", recs[0]["uuid"])
	assert.Equal(t, got[1], recs[0]["endpoint"])
	assert.Equal(t, "agent-1", recs[0]["agentId"])

	var agents []map[string]any
	require.NoError(t, json.Unmarshal(request(t, user, "al", map[string]any{}), &agents))
	require.Len(t, agents, 1)
	assert.Equal(t, float64(1), agents[0]["containers"])
	assert.Equal(t, int32(1), agent.gets.Load())

	st := s.Stats()
	assert.Equal(t, 1, st.Network.Agents)
	assert.Equal(t, 1, st.Network.Containers)
	assert.Equal(t, 2, st.RPC.Clients)
}

func TestErrorsReachTheCaller(t *testing.T) {
	s := startServer(t)
	registerEcho(t, s)
	user := dial(t, s, backrpc.ClientHandler{})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()

	_, err := user.Request(ctx, "zz", map[string]any{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Unknown method zz")

	_, err = user.Request(ctx, "gg", map[string]any{"kind": "nope", "request": map[string]any{}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "No suitable agents found for container nope")

	request(t, user, "gg", map[string]any{"kind": "echo", "request": map[string]any{}})
	_, err = user.Request(ctx, "cs", []any{"echo-1", "fail", nil})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "boom")

	// The reference's "normal response carrying an error" is an error
	// on the routed path too.
	_, err = user.Request(ctx, "cs", []any{"echo-1", "agent-error", nil})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Container echo-1 is gone")

	_, err = user.Request(ctx, "cs", []any{"no-such-container", "x", nil})
	require.Error(t, err)

	_, err = user.Request(ctx, "ar", "not an object")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ar:")

	// The server still serves after all that.
	assert.JSONEq(t, `["echo"]`, string(request(t, user, "ak", map[string]any{})))
}

func TestReleasedContainerIsTerminatedAfterUnusedTimeout(t *testing.T) {
	s := startServer(t)
	agent, _ := registerEcho(t, s)
	sink := &eventSink{}
	user := dial(t, s, backrpc.ClientHandler{OnEvent: sink.on})
	request(t, user, "gg", map[string]any{"kind": "echo", "request": map[string]any{}})
	assert.JSONEq(t, `"ok"`, string(request(t, user, "cr", map[string]any{"uuid": "echo-1"})))
	select {
	case uuid := <-agent.terminated:
		assert.Equal(t, "echo-1", uuid)
	case <-time.After(waitFor):
		t.Fatal("orphan not terminated")
	}
	require.Eventually(t, func() bool {
		return sink.sawContainer("echo-1", network.EventRemoved)
	}, waitFor, 10*time.Millisecond, "no removed event")
	assert.Equal(t, 0, s.Stats().Network.Containers)
}

func TestSilentAgentIsRemovedWithEvents(t *testing.T) {
	s := startServer(t)
	sink := &eventSink{}
	user := dial(t, s, backrpc.ClientHandler{OnEvent: sink.on})
	_, agentClient := registerEcho(t, s)
	request(t, user, "gg", map[string]any{"kind": "echo", "request": map[string]any{}})

	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, agentClient.Close(ctx))

	require.Eventually(t, func() bool { return s.Stats().Network.Agents == 0 }, waitFor, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		return sink.sawAgent("agent-1", network.EventRemoved)
	}, waitFor, 10*time.Millisecond, "no agent removed event")
	_, err := user.Request(ctx, "gg", map[string]any{"kind": "echo", "request": map[string]any{}})
	assert.Error(t, err)
}

func TestAgentSlowToAnswerCTHoldsBackNoEvent(t *testing.T) {
	s := startServer(t)
	stuck := make(chan struct{})
	defer close(stuck)
	ctCalls := make(chan struct{}, 4)
	a := &echoAgent{id: "agent-1", terminated: make(chan string, 4)}
	agentClient := dial(t, s, backrpc.ClientHandler{HandleRequest: func(ctx context.Context, method string, params json.RawMessage) (any, error) {
		if method == "ct" {
			ctCalls <- struct{}{}
			select { // never answers while the test runs
			case <-stuck:
			case <-ctx.Done():
			}
			return "", nil
		}
		return a.handle(ctx, method, params)
	}})
	request(t, agentClient, "ar", map[string]any{"uuid": a.id, "containers": []any{}, "kinds": []string{"echo"}, "endpoint": nil})

	sink := &eventSink{}
	user := dial(t, s, backrpc.ClientHandler{OnEvent: sink.on})
	request(t, user, "gg", map[string]any{"kind": "echo", "request": map[string]any{}})
	request(t, user, "cr", map[string]any{"uuid": "echo-1"})
	select {
	case <-ctCalls:
	case <-time.After(waitFor):
		t.Fatal("no ct")
	}
	require.Eventually(t, func() bool {
		return sink.sawContainer("echo-1", network.EventRemoved)
	}, waitFor, 10*time.Millisecond, "the removal waited for the agent's ct answer")
	// And the periodic check goes on: a second agent is still served.
	assert.JSONEq(t, `["echo"]`, string(request(t, user, "ak", map[string]any{})))
}
