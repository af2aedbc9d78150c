// Package clienttest runs a small huly network inside a test: a network
// server with short timeouts on a free port of 127.0.0.1, clients and
// agents tied to the test's life.
package clienttest

import (
	"context"
	"io"
	"os"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/server"
)

// Timeouts of the test network: short, so that liveness tests run fast,
// and long enough for -race on a busy machine.
const (
	AliveTimeout  = 800 * time.Millisecond
	UnusedTimeout = 300 * time.Millisecond
	PingInterval  = 100 * time.Millisecond
	// WaitFor bounds every wait of a test.
	WaitFor = 10 * time.Second
)

// Quiet is a logger that discards everything.
func Quiet() logrus.FieldLogger {
	l := logrus.New()
	if os.Getenv("HULY_TEST_LOG") != "" {
		l.SetLevel(logrus.DebugLevel)
		return l
	}
	l.SetOutput(io.Discard)
	return l
}

// Ctx is a context that ends after WaitFor or with the test.
func Ctx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitFor)
	t.Cleanup(cancel)
	return ctx
}

// Server is a network server running for a test.
type Server struct {
	*server.Server
	cancel context.CancelFunc
	done   chan error
}

// Addr is the server's "127.0.0.1:PORT".
func (s *Server) Addr() string { return s.Server.Addr().String() }

// Stop stops the server (as a crash would: clients are not told) and
// waits for it; calling it twice is fine.
func (s *Server) Stop() {
	s.cancel()
	<-s.done
	s.done <- nil // for the next Stop
}

// StartServer runs a network server on a free port of 127.0.0.1.
func StartServer(t testing.TB) *Server {
	t.Helper()
	return StartServerAt(t, "127.0.0.1:0")
}

// StartServerAt runs a network server on addr (a restarted server takes
// its predecessor's address); it stops at the end of the test.
func StartServerAt(t testing.TB, addr string) *Server {
	t.Helper()
	s := server.New(server.Options{
		AliveTimeout:  AliveTimeout,
		UnusedTimeout: UnusedTimeout,
		PingInterval:  PingInterval,
		Logger:        Quiet(),
	})
	require.NoError(t, s.Listen("tcp://"+addr))
	ctx, cancel := context.WithCancel(context.Background())
	ts := &Server{Server: s, cancel: cancel, done: make(chan error, 1)}
	go func() { ts.done <- s.Run(ctx, time.Second) }()
	t.Cleanup(ts.Stop)
	return ts
}

// Options are client options matching the test network's timeouts.
func Options(extra ...client.Option) []client.Option {
	return append([]client.Option{
		client.WithAliveTimeout(AliveTimeout),
		client.WithPingInterval(PingInterval),
		client.WithRetryTick(20 * time.Millisecond),
		client.WithMaxGetWait(200 * time.Millisecond),
		client.WithLogger(Quiet()),
	}, extra...)
}

// Dial connects a client, waits for its session and closes it at the end of
// the test.
func Dial(t testing.TB, addr string, extra ...client.Option) *client.Client {
	t.Helper()
	c, err := client.Dial(addr, Options(extra...)...)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), WaitFor)
		defer cancel()
		_ = c.Close(ctx)
	})
	require.NoError(t, c.WaitConnected(Ctx(t)))
	return c
}

// AgentSetup describes an agent for NewAgent.
type AgentSetup struct {
	// Options; an empty Endpoint gets a routed endpoint on a free port of
	// 127.0.0.1 unless NoConnect.
	Options   agent.Options
	NoConnect bool
	Kinds     map[string]agent.Factory
	Stateless []Stateless
}

// Stateless declares an HA container.
type Stateless struct {
	Kind, UUID string
	Factory    agent.Factory
}

// NewAgent creates an agent (closed at the end of the test) without
// attaching it.
func NewAgent(t testing.TB, setup AgentSetup) *agent.Agent {
	t.Helper()
	o := setup.Options
	if o.Logger == nil {
		o.Logger = Quiet()
	}
	if o.StatePublish == agent.StatePublishAuto {
		// The test network is a Go server, which takes a repeated
		// registration as an update whatever its hello announces.
		o.StatePublish = agent.StatePublishOn
	}
	if o.Endpoint == "" && !setup.NoConnect {
		o.Endpoint = "127.0.0.1:0"
		if o.Listen == "" {
			o.Listen = "127.0.0.1:0"
		}
	}
	a, err := agent.New(o)
	require.NoError(t, err)
	for k, f := range setup.Kinds {
		a.Register(k, f)
	}
	for _, s := range setup.Stateless {
		require.NoError(t, a.AddStateless(s.Kind, s.UUID, nil, s.Factory))
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), WaitFor)
		defer cancel()
		_ = a.Close(ctx)
	})
	return a
}

// StartAgent creates an agent, hosts it on a client of its own and waits
// for its registration.
func StartAgent(t testing.TB, addr string, setup AgentSetup) (*agent.Agent, *client.Client) {
	t.Helper()
	c := Dial(t, addr)
	a := NewAgent(t, setup)
	require.NoError(t, a.Attach(Ctx(t), c))
	return a, c
}

// EchoKinds offers kind "echo" served by agent.Echo.
func EchoKinds() map[string]agent.Factory {
	return map[string]agent.Factory{"echo": agent.NewEcho}
}
