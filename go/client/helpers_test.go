package client_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/server"
)

const waitFor = 10 * time.Second

func quiet() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	t.Cleanup(cancel)
	return ctx
}

// startServer runs a network server on a free port of 127.0.0.1 with short
// timeouts; it stops at the end of the test.
func startServer(t *testing.T) *server.Server {
	t.Helper()
	return startServerAt(t, "127.0.0.1:0")
}

func startServerAt(t *testing.T, addr string) *server.Server {
	t.Helper()
	s := server.New(server.Options{
		AliveTimeout:  800 * time.Millisecond,
		UnusedTimeout: 300 * time.Millisecond,
		PingInterval:  100 * time.Millisecond,
		Logger:        quiet(),
	})
	require.NoError(t, s.Listen("tcp://"+addr))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, time.Second) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return s
}

func fastOpts(extra ...client.Option) []client.Option {
	return append([]client.Option{
		client.WithAliveTimeout(800 * time.Millisecond),
		client.WithPingInterval(100 * time.Millisecond),
		client.WithRetryTick(20 * time.Millisecond),
		client.WithMaxGetWait(200 * time.Millisecond),
		client.WithLogger(quiet()),
	}, extra...)
}

// dial connects a client with short timeouts, closed at the end of the test.
func dial(t *testing.T, addr string, extra ...client.Option) *client.Client {
	t.Helper()
	c, err := client.Dial(addr, fastOpts(extra...)...)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		_ = c.Close(ctx)
	})
	require.NoError(t, c.WaitConnected(ctxT(t)))
	return c
}

type agentSetup struct {
	opts      agent.Options
	noconnect bool
	kinds     map[string]agent.Factory
	stateless []statelessDecl
}

type statelessDecl struct {
	kind, uuid string
	f          agent.Factory
}

// startAgent hosts an agent on a client of its own.
func startAgent(t *testing.T, addr string, setup agentSetup) (*agent.Agent, *client.Client) {
	t.Helper()
	c := dial(t, addr)
	a := attachAgent(t, c, setup)
	return a, c
}

func attachAgent(t *testing.T, c *client.Client, setup agentSetup) *agent.Agent {
	t.Helper()
	o := setup.opts
	if o.Logger == nil {
		o.Logger = quiet()
	}
	if o.Endpoint == "" && !setup.noconnect {
		o.Endpoint = "127.0.0.1:0"
		o.Listen = "127.0.0.1:0"
	}
	a, err := agent.New(o)
	require.NoError(t, err)
	for k, f := range setup.kinds {
		a.Register(k, f)
	}
	for _, s := range setup.stateless {
		require.NoError(t, a.AddStateless(s.kind, s.uuid, nil, s.f))
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		_ = a.Close(ctx)
	})
	require.NoError(t, a.Attach(ctxT(t), c))
	return a
}

func echoKinds() map[string]agent.Factory {
	return map[string]agent.Factory{"echo": agent.NewEcho}
}
