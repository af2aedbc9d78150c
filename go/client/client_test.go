package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/client/clienttest"
	"github.com/huly-net/huly-net/go/network"
)

var (
	dial       = clienttest.Dial
	startAgent = clienttest.StartAgent
	ctxT       = clienttest.Ctx
)

const waitFor = clienttest.WaitFor

func startServer(t *testing.T) *clienttest.Server { return clienttest.StartServer(t) }

type echoAnswer struct {
	UUID      string          `json:"uuid"`
	Operation string          `json:"operation"`
	Data      json.RawMessage `json:"data"`
	ClientID  *string         `json:"clientId"`
}

func TestGetRequestListRelease(t *testing.T) {
	s := startServer(t)
	addr := s.Addr()
	a, _ := startAgent(t, addr, clienttest.AgentSetup{Kinds: clienttest.EchoKinds()})
	c := dial(t, addr)
	ctx := ctxT(t)

	kinds, err := c.Kinds(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"echo"}, kinds)

	agents, err := c.Agents(ctx)
	require.NoError(t, err)
	require.Len(t, agents, 1)
	assert.Equal(t, network.AgentID(a.ID()), agents[0].AgentID)
	assert.Equal(t, a.EndpointRef(), agents[0].Endpoint)

	ref, err := c.Get(ctx, "echo", client.GetOptions{Labels: []string{"x"}})
	require.NoError(t, err)
	assert.NotEmpty(t, ref.UUID())
	er, err := ref.EndpointRef()
	require.NoError(t, err)
	assert.Equal(t, network.RefRouted, er.Kind)
	assert.Equal(t, network.AgentID(a.ID()), er.AgentID)

	res, err := ref.Request(ctx, "echo", map[string]int{"n": 1})
	require.NoError(t, err)
	var ans echoAnswer
	require.NoError(t, json.Unmarshal(res, &ans))
	assert.Equal(t, ref.UUID(), ans.UUID)
	assert.Equal(t, "echo", ans.Operation)
	assert.JSONEq(t, `{"n":1}`, string(ans.Data))
	assert.Nil(t, ans.ClientID, "routed through the network: no client id")

	// A second get with the same labels reuses the container; with the
	// uuid it is the very same reference.
	again, err := c.Get(ctx, "echo", client.GetOptions{UUID: network.ContainerUUID(ref.UUID())})
	require.NoError(t, err)
	assert.Same(t, ref, again)

	recs, err := c.List(ctx, "echo")
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.Equal(t, ref.UUID(), string(recs[0].UUID))
	all, err := c.List(ctx, "")
	require.NoError(t, err)
	assert.Len(t, all, 1)

	require.NoError(t, ref.Release(ctx))
	require.NoError(t, ref.Release(ctx), "releasing twice is a no-op")
	_, err = ref.Request(ctx, "echo", nil)
	assert.ErrorIs(t, err, client.ErrReleased)
	// Nobody holds it: the network terminates it after its unused timeout.
	require.Eventually(t, func() bool { return len(a.Containers()) == 0 }, waitFor, 10*time.Millisecond)
}

func TestGetWaitsForAnAgentOfferingTheKind(t *testing.T) {
	s := startServer(t)
	addr := s.Addr()
	c := dial(t, addr, client.WithRetryTick(time.Hour), client.WithMaxGetWait(time.Hour))

	got := make(chan error, 1)
	go func() {
		_, err := c.Get(ctxT(t), "late", client.GetOptions{})
		got <- err
	}()
	// With waits of an hour between attempts, only the event announcing
	// the agent can make the get succeed in time.
	startAgent(t, addr, clienttest.AgentSetup{Kinds: map[string]agent.Factory{"late": agent.NewEcho}})
	select {
	case err := <-got:
		require.NoError(t, err)
	case <-time.After(waitFor):
		t.Fatal("get did not retry when the agent appeared")
	}
}

func TestGetIsBoundedByContext(t *testing.T) {
	s := startServer(t)
	c := dial(t, s.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := c.Get(ctx, "nobody-offers-this", client.GetOptions{})
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "No suitable agents found for container nobody-offers-this")

	_, err = c.Get(ctx, "", client.GetOptions{})
	assert.Error(t, err)
	_, err = c.Get(ctx, "x", client.GetOptions{Extra: json.RawMessage("{bad")})
	assert.Error(t, err)
}

