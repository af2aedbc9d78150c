package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/client/clienttest"
	"github.com/huly-net/huly-net/go/network"
	"github.com/huly-net/huly-net/go/transport"
)

// tsNetwork is a network server that behaves as the TypeScript 0.7 one
// (PROTOCOL.md §7 and §10): it announces nothing in its hello answer; a
// second `ar` from an agent builds a fresh agent record holding only the
// containers new in it, so those the agent already hosted stay listed but
// are no longer tied to it; an agent whose client falls silent is removed
// with the containers tied to it, and the removal is announced only when
// there were some.
type tsNetwork struct {
	srv *backrpc.Server

	mu         sync.Mutex
	agents     map[string]*tsAgent
	containers map[string]*tsContainer
	ars        map[string]int // registrations per agent
	rr         int
}

type tsAgent struct {
	id         string
	client     string
	kinds      []string
	containers map[string]bool
}

type tsContainer struct {
	rec   network.ContainerRecord
	agent *tsAgent
}

func startTSNetwork(t *testing.T) *tsNetwork {
	t.Helper()
	n := &tsNetwork{agents: map[string]*tsAgent{}, containers: map[string]*tsContainer{}, ars: map[string]int{}}
	n.srv = backrpc.NewServer(backrpc.ServerOptions{
		ReferenceHello: true, // a TS 0.7 server answers hello with no payload
		PingInterval:   clienttest.PingInterval,
		Logger:         clienttest.Quiet(),
	}, backrpc.ServerHandler{
		HandleRequest:   n.handle,
		OnClientTimeout: n.clientGone,
	})
	require.NoError(t, n.srv.Listen("127.0.0.1:0"))
	t.Cleanup(func() { _ = n.srv.Close() })
	return n
}

func (n *tsNetwork) addr() string { return n.srv.Addr().String() }

func (n *tsNetwork) registrations(agentID string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ars[agentID]
}

// ghosts are listed containers whose agent the network no longer knows.
func (n *tsNetwork) listed() (all, ghosts int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, c := range n.containers {
		if n.agents[c.agent.id] != c.agent {
			ghosts++
		}
	}
	return len(n.containers), ghosts
}

func (n *tsNetwork) handle(ctx context.Context, cl backrpc.ClientInfo, method string, params json.RawMessage) (any, error) {
	switch method {
	case "ar":
		var reg network.AgentRegistration
		if err := json.Unmarshal(params, &reg); err != nil {
			return nil, err
		}
		return n.register(cl.ID, reg), nil
	case "au":
		var p struct {
			UUID string `json:"uuid"`
		}
		if err := json.Unmarshal(params, &p); err != nil {
			return nil, err
		}
		n.mu.Lock()
		ev := n.removeLocked(p.UUID)
		n.mu.Unlock()
		n.announce(ev)
		return "ok", nil
	case "al":
		n.mu.Lock()
		defer n.mu.Unlock()
		out := []network.AgentInfo{}
		for _, a := range n.agents {
			out = append(out, network.AgentInfo{AgentID: network.AgentID(a.id), Kinds: a.kinds, Containers: len(a.containers)})
		}
		return out, nil
	case "cl":
		n.mu.Lock()
		defer n.mu.Unlock()
		out := []network.ContainerRecord{}
		for _, c := range n.containers {
			out = append(out, c.rec)
		}
		return out, nil
	case "gg":
		var p struct {
			Kind    string             `json:"kind"`
			Request network.GetOptions `json:"request"`
		}
		if err := json.Unmarshal(params, &p); err != nil {
			return nil, err
		}
		return n.get(ctx, p.Kind, p.Request)
	}
	return nil, fmt.Errorf("Unknown method%s", method)
}

func (n *tsNetwork) register(clientID string, reg network.AgentRegistration) []string {
	id := string(reg.UUID)
	rec := &tsAgent{id: id, client: clientID, kinds: reg.Kinds, containers: map[string]bool{}}
	var ev network.Event
	terminate := []string{}
	n.mu.Lock()
	n.ars[id]++
	old := n.agents[id]
	n.agents[id] = rec
	listed := map[string]bool{}
	for _, c := range reg.Containers {
		listed[string(c.UUID)] = true
	}
	if old != nil {
		for u := range old.containers {
			if c := n.containers[u]; c != nil && !listed[u] {
				ev.Containers = append(ev.Containers, network.ContainerEvent{Container: c.rec, Event: network.EventRemoved})
				delete(n.containers, u)
			}
		}
	}
	for _, r := range reg.Containers {
		u := string(r.UUID)
		switch existing := n.containers[u]; {
		case existing == nil:
			n.containers[u] = &tsContainer{rec: r, agent: rec}
			rec.containers[u] = true
			ev.Containers = append(ev.Containers, network.ContainerEvent{Container: r, Event: network.EventAdded})
		case existing.agent.id != id:
			terminate = append(terminate, u)
		default:
			// The reference's quirk: the same agent lists it again; the
			// record keeps pointing at the old agent record, the new one
			// does not hold it.
		}
	}
	kind := network.EventAdded
	if old != nil {
		kind = network.EventUpdated
	}
	ev.Agents = append(ev.Agents, network.AgentEvent{ID: reg.UUID, Kinds: reg.Kinds, Event: kind})
	n.mu.Unlock()
	n.announce(ev)
	return terminate
}

