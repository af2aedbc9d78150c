package client_test

import (
	"context"
	"encoding/json"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/client/clienttest"
	"github.com/huly-net/huly-net/go/network"
)

func nextEvent(t *testing.T, ch <-chan json.RawMessage) json.RawMessage {
	t.Helper()
	select {
	case ev, ok := <-ch:
		require.True(t, ok, "event channel closed")
		return ev
	case <-time.After(waitFor):
		t.Fatal("no container event")
		return nil
	}
}

func TestRoutedConnectionSharesOneAgentSession(t *testing.T) {
	s := startServer(t)
	addr := s.Addr()
	a, _ := startAgent(t, addr, clienttest.AgentSetup{Kinds: clienttest.EchoKinds()})
	c := dial(t, addr)
	ctx := ctxT(t)

	r1, err := c.Get(ctx, "echo", client.GetOptions{UUID: "one"})
	require.NoError(t, err)
	r2, err := c.Get(ctx, "echo", client.GetOptions{UUID: "two"})
	require.NoError(t, err)
	c1, err := r1.Connect(ctx)
	require.NoError(t, err)
	c2, err := r2.Connect(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, a.EndpointClients(), "one session per agent endpoint")

	res, err := c1.Request(ctx, "echo", map[string]string{"via": "connection"})
	require.NoError(t, err)
	var ans echoAnswer
	require.NoError(t, json.Unmarshal(res, &ans))
	assert.Equal(t, "one", ans.UUID)
	require.NotNil(t, ans.ClientID)
	assert.Equal(t, c.ID(), *ans.ClientID, "the container sees the caller over the endpoint")

	// A broadcast reaches the connection of that container only.
	ev1 := c1.Events()
	viaCallback := make(chan json.RawMessage, 4)
	c1.OnEvent(func(m json.RawMessage) { viaCallback <- m })
	_, err = c1.Request(ctx, "broadcast", map[string]string{"note": "hi"})
	require.NoError(t, err)
	assert.JSONEq(t, `{"from":"one","to":"`+c.ID()+`","note":"hi"}`, string(nextEvent(t, ev1)))
	assert.JSONEq(t, `{"from":"one","to":"`+c.ID()+`","note":"hi"}`, string(nextEvent(t, viaCallback)))
	select {
	case ev := <-c2.Events():
		t.Fatalf("event of another container: %s", ev)
	default:
	}

	// Close sends cd: the container forgets the client.
	require.NoError(t, c1.Close())
	require.NoError(t, c1.Close())
	require.Eventually(t, func() bool {
		for _, ci := range a.Containers() {
			if ci.UUID == "one" {
				return ci.Clients == 0
			}
		}
		return false
	}, waitFor, 10*time.Millisecond)
	_, err = c1.Request(ctx, "echo", nil)
	assert.ErrorIs(t, err, client.ErrClosed)
	_, err = c2.Request(ctx, "echo", nil)
	assert.NoError(t, err, "the shared session stays for the other connection")

	// Releasing the reference closes its connections.
	require.NoError(t, r2.Release(ctx))
	_, err = c2.Request(ctx, "echo", nil)
	assert.ErrorIs(t, err, client.ErrClosed)
	require.Eventually(t, func() bool { return a.EndpointClients() == 0 }, waitFor, 10*time.Millisecond,
		"the last connection closes the agent session")
}

func TestNoConnectAgentIsReachedThroughTheNetwork(t *testing.T) {
	s := startServer(t)
	addr := s.Addr()
	a, _ := startAgent(t, addr, clienttest.AgentSetup{NoConnect: true, Kinds: clienttest.EchoKinds()})
	assert.Nil(t, a.Addr())
	c := dial(t, addr)
	ctx := ctxT(t)
	ref, err := c.Get(ctx, "echo", client.GetOptions{})
	require.NoError(t, err)
	er, err := ref.EndpointRef()
	require.NoError(t, err)
	assert.Equal(t, network.RefNoConnect, er.Kind)
	conn, err := ref.Connect(ctx)
	require.NoError(t, err)
	res, err := conn.Request(ctx, "echo", 5)
	require.NoError(t, err)
	var ans echoAnswer
	require.NoError(t, json.Unmarshal(res, &ans))
	assert.JSONEq(t, `5`, string(ans.Data))
	require.NoError(t, conn.Close())
}