func TestRequestErrorsCarryTheContainersMessage(t *testing.T) {
	s := startServer(t)
	addr := s.Addr()
	startAgent(t, addr, clienttest.AgentSetup{Kinds: map[string]agent.Factory{"fail": newFailing}})
	c := dial(t, addr)
	ctx := ctxT(t)
	ref, err := c.Get(ctx, "fail", client.GetOptions{})
	require.NoError(t, err)
	_, err = ref.Request(ctx, "anything", nil)
	require.Error(t, err)
	var re *client.RemoteError
	require.True(t, errors.As(err, &re), "%T %v", err, err)
	assert.Contains(t, re.Message, "boom")

	_, err = c.Request(ctx, "no-such-container", "x", nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Container no-such-container not found")
}

type failing struct{ agent.Broadcaster }

func newFailing(context.Context, string, network.GetOptions) (agent.Container, error) {
	return &failing{}, nil
}
func (*failing) Request(context.Context, string, string, json.RawMessage) (any, error) {
	return nil, errors.New("boom")
}
func (*failing) Terminate(context.Context) error { return nil }
func (*failing) Ping(context.Context) error      { return nil }

func TestEventsReachCallbacksAndChannel(t *testing.T) {
	s := startServer(t)
	addr := s.Addr()
	c := dial(t, addr)
	ch := c.Events()
	got := make(chan network.Event, 64)
	unsub := c.OnEvent(func(ev network.Event) { got <- ev })
	defer unsub()

	a, _ := startAgent(t, addr, clienttest.AgentSetup{Kinds: clienttest.EchoKinds()})
	waitAgentEvent := func(src <-chan network.Event) {
		t.Helper()
		deadline := time.After(waitFor)
		for {
			select {
			case ev := <-src:
				for _, ae := range ev.Agents {
					if string(ae.ID) == a.ID() && ae.Event == network.EventAdded {
						assert.Equal(t, []string{"echo"}, ae.Kinds)
						return
					}
				}
			case <-deadline:
				t.Fatal("no agent added event")
			}
		}
	}
	waitAgentEvent(got)
	waitAgentEvent(ch)
}

func TestCallIsTypedRequest(t *testing.T) {
	s := startServer(t)
	addr := s.Addr()
	startAgent(t, addr, clienttest.AgentSetup{Kinds: clienttest.EchoKinds()})
	c := dial(t, addr)
	ctx := ctxT(t)
	ref, err := c.Get(ctx, "echo", client.GetOptions{})
	require.NoError(t, err)

	ans, err := client.Call[echoAnswer](ctx, ref, "Calc.add", 1, "two", map[string]bool{"three": true})
	require.NoError(t, err)
	assert.Equal(t, "Calc.add", ans.Operation)
	assert.JSONEq(t, `[1,"two",{"three":true}]`, string(ans.Data))

	ans, err = client.Call[echoAnswer](ctx, ref, "Calc.none")
	require.NoError(t, err)
	assert.JSONEq(t, `[]`, string(ans.Data))

	_, err = client.Call[int](ctx, ref, "Calc.add", 1)
	assert.Error(t, err, "an object does not decode into an int")
}

func TestAFullEventChannelDropsWithoutStallingTheClient(t *testing.T) {
	s := startServer(t)
	addr := s.Addr()
	c := dial(t, addr, client.WithEventBuffer(1))
	_ = c.Events() // and never read
	seen := make(chan struct{}, 100)
	c.OnEvent(func(network.Event) { seen <- struct{}{} })
	// Each agent is announced once registered; the network merges what
	// happens within one check period, so wait for each announcement.
	for i := 0; i < 3; i++ {
		startAgent(t, addr, clienttest.AgentSetup{Kinds: clienttest.EchoKinds()})
		select {
		case <-seen:
		case <-time.After(waitFor):
			t.Fatal("no event")
		}
	}
	require.Eventually(t, func() bool { return c.DroppedEvents() >= 2 }, waitFor, 10*time.Millisecond)
	kinds, err := c.Kinds(ctxT(t))
	require.NoError(t, err, "requests still work")
	assert.Equal(t, []string{"echo"}, kinds)
}

func TestEventsChannelClosesWithTheClient(t *testing.T) {
	s := startServer(t)
	c, err := client.Dial(s.Addr(), clienttest.Options()...)
	require.NoError(t, err)
	ch := c.Events()
	require.NoError(t, c.Close(ctxT(t)))
	select {
	case _, ok := <-ch:
		assert.False(t, ok)
	case <-time.After(waitFor):
		t.Fatal("events channel not closed")
	}
	_, ok := <-c.Events()
	assert.False(t, ok, "a channel asked for after Close is closed too")
	assert.ErrorIs(t, c.WaitConnected(ctxT(t)), client.ErrClosed)
	_, err = c.Request(ctxT(t), "x", "op", nil)
	assert.ErrorIs(t, err, client.ErrClosed)
}