func (n *tsNetwork) get(ctx context.Context, kind string, opts network.GetOptions) ([]string, error) {
	n.mu.Lock()
	if c := n.containers[string(opts.UUID)]; opts.UUID != "" && c != nil {
		n.mu.Unlock()
		return []string{string(c.rec.UUID), c.rec.Endpoint}, nil
	}
	var suitable []*tsAgent
	for _, a := range n.agents {
		for _, k := range a.kinds {
			if k == kind {
				suitable = append(suitable, a)
				break
			}
		}
	}
	if len(suitable) == 0 {
		n.mu.Unlock()
		return nil, fmt.Errorf("No suitable agents found for container %s", kind)
	}
	n.rr++
	a := suitable[n.rr%len(suitable)]
	n.mu.Unlock()
	res, err := n.srv.Call(ctx, a.client, "gg", []any{a.id, []any{kind, opts}})
	if err != nil {
		return nil, fmt.Errorf("Failed to get endpoint for container %s: %w", kind, err)
	}
	var got []string
	if err := json.Unmarshal(res, &got); err != nil || len(got) != 2 {
		return nil, fmt.Errorf("gg answer %s: %v", res, err)
	}
	rec := network.ContainerRecord{AgentID: network.AgentID(a.id), UUID: network.ContainerUUID(got[0]), Kind: kind, Labels: opts.Labels}
	n.mu.Lock()
	a.containers[got[0]] = true // the agent record chosen, as the reference does
	n.containers[got[0]] = &tsContainer{rec: rec, agent: a}
	n.mu.Unlock()
	n.announce(network.Event{Containers: []network.ContainerEvent{{Container: rec, Event: network.EventAdded}}})
	return got, nil
}

// clientGone removes the agents a silent client hosted.
func (n *tsNetwork) clientGone(cl backrpc.ClientInfo) {
	var evs []network.Event
	n.mu.Lock()
	for id, a := range n.agents {
		if a.client == cl.ID {
			evs = append(evs, n.removeLocked(id))
		}
	}
	n.mu.Unlock()
	for _, ev := range evs {
		n.announce(ev)
	}
}

func (n *tsNetwork) removeLocked(id string) network.Event {
	a := n.agents[id]
	if a == nil {
		return network.Event{}
	}
	delete(n.agents, id)
	var ev network.Event
	for u := range a.containers {
		if c := n.containers[u]; c != nil {
			ev.Containers = append(ev.Containers, network.ContainerEvent{Container: c.rec, Event: network.EventRemoved})
			delete(n.containers, u)
		}
	}
	if len(ev.Containers) == 0 {
		return network.Event{} // the reference announces no removal then
	}
	ev.Agents = []network.AgentEvent{{ID: network.AgentID(id), Kinds: a.kinds, Event: network.EventRemoved}}
	return ev
}

func (n *tsNetwork) announce(ev network.Event) {
	if !ev.Empty() {
		_, _ = n.srv.Broadcast(ev)
	}
}

// cutProxy forwards TCP connections to a target until Cut, which drops
// them all and refuses new ones: a host that vanished without a word.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	cut    bool
	wg     sync.WaitGroup
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &cutProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() { p.Cut(); p.wg.Wait() })
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) serve() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		if !p.track(in, out) {
			return
		}
		for _, pair := range [][2]net.Conn{{in, out}, {out, in}} {
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				_, _ = io.Copy(pair[0], pair[1])
				_ = pair[0].Close()
				_ = pair[1].Close()
			}()
		}
	}
}

func (p *cutProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		for _, c := range cs {
			_ = c.Close()
		}
		return false
	}
	p.conns = append(p.conns, cs...)
	return true
}

// Cut drops every connection and stops accepting.
func (p *cutProxy) Cut() {
	p.mu.Lock()
	p.cut = true
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	_ = p.ln.Close()
	for _, c := range conns {
		_ = c.Close()
	}
}

