package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/network"
)

// Connection is an open connection to a container, made by
// ContainerRef.Connect. For a container served by its agent (a routed
// endpoint) it goes through the agent's endpoint server, one session per
// agent endpoint shared by every connection of the client (cc, then cs per
// request); for a container with its own endpoint (direct) it is a session
// with that server, where the method is the operation. A container on an
// agent without an endpoint (noconnect) is reached through the network and
// sends no events. The connection follows its reference: when the
// container moves, it reconnects.
type Connection struct {
	c      *Client
	ref    *ContainerRef
	events *queue[json.RawMessage]
	stop   context.CancelFunc // ends the event loop

	retargetMu sync.Mutex // one re-target at a time

	mu     sync.Mutex
	closed bool
	target target
}

type target struct {
	kind     network.RefKind
	uuid     string
	endpoint string
	agent    *agentConn      // routed
	direct   *backrpc.Client // direct
}

func (t target) valid() bool { return t.uuid != "" }

// Connect opens a connection to the container (PROTOCOL.md §6). ctx bounds
// the connection and, for a routed container, the cc answer.
func (r *ContainerRef) Connect(ctx context.Context) (*Connection, error) {
	c := r.c
	ectx, stop := context.WithCancel(c.ctx)
	conn := &Connection{c: c, ref: r, events: newQueue[json.RawMessage](c.opts.eventBuffer), stop: stop}

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		stop()
		return nil, ErrClosed
	}
	c.conns[conn] = struct{}{}
	c.mu.Unlock()
	r.mu.Lock()
	if r.released {
		r.mu.Unlock()
		conn.forget()
		stop()
		return nil, ErrReleased
	}
	r.conns[conn] = struct{}{}
	r.mu.Unlock()

	if !c.goWorker(func() { conn.events.run(ectx) }) {
		conn.forget()
		stop()
		return nil, ErrClosed
	}
	if err := conn.retarget(ctx); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("connect to %s: %w", r.UUID(), err)
	}
	return conn, nil
}

// UUID is the uuid of the container the connection talks to now.
func (conn *Connection) UUID() string {
	conn.mu.Lock()
	defer conn.mu.Unlock()
	return conn.target.uuid
}

// Request sends op(data) to the container and waits for its answer.
func (conn *Connection) Request(ctx context.Context, op string, data any) (json.RawMessage, error) {
	conn.mu.Lock()
	t, closed := conn.target, conn.closed
	conn.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("request %s: %w", op, ErrClosed)
	}
	var res json.RawMessage
	var err error
	switch {
	case t.agent != nil:
		var params json.RawMessage
		if params, err = routeParams(t.uuid, op, data); err == nil {
			res, err = t.agent.rpc.Request(ctx, "cs", params)
		}
	case t.direct != nil:
		var raw json.RawMessage
		if raw, err = encodeData(data); err == nil {
			res, err = t.direct.Request(ctx, op, raw)
		}
	default:
		return conn.c.Request(ctx, t.uuid, op, data)
	}
	if err != nil {
		return nil, fmt.Errorf("request %s on %s: %w", op, t.uuid, err)
	}
	return res, nil
}

// OnEvent calls fn with every event of the container (its broadcast data),
// in order, on the connection's own goroutine. The returned function
// unsubscribes.
func (conn *Connection) OnEvent(fn func(json.RawMessage)) (unsubscribe func()) {
	return conn.events.subscribe(fn)
}

// Events returns a channel of the container's events that arrive from its
// first call on, closed when the connection closes; a full channel drops
// events.
func (conn *Connection) Events() <-chan json.RawMessage { return conn.events.channel() }

// Close closes the connection; it does not wait for the agent (cd is sent in
// the background, bounded by the close timeout). Closing twice is a no-op.
func (conn *Connection) Close() error {
	t, ok := conn.markClosed()
	if !ok {
		return nil
	}
	c := conn.c
	conn.forget()
	c.goWorker(func() {
		ctx, cancel := context.WithTimeout(c.ctx, c.opts.closeTimeout)
		defer cancel()
		conn.closeTarget(ctx, t, true)
	})
	return nil
}

// markClosed stops the event loop; it returns the target to tear down.
func (conn *Connection) markClosed() (target, bool) {
	conn.mu.Lock()
	defer conn.mu.Unlock()
	if conn.closed {
		return target{}, false
	}
	conn.closed = true
	t := conn.target
	conn.target = target{}
	conn.stop()
	return t, true
}

