package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/client/clienttest"
	"github.com/huly-net/huly-net/go/internal/testutil"
	"github.com/huly-net/huly-net/go/network"
)

type served struct {
	UUID     string          `json:"uuid"`
	Op       string          `json:"op"`
	Data     json.RawMessage `json:"data"`
	ServedBy string          `json:"served_by"`
}

// The network server dies and a new one starts on the same port while
// requests wait for their answers: the requests complete, the agent
// registers again and the references follow, within a bounded wait.
func TestServerRestartWithHeldReferencesAndRequestsInFlight(t *testing.T) {
	skipShort(t)
	s1 := clienttest.StartServer(t)
	addr := s1.Addr()
	g := newGate("agent-1")
	a, _ := clienttest.StartAgent(t, addr, clienttest.AgentSetup{
		Options: agent.Options{ID: "agent-1"},
		Kinds:   map[string]agent.Factory{"gate": g.factory},
	})
	c := clienttest.Dial(t, addr)
	ctx := clienttest.Ctx(t)

	ref, err := c.Get(ctx, "gate", client.GetOptions{UUID: "held-1"})
	require.NoError(t, err)
	conn, err := ref.Connect(ctx)
	require.NoError(t, err)
	oldServer := c.ServerID()

	const inFlight = 20
	errs := make(chan error, inFlight)
	for i := 0; i < inFlight; i++ {
		go func() {
			res, err := ref.Request(ctx, "wait", i)
			if err == nil {
				var s served
				err = json.Unmarshal(res, &s)
				if err == nil && s.UUID != "held-1" {
					err = fmt.Errorf("answered by %s", s.UUID)
				}
			}
			errs <- err
		}()
	}
	require.Eventually(t, func() bool { return g.waiting.Load() >= inFlight }, clienttest.WaitFor, 5*time.Millisecond,
		"requests reach the container")

	s1.Stop()
	s2 := clienttest.StartServerAt(t, addr)
	// Answers from the first server's time are lost with it; the requests
	// must be sent again to the new one to complete.
	g.Open()

	for i := 0; i < inFlight; i++ {
		select {
		case err := <-errs:
			assert.NoError(t, err)
		case <-time.After(clienttest.WaitFor):
			t.Fatalf("only %d of %d requests completed after the restart", i, inFlight)
		}
	}
	assert.NotEqual(t, oldServer, c.ServerID())

	// The agent is registered again, with its container, and the client
	// holds its reference on the new server.
	require.Eventually(t, func() bool {
		as := s2.Network().Agents()
		return len(as) == 1 && string(as[0].AgentID) == a.ID() && as[0].Containers == 1
	}, clienttest.WaitFor, 10*time.Millisecond)
	require.Eventually(t, func() bool { return s2.Network().Stats().References == 1 }, clienttest.WaitFor, 10*time.Millisecond)
	assert.Equal(t, "held-1", ref.UUID())
	res, err := ref.Request(ctx, "after", nil)
	require.NoError(t, err)
	assert.Contains(t, string(res), `"uuid":"held-1"`)
	res, err = conn.Request(ctx, "after", nil)
	require.NoError(t, err, "the connection goes to the agent, which did not restart")
	assert.Contains(t, string(res), `"uuid":"held-1"`)

	// A new client of the new server can use the container too.
	other := clienttest.Dial(t, addr)
	recs, err := other.List(ctx, "gate")
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.Equal(t, ref.Endpoint(), recs[0].Endpoint)
}