// statusEcho is a container that publishes a status: the agent would
// register again after each start to announce it where state is published.
type statusEcho struct{ agent.Container }

func (statusEcho) ContainerStatus() agent.ContainerStatus {
	return agent.ContainerStatus{Fields: map[string]any{"state": "running"}}
}

func newStatusEcho(ctx context.Context, uuid string, opts network.GetOptions) (agent.Container, error) {
	c, err := agent.NewEcho(ctx, uuid, opts)
	return statusEcho{c}, err
}

// events collects the network events a raw client receives.
type events struct {
	mu  sync.Mutex
	all []network.Event
}

func (e *events) add(raw json.RawMessage) {
	var ev network.Event
	if json.Unmarshal(raw, &ev) == nil {
		e.mu.Lock()
		e.all = append(e.all, ev)
		e.mu.Unlock()
	}
}

// removed returns the containers announced removed together with the
// removal of agent id.
func (e *events) removed(id string) (map[string]bool, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.all {
		for _, a := range ev.Agents {
			if string(a.ID) == id && a.Event == network.EventRemoved {
				out := map[string]bool{}
				for _, c := range ev.Containers {
					if c.Event == network.EventRemoved {
						out[string(c.Container.UUID)] = true
					}
				}
				return out, true
			}
		}
	}
	return nil, false
}

// A Go agent on a TypeScript 0.7 network server starts containers (each
// would make it register again where state is published), then dies: the
// server removes it with all its containers and announces the removal, so
// nothing is left behind.
func TestAgentOnTSServerLeavesNoGhosts(t *testing.T) {
	n := startTSNetwork(t)
	ctx := clienttest.Ctx(t)

	// The observer: a bare client that gets containers and hears events.
	var evs events
	obs, err := backrpc.Dial(n.addr(), backrpc.ClientOptions{}, backrpc.ClientHandler{OnEvent: evs.add})
	require.NoError(t, err)
	t.Cleanup(func() { _ = obs.Close(context.Background()) })

	// The agent's host reaches the server through a link the test cuts.
	link := newCutProxy(t, n.addr())
	host, err := client.Dial(link.addr(), clienttest.Options()...)
	require.NoError(t, err)
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = host.Close(cctx)
	})
	a, err := agent.New(agent.Options{Labels: []string{"zone-a"}, Logger: clienttest.Quiet()})
	require.NoError(t, err)
	a.Register("kv", newStatusEcho)
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = a.Close(cctx)
	})
	require.NoError(t, a.Attach(ctx, host))
	assert.Empty(t, host.Session().Hello.Capabilities, "the server announces nothing")

	const containers = 3
	started := map[string]bool{}
	for i := 0; i < containers; i++ {
		res, err := obs.Request(ctx, "gg", map[string]any{"kind": "kv", "request": map[string]any{"labels": []string{fmt.Sprint("tenant-", i)}}})
		require.NoError(t, err)
		var got []string
		require.NoError(t, json.Unmarshal(res, &got))
		started[got[0]] = true
	}
	require.Len(t, started, containers)
	require.Eventually(t, a.RegistrationIdle, waitFor, 5*time.Millisecond)
	assert.Equal(t, 1, n.registrations(a.ID()), "one registration per server session")
	// What the client does after a long disconnection: the network still
	// lists the agent, so it does not register again.
	require.NoError(t, a.RegisterWithNetwork(ctx))
	assert.Equal(t, 1, n.registrations(a.ID()), "not again while the network lists the agent")
	all, ghosts := n.listed()
	assert.Equal(t, containers, all)
	assert.Zero(t, ghosts, "every container is tied to its agent")

	// The agent's host vanishes: no au, no close.
	link.Cut()
	var gone map[string]bool
	require.Eventually(t, func() bool {
		var ok bool
		gone, ok = evs.removed(a.ID())
		return ok
	}, waitFor, 10*time.Millisecond, "the removal of the dead agent is announced")
	assert.Equal(t, started, gone, "with every container it hosted")
	all, ghosts = n.listed()
	assert.Zero(t, all, "nothing is listed any more")
	assert.Zero(t, ghosts)
	res, err := obs.Request(ctx, "cl", map[string]any{"kind": nil})
	require.NoError(t, err)
	assert.JSONEq(t, `[]`, string(res))
}