// closeLocal is Close during Client.Close: no network I/O for routed
// targets (the agent drops our subscriptions with our session), direct
// sessions closed within ctx.
func (conn *Connection) closeLocal(ctx context.Context) {
	t, ok := conn.markClosed()
	if !ok {
		return
	}
	conn.forget()
	conn.closeTarget(ctx, t, false)
}

func (conn *Connection) forget() {
	c, r := conn.c, conn.ref
	c.mu.Lock()
	delete(c.conns, conn)
	c.mu.Unlock()
	r.mu.Lock()
	delete(r.conns, conn)
	r.mu.Unlock()
}

// retarget connects to where the reference points now, then lets go of
// the previous target.
func (conn *Connection) retarget(ctx context.Context) error {
	conn.retargetMu.Lock()
	defer conn.retargetMu.Unlock()
	uuid, endpoint, released := conn.ref.current()
	if released {
		return ErrReleased
	}
	conn.mu.Lock()
	cur, closed := conn.target, conn.closed
	conn.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if cur.valid() && cur.uuid == uuid && cur.endpoint == endpoint {
		return nil
	}
	next, err := conn.open(ctx, uuid, endpoint)
	if err != nil {
		return err
	}
	conn.mu.Lock()
	if conn.closed {
		conn.mu.Unlock()
		conn.closeTarget(ctx, next, true)
		return ErrClosed
	}
	old := conn.target
	conn.target = next
	conn.mu.Unlock()
	if old.valid() {
		conn.closeTarget(ctx, old, true)
	}
	return nil
}

// resubscribe repeats cc on a routed connection's agent session.
func (conn *Connection) resubscribe(ctx context.Context) {
	conn.mu.Lock()
	t, closed := conn.target, conn.closed
	conn.mu.Unlock()
	if closed || t.agent == nil {
		return
	}
	if _, err := t.agent.rpc.Request(ctx, "cc", map[string]string{"uuid": t.uuid}); err != nil {
		conn.c.log.WithError(err).WithField("uuid", t.uuid).Debug("connect to container again")
	}
}

func hostPort(er network.EndpointRef) (string, error) {
	if er.Host == "" || er.Port <= 0 {
		return "", fmt.Errorf("endpoint has no host and port: %s", er.String())
	}
	return net.JoinHostPort(er.Host, strconv.Itoa(er.Port)), nil
}

func (conn *Connection) open(ctx context.Context, uuid, endpoint string) (target, error) {
	c := conn.c
	t := target{uuid: uuid, endpoint: endpoint, kind: network.RefNoConnect}
	if endpoint == "" {
		return t, nil // nothing better known: go through the network
	}
	er, err := network.ParseEndpointRef(endpoint)
	if err != nil {
		return target{}, err
	}
	t.kind = er.Kind
	switch er.Kind {
	case network.RefRouted:
		addr, err := hostPort(er)
		if err != nil {
			return target{}, err
		}
		ac, err := c.acquireAgentConn(addr)
		if err != nil {
			return target{}, err
		}
		ac.subscribe(uuid, conn)
		if _, err := ac.rpc.Request(ctx, "cc", map[string]string{"uuid": uuid}); err != nil {
			ac.unsubscribe(uuid, conn)
			c.releaseAgentConn(ctx, ac)
			return target{}, fmt.Errorf("cc %s at %s: %w", uuid, addr, err)
		}
		t.agent = ac
	case network.RefDirect:
		addr, err := hostPort(er)
		if err != nil {
			return target{}, err
		}
		d, err := backrpc.Dial(addr, c.endpointRPCOptions(addr), backrpc.ClientHandler{OnEvent: conn.events.push})
		if err != nil {
			return target{}, err
		}
		if err := d.WaitConnected(ctx); err != nil {
			_ = d.Close(ctx)
			return target{}, err
		}
		t.direct = d
	}
	return t, nil
}

// closeTarget lets go of a target; notify sends cd to the agent.
func (conn *Connection) closeTarget(ctx context.Context, t target, notify bool) {
	switch {
	case t.agent != nil:
		if last := t.agent.unsubscribe(t.uuid, conn); last && notify && t.agent.rpc.Connected() {
			_, _ = t.agent.rpc.Request(ctx, "cd", map[string]string{"uuid": t.uuid})
		}
		conn.c.releaseAgentConn(ctx, t.agent)
	case t.direct != nil:
		_ = t.direct.Close(ctx)
	}
}