// The client hosting the primary agent dies without a word (its traffic
// is cut): the standby serves the same uuid within the alive timeout plus
// one second. When the primary comes back, it stands by.
func TestHAFailoverWhenThePrimaryIsKilled(t *testing.T) {
	skipShort(t)
	s := clienttest.StartServer(t)
	gA, gB := newGate("primary"), newGate("standby")
	gA.Open()
	gB.Open()

	// The primary reaches the server through a proxy we can cut.
	px := newProxy(t, s.Addr())
	primaryClient := clienttest.Dial(t, px.addr)
	primary := clienttest.NewAgent(t, clienttest.AgentSetup{
		Stateless: []clienttest.Stateless{{Kind: "leader", UUID: "leader-1", Factory: gA.factory}},
	})
	require.NoError(t, primary.Attach(clienttest.Ctx(t), primaryClient))
	standby, _ := clienttest.StartAgent(t, s.Addr(), clienttest.AgentSetup{
		Stateless: []clienttest.Stateless{{Kind: "leader", UUID: "leader-1", Factory: gB.factory}},
	})
	require.Equal(t, "standby", standby.Containers()[0].State)

	c := clienttest.Dial(t, s.Addr())
	ctx := clienttest.Ctx(t)
	ref, err := c.Get(ctx, "leader", client.GetOptions{UUID: "leader-1"})
	require.NoError(t, err)
	who := func(r client.Requester) string {
		res, err := r.Request(ctx, "who", nil)
		if err != nil {
			return ""
		}
		var s served
		_ = json.Unmarshal(res, &s)
		return s.ServedBy
	}
	require.Equal(t, "primary", who(ref))
	conn, err := ref.Connect(ctx)
	require.NoError(t, err)
	require.Equal(t, "primary", who(conn))

	px.Kill()
	killed := time.Now()
	bound := clienttest.AliveTimeout + time.Second
	// A short per-request bound, so that one request routed to the dead
	// primary does not use up the whole allowance.
	quick := func() string {
		qctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		res, err := c.Request(qctx, "leader-1", "who", nil)
		if err != nil {
			return ""
		}
		var s served
		_ = json.Unmarshal(res, &s)
		return s.ServedBy
	}
	require.Eventually(t, func() bool { return quick() == "standby" }, bound, 10*time.Millisecond,
		"the standby did not serve leader-1 within alive timeout + 1 s")
	t.Logf("failover took %v", time.Since(killed))
	assert.Equal(t, "running", standby.Containers()[0].State)
	require.Eventually(t, func() bool { return who(ref) == "standby" }, clienttest.WaitFor, 10*time.Millisecond,
		"the reference follows")
	require.Eventually(t, func() bool { return mustParse(t, ref.Endpoint()).AgentID == network.AgentID(standby.ID()) },
		clienttest.WaitFor, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		qctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		res, err := conn.Request(qctx, "who", nil)
		return err == nil && json.Valid(res) && string(res) != "" && containsServedBy(res, "standby")
	}, clienttest.WaitFor, 10*time.Millisecond, "the open connection reconnects to the standby's agent")

	// The primary returns, often within its alive timeout (its session
	// resumes, the events of the handover lost): it registers again, loses
	// leader-1 to the standby and stands by.
	px.Revive()
	require.Eventually(t, func() bool { return primary.Containers()[0].State == "standby" }, clienttest.WaitFor, 10*time.Millisecond)
	require.Eventually(t, func() bool { return len(s.Network().Agents()) == 2 }, clienttest.WaitFor, 10*time.Millisecond)
	assert.Equal(t, "standby", who(ref))
}

// 1,000 clients connect and close; the goroutines return to the baseline.
func TestThousandClientsConnectAndClose(t *testing.T) {
	skipShort(t)
	s := clienttest.StartServer(t)
	// One client first, so that lazily started machinery (timers, pools)
	// counts in the baseline.
	warm := clienttest.Dial(t, s.Addr())
	require.NoError(t, warm.Close(clienttest.Ctx(t)))
	require.Eventually(t, func() bool { return s.Stats().RPC.Clients == 0 }, clienttest.WaitFor, 10*time.Millisecond)
	// Measured the way it is checked below: Eventually runs its
	// condition on goroutines of its own.
	var baseline int
	require.Eventually(t, func() bool { baseline = runtime.NumGoroutine(); return true }, clienttest.WaitFor, time.Millisecond)

	const total, parallel = 1000, 50
	var wg sync.WaitGroup
	errs := make(chan error, total)
	sem := make(chan struct{}, parallel)
	for i := 0; i < total; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), clienttest.WaitFor)
			defer cancel()
			c, err := client.Dial(s.Addr(), clienttest.Options()...)
			if err != nil {
				errs <- err
				return
			}
			if err := c.WaitConnected(ctx); err != nil {
				errs <- err
			}
			if err := c.Close(ctx); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return s.Stats().RPC.Clients == 0 }, clienttest.WaitFor, 10*time.Millisecond,
		"the server forgets every client")
	var last int
	stacks := func() string {
		buf := make([]byte, 1<<20)
		return string(buf[:runtime.Stack(buf, true)])
	}
	require.Eventually(t, func() bool {
		last = runtime.NumGoroutine()
		return last <= baseline
	}, clienttest.WaitFor, 20*time.Millisecond, "goroutines did not return to the baseline %d:\n%s", baseline, stacks())
	t.Logf("goroutines: baseline %d, after 1000 clients %d", baseline, last)
}

