package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/client/clienttest"
	"github.com/huly-net/huly-net/go/network"
)

// counter is a container that records what it was sent.
type counter struct {
	agent.Broadcaster
	mu  sync.Mutex
	got []string
}

func (c *counter) Request(_ context.Context, _ string, op string, data json.RawMessage) (any, error) {
	if op == "fail" {
		return nil, errors.New("no")
	}
	c.mu.Lock()
	c.got = append(c.got, string(data))
	c.mu.Unlock()
	return "ok", nil
}
func (c *counter) Terminate(context.Context) error { return nil }
func (c *counter) Ping(context.Context) error      { return nil }
func (c *counter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

func TestSendDeliversWithoutWaiting(t *testing.T) {
	s := clienttest.StartServer(t)
	box := &counter{}
	clienttest.StartAgent(t, s.Addr(), clienttest.AgentSetup{Kinds: map[string]agent.Factory{
		"box": func(context.Context, string, network.GetOptions) (agent.Container, error) { return box, nil },
	}})
	c := clienttest.Dial(t, s.Addr())
	ctx := clienttest.Ctx(t)
	r, err := c.Get(ctx, "box", client.GetOptions{})
	require.NoError(t, err)
	const n = 500
	for i := range n {
		require.NoError(t, r.Send(ctx, "put", i))
	}
	require.NoError(t, c.Send(ctx, r.UUID(), "put", "by uuid"))
	require.Eventually(t, func() bool { return box.count() == n+1 }, waitFor, waitFor/1000)
	assert.Zero(t, c.SendErrors())

	require.NoError(t, r.Send(ctx, "fail", nil), "a failure is not the sender's to wait for")
	require.Eventually(t, func() bool { return c.SendErrors() == 1 }, waitFor, waitFor/1000)
	require.NoError(t, r.Release(ctx))
	assert.ErrorIs(t, r.Send(ctx, "put", 1), client.ErrReleased)
}

// A send is an ordinary cs: what a 0.7 server receives is the reference's
// request.
func TestSendIsAPlainRoutedRequest(t *testing.T) {
	got := make(chan string, 1)
	srv := backrpc.NewServer(backrpc.ServerOptions{}, backrpc.ServerHandler{
		HandleRequest: func(_ context.Context, _ backrpc.ClientInfo, method string, params json.RawMessage) (any, error) {
			got <- method + " " + string(params)
			return "ignored", nil
		},
	})
	require.NoError(t, srv.Listen("tcp://127.0.0.1:0"))
	t.Cleanup(func() { _ = srv.Close() })
	c := clienttest.Dial(t, srv.Addr().String())
	require.NoError(t, c.Send(clienttest.Ctx(t), "u1", "op", map[string]int{"a": 1}))
	select {
	case m := <-got:
		assert.Equal(t, `cs ["u1","op",{"a":1}]`, m)
	case <-clienttest.Ctx(t).Done():
		t.Fatal("no request arrived")
	}
}
