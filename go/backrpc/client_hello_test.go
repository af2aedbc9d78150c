package backrpc

import (
	"context"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// helloTestServer answers every hello with payload under serverID, pings with
// pong, and hands the test each hello it received.
func helloTestServer(t *testing.T, serverID string, payload *string, hellos chan<- Message) *scriptServer {
	t.Helper()
	srv := newScriptServer(t, "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		for {
			var in sent
			select {
			case in = <-srv.in:
			case <-ctx.Done():
				return
			}
			m, err := Decode(in.frames)
			if err != nil {
				continue
			}
			switch m.Op {
			case OpHello:
				hellos <- m
				_ = srv.r.Send(in.peer, EncodeServer(Message{Op: OpHello, ID: serverID, Payload: []byte(*payload)})...)
			case OpPing:
				_ = srv.r.Send(in.peer, EncodeServer(Message{Op: OpPong, ID: serverID})...)
			}
		}
	}()
	return srv
}

func TestClientAnnouncesCapabilitiesAndSeesTheServers(t *testing.T) {
	answer := `{"aliveTimeout":2,"capabilities":["state","zz-future"]}`
	hellos := make(chan Message, 16)
	srv := helloTestServer(t, "srv-1", &answer, hellos)

	seen := make(chan ServerSession, 4)
	var c *Client
	ready := make(chan struct{})
	c = dialClient(t, srv.r.Addr().String(), ClientOptions{
		ClientID: "c1", AliveTimeout: 3 * time.Second, Capabilities: []string{CapStatePublish},
	}, ClientHandler{OnServerChanged: func(context.Context, string) {
		<-ready
		seen <- c.Session()
	}})
	close(ready)

	select {
	case m := <-hellos:
		assert.Equal(t, "c1", m.ID)
		assert.Equal(t, `{"aliveTimeout":3,"capabilities":["state"]}`, string(m.Payload))
	case <-time.After(waitFor):
		require.FailNow(t, "no hello")
	}
	select {
	case s := <-seen:
		assert.Equal(t, "srv-1", s.ServerID)
		assert.Equal(t, uint64(1), s.Seq)
		assert.True(t, s.Hello.Has(CapStatePublish), "the handler sees what the server announced")
		assert.Equal(t, []string{"state", "zz-future"}, s.Hello.Capabilities)
		assert.Equal(t, 2*time.Second, s.Hello.AliveTimeout, "the alive timeout granted")
	case <-time.After(waitFor):
		require.FailNow(t, "OnServerChanged did not run")
	}
	assert.True(t, c.ServerHello().Has(CapStatePublish))
}

func TestClientHelloWithoutCapabilitiesIsTheReferences(t *testing.T) {
	answer := ""
	hellos := make(chan Message, 16)
	srv := helloTestServer(t, "srv-ts", &answer, hellos)
	c := dialClient(t, srv.r.Addr().String(), ClientOptions{ClientID: "c2", AliveTimeout: 3 * time.Second}, ClientHandler{})
	select {
	case m := <-hellos:
		assert.Equal(t, `{"aliveTimeout":3}`, string(m.Payload), "byte for byte a TS 0.7 client's hello")
	case <-time.After(waitFor):
		require.FailNow(t, "no hello")
	}
	require.NoError(t, c.WaitConnected(testCtx(t)))
	s := c.Session()
	assert.Equal(t, "srv-ts", s.ServerID)
	assert.Equal(t, uint64(1), s.Seq)
	assert.Zero(t, s.Hello, "an empty hello answer (a TS 0.7 server) announces nothing")
	assert.False(t, c.ServerHello().Has(CapStatePublish))
}

func TestClientSessionFollowsServerChanges(t *testing.T) {
	// A Go server answers hello with an empty payload today; whatever it
	// says, a restart is a new session whose hello is read again.
	addr := freeAddr(t)
	s1 := listenServer(t, addr, ServerOptions{ServerID: "s1"}, ServerHandler{})
	c := dialClient(t, addr, ClientOptions{}, ClientHandler{})
	require.NoError(t, c.WaitConnected(testCtx(t)))
	first := c.Session()
	assert.Equal(t, "s1", first.ServerID)
	assert.Equal(t, uint64(1), first.Seq)
	assert.Empty(t, first.Hello.Capabilities, "a server without options announces no capabilities")

	require.NoError(t, s1.Close())
	listenServer(t, addr, ServerOptions{ServerID: "s2"}, ServerHandler{})
	require.Eventually(t, func() bool { return c.Session().ServerID == "s2" }, waitFor, 5*time.Millisecond)
	assert.Equal(t, uint64(2), c.Session().Seq, "a server change starts a new session")
}

// A server that never answers is reported at warning once, not at every
// reconnection.
func TestClientReportsASilentServerOnce(t *testing.T) {
	srv := newScriptServer(t, "127.0.0.1:0") // answers nothing
	log, hook := logtest.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	c := dialClient(t, srv.r.Addr().String(), ClientOptions{
		PingInterval: 5 * time.Millisecond, ServerTimeout: 20 * time.Millisecond, Logger: log,
	}, ClientHandler{})
	count := func() (warnings, debugs int) {
		for _, e := range hook.AllEntries() {
			switch {
			case e.Level == logrus.WarnLevel && e.Message == "server silent; reconnecting":
				warnings++
			case e.Level == logrus.DebugLevel && e.Message == "server still silent; reconnecting":
				debugs++
			}
		}
		return warnings, debugs
	}
	require.Eventually(t, func() bool { _, d := count(); return d >= 2 }, waitFor, 5*time.Millisecond,
		"the client reconnects again and again")
	w, _ := count()
	assert.Equal(t, 1, w, "said at warning once")
	assert.GreaterOrEqual(t, c.Stats().Reconnects, uint64(3))
}