// Close returns within its bound when the server is gone, with references
// held, an agent hosted and a connection open.
func TestCloseIsBoundedWhenTheServerIsGone(t *testing.T) {
	skipShort(t)
	for _, withDeadline := range []bool{true, false} {
		t.Run(fmt.Sprintf("ctx_deadline=%v", withDeadline), func(t *testing.T) {
			s := clienttest.StartServer(t)
			const closeTimeout = 500 * time.Millisecond
			c, err := client.Dial(s.Addr(), clienttest.Options(client.WithCloseTimeout(closeTimeout))...)
			require.NoError(t, err)
			ctx := clienttest.Ctx(t)
			require.NoError(t, c.WaitConnected(ctx))
			a := clienttest.NewAgent(t, clienttest.AgentSetup{Kinds: clienttest.EchoKinds()})
			require.NoError(t, a.Attach(ctx, c))
			ref, err := c.Get(ctx, "echo", client.GetOptions{})
			require.NoError(t, err)
			_, err = ref.Connect(ctx)
			require.NoError(t, err)

			s.Stop()
			// Requests now wait for a server that does not come back.
			go func() { _, _ = ref.Request(context.Background(), "never", nil) }()

			closeCtx := context.Background()
			bound := closeTimeout
			if withDeadline {
				var cancel context.CancelFunc
				bound = 200 * time.Millisecond
				closeCtx, cancel = context.WithTimeout(closeCtx, bound)
				defer cancel()
			}
			done := make(chan error, 1)
			go func() { done <- c.Close(closeCtx) }()
			select {
			case <-done:
			case <-time.After(bound + 2*time.Second):
				t.Fatalf("Close did not return within its bound (%v)", bound)
			}
			_, err = c.Get(ctx, "echo", client.GetOptions{})
			assert.ErrorIs(t, err, client.ErrClosed)
			_, err = c.Kinds(ctx)
			assert.ErrorIs(t, err, client.ErrClosed)
		})
	}
}

// A client that reconnects to the same server after it was dropped for
// silence registers its agents and re-gets its references again.
func TestReconnectAfterBeingDroppedRegistersAgain(t *testing.T) {
	skipShort(t)
	s := clienttest.StartServer(t)
	px := newProxy(t, s.Addr())
	host := clienttest.Dial(t, px.addr)
	a := clienttest.NewAgent(t, clienttest.AgentSetup{Kinds: clienttest.EchoKinds()})
	require.NoError(t, a.Attach(clienttest.Ctx(t), host))
	ctx := clienttest.Ctx(t)
	ref, err := host.Get(ctx, "echo", client.GetOptions{UUID: "mine"})
	require.NoError(t, err)

	px.Kill()
	require.Eventually(t, func() bool { return len(s.Network().Agents()) == 0 }, clienttest.WaitFor, 10*time.Millisecond,
		"the server drops the silent client's agent")
	px.Revive()
	require.Eventually(t, func() bool {
		as := s.Network().Agents()
		return len(as) == 1 && as[0].AgentID == network.AgentID(a.ID())
	}, clienttest.WaitFor, 10*time.Millisecond)
	require.Eventually(t, func() bool { return s.Network().Stats().References == 1 }, clienttest.WaitFor, 10*time.Millisecond)
	res, err := ref.Request(ctx, "back", nil)
	require.NoError(t, err)
	assert.Contains(t, string(res), `"uuid":"mine"`)
}

func mustParse(t *testing.T, ref string) network.EndpointRef {
	t.Helper()
	r, err := network.ParseEndpointRef(ref)
	require.NoError(t, err)
	return r
}

func containsServedBy(res json.RawMessage, name string) bool {
	var s served
	return json.Unmarshal(res, &s) == nil && s.ServedBy == name
}

// An agent restarts (same id, same endpoint): a held reference is obtained
// again, the container starts again there, and an open connection gets
// its events again.
func TestAgentRestartKeepsConnectionsWorking(t *testing.T) {
	skipShort(t)
	s := clienttest.StartServer(t)
	endpoint := testutil.FreeAddr(t)
	setup := clienttest.AgentSetup{
		Options: agent.Options{ID: "agent-x", Endpoint: endpoint, Listen: endpoint},
		Kinds:   clienttest.EchoKinds(),
	}
	a1, _ := clienttest.StartAgent(t, s.Addr(), setup)
	c := clienttest.Dial(t, s.Addr())
	ctx := clienttest.Ctx(t)
	ref, err := c.Get(ctx, "echo", client.GetOptions{UUID: "kv-1"})
	require.NoError(t, err)
	conn, err := ref.Connect(ctx)
	require.NoError(t, err)
	events := conn.Events()
	broadcastSeen := func() bool {
		qctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		if _, err := conn.Request(qctx, "broadcast", map[string]string{"n": "1"}); err != nil {
			return false
		}
		select {
		case ev := <-events:
			return containsKey(ev, "from")
		case <-qctx.Done():
			return false
		}
	}
	require.True(t, broadcastSeen())

	require.NoError(t, a1.Close(ctx))
	clienttest.StartAgent(t, s.Addr(), setup)
	require.Eventually(t, broadcastSeen, clienttest.WaitFor, 10*time.Millisecond,
		"events reach the connection from the restarted agent's container")
	assert.Equal(t, "kv-1", ref.UUID())
}

func containsKey(raw json.RawMessage, key string) bool {
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return false
	}
	_, ok := m[key]
	return ok
}