// On a TypeScript 0.7 server a standby that hosts nothing else still takes
// over a stateless container whose owner died (a registration then detaches
// nothing), and the new owner holds it: it is removed with it.
func TestStandbyTakesOverOnTSServer(t *testing.T) {
	n := startTSNetwork(t)
	ctx := clienttest.Ctx(t)
	var evs events
	obs, err := backrpc.Dial(n.addr(), backrpc.ClientOptions{}, backrpc.ClientHandler{OnEvent: evs.add})
	require.NoError(t, err)
	t.Cleanup(func() { _ = obs.Close(context.Background()) })

	start := func(addr string) *agent.Agent {
		host, err := client.Dial(addr, clienttest.Options()...)
		require.NoError(t, err)
		a, err := agent.New(agent.Options{Logger: clienttest.Quiet(), ReclaimDelay: time.Millisecond})
		require.NoError(t, err)
		require.NoError(t, a.AddStateless("ha", "leader-1", nil, agent.NewEcho))
		t.Cleanup(func() {
			cctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = a.Close(cctx)
			_ = host.Close(cctx)
		})
		require.NoError(t, a.Attach(ctx, host))
		return a
	}
	link := newCutProxy(t, n.addr())
	owner := start(link.addr())
	require.Eventually(t, func() bool { return owner.Containers()[0].State == "running" }, waitFor, 5*time.Millisecond)
	standby := start(n.addr())
	require.Equal(t, "standby", standby.Containers()[0].State)

	link.Cut()
	require.Eventually(t, func() bool { return standby.Containers()[0].State == "running" }, waitFor, 5*time.Millisecond,
		"the standby claims the container of the dead owner")
	require.Eventually(t, func() bool {
		gone, ok := evs.removed(owner.ID())
		return ok && gone["leader-1"]
	}, waitFor, 5*time.Millisecond, "the dead owner is announced removed with its container")
	require.Eventually(t, standby.RegistrationIdle, waitFor, 5*time.Millisecond)
	all, ghosts := n.listed()
	assert.Equal(t, 1, all)
	assert.Zero(t, ghosts)
	assert.Equal(t, 2, n.registrations(standby.ID()), "registered, then claimed")

	// The new owner leaves: the container goes with it.
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	require.NoError(t, standby.Close(cctx))
	all, _ = n.listed()
	assert.Zero(t, all)
}

// stateServer is a bare network server that announces state publishing in
// its hello answer and takes every registration as an update, as a Go
// server does; it records what each registration listed.
type stateServer struct {
	r *transport.Router
	// failing: registrations are answered with an error.
	failing atomic.Bool
	mu      sync.Mutex
	// extras[i] is the extra of "leader-1" in the i-th registration ("" when
	// not listed).
	extras []string
}

func startStateServer(t *testing.T) *stateServer {
	t.Helper()
	s := &stateServer{}
	r, err := transport.Listen("127.0.0.1:0", transport.RouterHandler{OnMessage: s.onMessage}, transport.Options{})
	require.NoError(t, err)
	s.r = r
	t.Cleanup(func() { _ = r.Close() })
	return s
}

func (s *stateServer) onMessage(peer transport.PeerID, frames [][]byte) {
	m, err := backrpc.Decode(frames)
	if err != nil {
		return
	}
	reply := func(op backrpc.Op, id string, payload []byte) {
		_ = s.r.Send(peer, backrpc.EncodeServer(backrpc.Message{Op: op, ID: id, Payload: payload})...)
	}
	switch m.Op {
	case backrpc.OpHello:
		reply(backrpc.OpHello, "state-srv", backrpc.EncodeHelloInfo(backrpc.HelloInfo{
			AliveTimeout: 3 * time.Second, Capabilities: []string{backrpc.CapStatePublish},
		}))
	case backrpc.OpPing:
		reply(backrpc.OpPong, "state-srv", nil)
	case backrpc.OpRequest:
		method, params, err := backrpc.DecodeRequestPayload(m.Payload)
		if err != nil || method != "ar" {
			reply(backrpc.OpResponseError, m.ID, backrpc.EncodeErrorPayload(fmt.Errorf("not here: %s", method)))
			return
		}
		if s.failing.Load() {
			reply(backrpc.OpResponseError, m.ID, backrpc.EncodeErrorPayload(errors.New("not now")))
			return
		}
		var reg network.AgentRegistration
		if json.Unmarshal(params, &reg) == nil {
			extra := ""
			for _, c := range reg.Containers {
				if c.UUID == "leader-1" {
					extra = string(c.Extra)
				}
			}
			s.mu.Lock()
			s.extras = append(s.extras, extra)
			s.mu.Unlock()
		}
		reply(backrpc.OpResponse, m.ID, []byte(`[]`))
	}
}

func (s *stateServer) registrations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.extras...)
}