// ---- shared sessions with agent endpoints ----

// agentConn is the client's one session with an agent's endpoint server,
// shared by its connections to containers of that agent.
type agentConn struct {
	key  string
	rpc  *backrpc.Client
	refs int // guarded by Client.mu

	mu   sync.Mutex
	subs map[string]map[*Connection]struct{} // by container uuid
}

func (c *Client) acquireAgentConn(addr string) (*agentConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if ac := c.agentConns[addr]; ac != nil {
		ac.refs++
		return ac, nil
	}
	ac := &agentConn{key: addr, refs: 1, subs: map[string]map[*Connection]struct{}{}}
	rpc, err := backrpc.Dial(addr, c.endpointRPCOptions(addr), backrpc.ClientHandler{
		OnEvent:         ac.onEvent,
		OnServerChanged: ac.resubscribe,
	})
	if err != nil {
		return nil, fmt.Errorf("agent endpoint %s: %w", addr, err)
	}
	ac.rpc = rpc
	c.agentConns[addr] = ac
	return ac, nil
}

func (c *Client) releaseAgentConn(ctx context.Context, ac *agentConn) {
	c.mu.Lock()
	ac.refs--
	last := ac.refs <= 0 && c.agentConns[ac.key] == ac
	if last {
		delete(c.agentConns, ac.key)
	}
	c.mu.Unlock()
	if last {
		_ = ac.rpc.Close(ctx)
	}
}

func (c *Client) closeAgentConns(ctx context.Context) {
	c.mu.Lock()
	acs := make([]*agentConn, 0, len(c.agentConns))
	for _, ac := range c.agentConns {
		acs = append(acs, ac)
	}
	c.agentConns = map[string]*agentConn{}
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, ac := range acs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = ac.rpc.Close(ctx)
		}()
	}
	wg.Wait()
}

func (ac *agentConn) subscribe(uuid string, conn *Connection) {
	ac.mu.Lock()
	defer ac.mu.Unlock()
	m := ac.subs[uuid]
	if m == nil {
		m = map[*Connection]struct{}{}
		ac.subs[uuid] = m
	}
	m[conn] = struct{}{}
}

// unsubscribe reports whether conn was the last subscriber of uuid.
func (ac *agentConn) unsubscribe(uuid string, conn *Connection) bool {
	ac.mu.Lock()
	defer ac.mu.Unlock()
	m := ac.subs[uuid]
	delete(m, conn)
	if len(m) == 0 {
		delete(ac.subs, uuid)
		return true
	}
	return false
}

// onEvent routes a container event, [uuid, data], to its connections.
func (ac *agentConn) onEvent(payload json.RawMessage) {
	var ev []json.RawMessage
	if err := json.Unmarshal(payload, &ev); err != nil || len(ev) < 1 {
		return
	}
	var uuid string
	if err := json.Unmarshal(ev[0], &uuid); err != nil {
		return
	}
	data := json.RawMessage("null")
	if len(ev) > 1 {
		data = ev[1]
	}
	ac.mu.Lock()
	conns := make([]*Connection, 0, len(ac.subs[uuid]))
	for conn := range ac.subs[uuid] {
		conns = append(conns, conn)
	}
	ac.mu.Unlock()
	for _, conn := range conns {
		conn.events.push(data)
	}
}

// resubscribe connects every subscribed container again after the agent's
// endpoint server changed (the agent restarted and forgot us).
func (ac *agentConn) resubscribe(ctx context.Context, _ string) {
	ac.mu.Lock()
	uuids := make([]string, 0, len(ac.subs))
	for u := range ac.subs {
		uuids = append(uuids, u)
	}
	ac.mu.Unlock()
	if len(uuids) == 0 {
		return
	}
	if _, err := ac.rpc.Request(ctx, "cc", map[string]any{"uuid": uuids}); err != nil && !errors.Is(err, backrpc.ErrClientClosed) {
		// One unknown uuid fails the batch: try them one by one.
		for _, u := range uuids {
			_, _ = ac.rpc.Request(ctx, "cc", map[string]string{"uuid": u})
		}
	}
}