// direct is a container that serves an endpoint of its own, where the
// method is the operation.
type direct struct {
	agent.Broadcaster
	uuid string
	srv  *backrpc.Server
}

func newDirect(t *testing.T) agent.Factory {
	return func(_ context.Context, uuid string, _ network.GetOptions) (agent.Container, error) {
		d := &direct{uuid: uuid}
		d.srv = backrpc.NewServer(backrpc.ServerOptions{Logger: clienttest.Quiet()}, backrpc.ServerHandler{
			HandleRequest: func(_ context.Context, cl backrpc.ClientInfo, method string, params json.RawMessage) (any, error) {
				if method == "emit" {
					_, err := d.srv.Broadcast(params)
					return "sent", err
				}
				return map[string]any{"uuid": d.uuid, "op": method, "data": params, "client": cl.ID}, nil
			},
		})
		if err := d.srv.Listen("tcp://127.0.0.1:0"); err != nil {
			return nil, err
		}
		t.Cleanup(func() { _ = d.srv.Close() })
		return d, nil
	}
}

func (d *direct) DirectEndpoint() (string, int) {
	_, p, _ := net.SplitHostPort(d.srv.Addr().String())
	port, _ := strconv.Atoi(p)
	return "127.0.0.1", port
}
func (d *direct) Request(_ context.Context, clientID, op string, data json.RawMessage) (any, error) {
	return map[string]any{"uuid": d.uuid, "op": op, "data": data, "via": "agent"}, nil
}
func (d *direct) Terminate(context.Context) error { return d.srv.Close() }
func (d *direct) Ping(context.Context) error      { return nil }

func TestDirectConnection(t *testing.T) {
	s := startServer(t)
	addr := s.Addr()
	startAgent(t, addr, clienttest.AgentSetup{Kinds: map[string]agent.Factory{"direct": newDirect(t)}})
	c := dial(t, addr)
	ctx := ctxT(t)
	ref, err := c.Get(ctx, "direct", client.GetOptions{})
	require.NoError(t, err)
	er, err := ref.EndpointRef()
	require.NoError(t, err)
	require.Equal(t, network.RefDirect, er.Kind)
	assert.Equal(t, network.ContainerUUID(ref.UUID()), er.UUID)

	conn, err := ref.Connect(ctx)
	require.NoError(t, err)
	res, err := conn.Request(ctx, "Store.put", []any{"k", 1})
	require.NoError(t, err)
	assert.JSONEq(t, `{"uuid":"`+ref.UUID()+`","op":"Store.put","data":["k",1],"client":"`+c.ID()+`"}`, string(res))

	// Events of a direct endpoint are the data as is.
	events := conn.Events()
	_, err = conn.Request(ctx, "emit", map[string]int{"n": 3})
	require.NoError(t, err)
	assert.JSONEq(t, `{"n":3}`, string(nextEvent(t, events)))

	// Routed through the network, the agent answers.
	res, err = ref.Request(ctx, "op", nil)
	require.NoError(t, err)
	assert.Contains(t, string(res), `"via":"agent"`)
	require.NoError(t, conn.Close())
}

func TestConnectToAnUnreachableEndpointIsBounded(t *testing.T) {
	s := startServer(t)
	addr := s.Addr()
	a, _ := startAgent(t, addr, clienttest.AgentSetup{Kinds: clienttest.EchoKinds()})
	c := dial(t, addr)
	ref, err := c.Get(ctxT(t), "echo", client.GetOptions{})
	require.NoError(t, err)
	// The agent's endpoint goes away; its registration stays.
	require.NoError(t, a.Close(ctxT(t)))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = ref.Connect(ctx)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}