// With a server that announces state publishing the agent registers again
// to publish the state of a container once it has started.
func TestAgentPublishesStateWhereTheServerAnnouncesIt(t *testing.T) {
	s := startStateServer(t)
	ctx := clienttest.Ctx(t)
	host, err := client.Dial(s.r.Addr().String(), clienttest.Options()...)
	require.NoError(t, err)
	a, err := agent.New(agent.Options{Logger: clienttest.Quiet(), ReclaimDelay: time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = a.Close(cctx)
		_ = host.Close(cctx)
	})
	require.NoError(t, a.AddStateless("ha", "leader-1", nil, newStatusEcho))
	require.NoError(t, a.Attach(ctx, host))
	assert.True(t, host.ServerHello().Has(backrpc.CapStatePublish))

	require.Eventually(t, func() bool {
		regs := s.registrations()
		return len(regs) >= 2 && regs[len(regs)-1] != ""
	}, waitFor, 5*time.Millisecond, "the started container's state is registered")
	regs := s.registrations()
	assert.Empty(t, regs[0], "the first registration claims it: no state yet")
	assert.JSONEq(t, `{"state":"running"}`, regs[len(regs)-1])
}

// A standby whose owner the network named does not register again at every
// standby check (each would draw the same answer, and a log line at the
// server); the owner's removal event is what claims the container.
func TestStandbyStaysQuietWhileItsOwnerLives(t *testing.T) {
	n := startTSNetwork(t)
	ctx := clienttest.Ctx(t)
	start := func(check time.Duration) *agent.Agent {
		host, err := client.Dial(n.addr(), clienttest.Options()...)
		require.NoError(t, err)
		a, err := agent.New(agent.Options{Logger: clienttest.Quiet(), StandbyCheck: check})
		require.NoError(t, err)
		require.NoError(t, a.AddStateless("ha", "leader-1", nil, agent.NewEcho))
		t.Cleanup(func() {
			cctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = a.Close(cctx)
			_ = host.Close(cctx)
		})
		require.NoError(t, a.Attach(ctx, host))
		return a
	}
	owner := start(time.Hour)
	require.Eventually(t, func() bool { return owner.Containers()[0].State == "running" }, waitFor, 5*time.Millisecond)
	standby := start(5 * time.Millisecond)
	require.Equal(t, "standby", standby.Containers()[0].State)

	require.Eventually(t, func() bool { return standby.StandbyChecks() >= 10 }, waitFor, 5*time.Millisecond)
	require.Eventually(t, standby.RegistrationIdle, waitFor, 5*time.Millisecond)
	assert.Equal(t, 1, n.registrations(standby.ID()), "no registration while the owner is known")
	assert.Equal(t, "standby", standby.Containers()[0].State)
}

// A registration that keeps failing is reported at warning once, and its
// recovery once.
func TestFailingRegistrationIsReportedOnce(t *testing.T) {
	s := startStateServer(t)
	ctx := clienttest.Ctx(t)
	log, hook := logtest.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	host, err := client.Dial(s.r.Addr().String(), clienttest.Options()...)
	require.NoError(t, err)
	a, err := agent.New(agent.Options{Logger: log, ReclaimDelay: time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = a.Close(cctx)
		_ = host.Close(cctx)
	})
	require.NoError(t, a.AddStateless("ha", "leader-1", nil, newStatusEcho))
	require.NoError(t, a.Attach(ctx, host))
	require.Eventually(t, func() bool { return len(s.registrations()) >= 2 }, waitFor, 5*time.Millisecond)
	require.Eventually(t, a.RegistrationIdle, waitFor, 5*time.Millisecond)

	count := func(level logrus.Level, msg string) int {
		n := 0
		for _, e := range hook.AllEntries() {
			if e.Level == level && e.Message == msg {
				n++
			}
		}
		return n
	}
	s.failing.Store(true)
	for i := 0; i < 3; i++ {
		a.Refresh()
		require.Eventually(t, func() bool {
			return count(logrus.DebugLevel, "register agent")+count(logrus.WarnLevel, "register agent") > i
		},
			waitFor, 5*time.Millisecond)
		require.Eventually(t, a.RegistrationIdle, waitFor, 5*time.Millisecond)
	}
	assert.Equal(t, 1, count(logrus.WarnLevel, "register agent"), "a failure is said at warning once")
	assert.Equal(t, 2, count(logrus.DebugLevel, "register agent"))

	s.failing.Store(false)
	a.Refresh()
	require.Eventually(t, func() bool { return count(logrus.InfoLevel, "registered with the network again") == 1 },
		waitFor, 5*time.Millisecond, "the recovery is said once")
}
