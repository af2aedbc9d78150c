// Package server joins the network core (package network) to the wire
// (package backrpc): it is the method table of the network server (ar au al
// ak cl gg cr cs, PROTOCOL.md §4), the back-requests to agents (gg cl cs ct,
// §5), client liveness, and the periodic check that expires agents and
// orphans and broadcasts the merged events.
package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/network"
	"github.com/huly-net/huly-net/go/transport"
)

// Options configure a Server. Zero values take the reference's defaults.
type Options struct {
	AliveTimeout time.Duration // 3s
	// MaxAliveTimeout caps the alive timeout a client's hello may ask
	// for (backrpc.DefaultMaxAliveTimeout).
	MaxAliveTimeout time.Duration
	// MaxClientIDLen bounds a hello's client id in bytes
	// (backrpc.DefaultMaxClientIDLen).
	MaxClientIDLen int
	// MaxDetachedSessions bounds the sessions kept for disconnected
	// clients (backrpc.DefaultMaxDetachedSessions).
	MaxDetachedSessions int
	UnusedTimeout       time.Duration // 5s
	PingInterval        time.Duration // 1s
	// CheckInterval is how often agents and orphans are checked and events
	// are broadcast. Default: half the ping interval. (The reference checks
	// once per alive timeout, which delays failover by up to that much.)
	CheckInterval time.Duration
	MaxInflight   int // 1024
	// MaxServerInflight bounds the requests in flight over all clients;
	// beyond it requests are answered retry
	// (backrpc.DefaultMaxServerInflight).
	MaxServerInflight int
	// MaxSubscriptions bounds the kinds and uuids a client may watch, and
	// the failed gets it is kept interested in
	// (network.DefaultMaxSubscriptions).
	MaxSubscriptions int
	// CallTimeout bounds one back-request to an agent. Default 30s.
	CallTimeout time.Duration
	Transport   transport.Options
	Clock       network.Clock
	Logger      logrus.FieldLogger
	// KindLimits bound containers and routed requests per kind.
	KindLimits network.KindLimits
	// Security, when set, turns security on (security.go).
	Security *Security
}

func (o Options) withDefaults() Options {
	if o.AliveTimeout <= 0 {
		o.AliveTimeout = 3 * time.Second
	}
	if o.UnusedTimeout <= 0 {
		o.UnusedTimeout = 5 * time.Second
	}
	if o.PingInterval <= 0 {
		o.PingInterval = time.Second
	}
	if o.CheckInterval <= 0 {
		o.CheckInterval = o.PingInterval / 2
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = logrus.StandardLogger()
	}
	return o
}

// Stats is what the daemon reports in STATUS= and metrics.
type Stats struct {
	Network network.Stats
	RPC     backrpc.ServerStats
	// Interest counts interest delivery; Overload the server-wide bound
	// on requests in flight.
	Interest       network.InterestStats
	Overload       backrpc.OverloadStats
	RefusedWatches uint64
}

// Server is a network server: bind it with Listen or Serve, then Run it.
type Server struct {
	opts Options
	log  logrus.FieldLogger
	rpc  *backrpc.Server
	net  *network.Network

	// terminations in flight (back-request ct to agents), owned by Run:
	// it cancels them and waits for them when it returns.
	termCtx    context.Context
	termCancel context.CancelFunc
	termWG     sync.WaitGroup

	// kick asks Run for a check now (a failover queued events).
	kick chan struct{}

	refusedWatches atomic.Uint64
	sec            *security // nil: security off
}

// New creates a server; nothing is bound yet.
func New(opts Options) *Server {
	opts = opts.withDefaults()
	s := &Server{opts: opts, log: opts.Logger, kick: make(chan struct{}, 1)}
	s.termCtx, s.termCancel = context.WithCancel(context.Background())
	if opts.Security != nil {
		s.sec = newSecurity(s, opts.Security)
		opts.Transport = s.sec.transportOptions(opts.Transport)
	}
	s.net = network.New(network.Options{
		Clock:         opts.Clock,
		AliveTimeout:  opts.AliveTimeout,
		UnusedTimeout: opts.UnusedTimeout,
		Caller:        caller{s},
		Arrivals:      func() uint64 { return s.rpc.Arrivals() },
		Logger:        opts.Logger,
		Limits:        opts.KindLimits,
	})
	s.net.SetMaxSubscriptions(opts.MaxSubscriptions)
	s.rpc = backrpc.NewServer(backrpc.ServerOptions{
		AliveTimeout:        opts.AliveTimeout,
		MaxAliveTimeout:     opts.MaxAliveTimeout,
		MaxClientIDLen:      opts.MaxClientIDLen,
		MaxDetachedSessions: opts.MaxDetachedSessions,
		// Events go by interest to clients that announce it (interest.go).
		MaxServerInflight: opts.MaxServerInflight,
		PingInterval:      opts.PingInterval,
		MaxInflight:       opts.MaxInflight,
		Transport:         opts.Transport,
		Logger:            opts.Logger,
		Capabilities:      capabilities,
	}, backrpc.ServerHandler{
		HandleRequest:       s.handle,
		HandleRequestAsync:  s.handleAsync,
		OnClientConnected:   s.clientConnected,
		OnClientReconnected: s.clientConnected,
		OnClientDisconnected: func(c backrpc.ClientInfo) {
			if s.net.ClientDisconnected(network.ClientID(c.ID)) {
				s.checkSoon()
			}
		},
		OnClientClosed:  s.clientGone,
		OnClientTimeout: s.clientGone,
		OnPing:          func(c backrpc.ClientInfo) { s.net.ClientSeen(network.ClientID(c.ID)) },
	})
	return s
}

func (s *Server) clientGone(c backrpc.ClientInfo) {
	s.net.ClientGone(network.ClientID(c.ID))
	s.net.DropInterest(network.ClientID(c.ID))
}

func (s *Server) clientConnected(c backrpc.ClientInfo) {
	id := network.ClientID(c.ID)
	s.net.SetInterest(id, c.Hello.Has(backrpc.CapInterest))
	s.net.ClientConnected(id)
	s.net.ClientSeen(id)
	s.net.SetClientAliveTimeout(id, c.AliveTimeout)
}

// checkSoon asks Run for a check now, so the events of a failover go out
// without waiting for the check period.
func (s *Server) checkSoon() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Client returns the session of a client id, with what its hello announced.
func (s *Server) Client(clientID string) (backrpc.ClientInfo, bool) { return s.rpc.Client(clientID) }

// Listen binds addr ("tcp://HOST:PORT").
func (s *Server) Listen(addr string) error { return s.rpc.Listen(addr) }

// Serve serves an existing listener (socket activation).
func (s *Server) Serve(ln net.Listener) error { return s.rpc.Serve(ln) }

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.rpc.Addr() }

// ID is the server id sent in hello answers.
func (s *Server) ID() string { return s.rpc.ID() }

// Network exposes the core, read-only use (status, tests).
func (s *Server) Network() *network.Network { return s.net }

// Stats returns the current counts.
func (s *Server) Stats() Stats {
	return Stats{
		Network: s.net.Stats(), RPC: s.rpc.Stats(),
		Interest: s.net.InterestStats(), Overload: s.rpc.Overload(), RefusedWatches: s.refusedWatches.Load(),
	}
}

// Run performs the periodic check until ctx ends, then shuts the server
// down (bounded by shutdownTimeout) and returns.
func (s *Server) Run(ctx context.Context, shutdownTimeout time.Duration) error {
	t := time.NewTicker(s.opts.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			s.termCancel()
			s.termWG.Wait()
			return s.rpc.Shutdown(sctx)
		case <-t.C:
			s.Check(ctx)
		case <-s.kick:
			s.Check(ctx)
		}
	}
}

// Check runs one periodic check and broadcasts its events at once; the
// containers it found unused are terminated in the background, one
// goroutine per agent, so that an agent slow to answer ct holds back neither
// the events nor the next check (the reference sends the removal with the
// ct, not after its answer).
func (s *Server) Check(ctx context.Context) {
	d, terms := s.net.SweepDelivery()
	if !d.Event.Empty() && s.sec != nil {
		// Security filters the whole batch per key (security.go).
		s.sec.broadcast(d.Event)
	} else if !d.Event.Empty() {
		s.deliver(d)
	}
	if len(terms) == 0 {
		return
	}
	byAgent := map[network.AgentTarget][]network.Termination{}
	var order []network.AgentTarget
	for _, t := range terms {
		if _, ok := byAgent[t.To]; !ok {
			order = append(order, t.To)
		}
		byAgent[t.To] = append(byAgent[t.To], t)
	}
	for _, to := range order {
		batch := byAgent[to]
		s.termWG.Add(1)
		go func() {
			defer s.termWG.Done()
			s.net.Terminate(s.termCtx, batch)
		}()
	}
}

// Close stops the server at once.
func (s *Server) Close() error {
	s.termCancel()
	err := s.rpc.Close()
	s.termWG.Wait()
	return err
}

// ---- the method table (PROTOCOL.md §4) ----

// errUnknownMethod keeps the reference's text shape ("Unknown method" and
// the name), with a space the reference forgot.
type errUnknownMethod string

func (e errUnknownMethod) Error() string { return "Unknown method " + string(e) }

func (s *Server) handle(ctx context.Context, c backrpc.ClientInfo, method string, params json.RawMessage) (any, error) {
	if s.sec != nil {
		if res, err, done := s.sec.handle(ctx, c, method, params); done {
			return res, err
		}
	}
	client := network.ClientID(c.ID)
	s.net.ClientSeen(client)
	switch method {
	case "ar":
		reg, err := network.DecodeRegistration(params)
		if err != nil {
			return nil, fmt.Errorf("ar: %w", err)
		}
		arrived, ok := backrpc.ArrivalFromContext(ctx)
		if !ok {
			arrived = ^uint64(0)
		}
		term, err := s.net.RegisterAgentArrived(client, reg, arrived)
		if err != nil {
			return nil, err
		}
		return nonNil(term), nil
	case "au":
		id, err := network.DecodeUUIDParams(params)
		if err != nil {
			return nil, fmt.Errorf("au: %w", err)
		}
		if err := s.net.UnregisterAgent(client, network.AgentID(id)); err != nil {
			return nil, err
		}
		return "ok", nil
	case "al":
		return nonNil(s.net.Agents()), nil
	case "ak":
		return nonNil(s.net.Kinds()), nil
	case "cl":
		kind, err := network.DecodeListParams(params)
		if err != nil {
			return nil, fmt.Errorf("cl: %w", err)
		}
		return nonNil(s.net.Containers(kind)), nil
	case "gg":
		p, err := network.DecodeGetParams(params)
		if err != nil {
			return nil, fmt.Errorf("gg: %w", err)
		}
		uuid, ref, err := s.net.Get(ctx, client, p.Kind, p.Request)
		s.noteGet(c, p, err)
		if err != nil {
			return nil, err
		}
		return getAnswer(uuid, ref), nil
	case "cr":
		uuid, err := network.DecodeUUIDParams(params)
		if err != nil {
			return nil, fmt.Errorf("cr: %w", err)
		}
		s.net.Release(client, network.ContainerUUID(uuid))
		return "ok", nil
	case "cs":
		uuid, op, data, err := network.DecodeRouteParams(params)
		if err != nil {
			return nil, err
		}
		return s.net.Route(ctx, uuid, op, data)
	}
	if res, ok, err := s.handleInterestExtension(c, method, params); ok {
		return res, err
	}
	if res, ok, err := s.handleExtension(ctx, c, method, params); ok {
		return res, err
	}
	return nil, errUnknownMethod(method)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// ---- back-requests to the client that hosts an agent (PROTOCOL.md §5) ----

type caller struct{ s *Server }

// call sends a back-request and turns the reference's "normal response
// carrying an error" ({"error": "Agent X not found"}) into an error.
func (c caller) call(ctx context.Context, to network.AgentTarget, method string, args any) (json.RawMessage, error) {
	a, err := backrpc.MarshalJSON(args)
	if err != nil {
		return nil, fmt.Errorf("%s to agent %s: encode params: %w", method, to.Agent, err)
	}
	// [agentId, args], written out: the reflection encoder of []any was a
	// twentieth of the server's CPU on routed requests.
	params := make([]byte, 0, len(to.Agent)+len(a)+5)
	params = append(params, '[')
	params = backrpc.AppendJSONString(params, string(to.Agent))
	params = append(params, ',')
	params = append(params, a...)
	params = append(params, ']')

	ctx, cancel := context.WithTimeout(ctx, c.s.opts.CallTimeout)
	defer cancel()
	res, err := c.s.rpc.Call(ctx, string(to.Client), method, json.RawMessage(params))
	if err != nil {
		return nil, fmt.Errorf("%s to agent %s: %w", method, to.Agent, err)
	}
	var maybeErr struct {
		Error *string `json:"error"`
	}
	// Most answers are objects (every echo is one): decode only those
	// that can carry the error key.
	if len(res) > 0 && res[0] == '{' && bytes.Contains(res, errorKey) && json.Unmarshal(res, &maybeErr) == nil && maybeErr.Error != nil {
		return nil, fmt.Errorf("%s to agent %s: %s", method, to.Agent, *maybeErr.Error)
	}
	return res, nil
}

var errorKey = []byte(`"error"`)

func (c caller) GetContainer(ctx context.Context, to network.AgentTarget, kind string, opts network.GetOptions) (network.ContainerUUID, string, error) {
	res, err := c.call(ctx, to, "gg", []any{kind, opts})
	if err != nil {
		return "", "", err
	}
	uuid, ref, ok := splitGetAnswer(res)
	if !ok {
		return "", "", fmt.Errorf("gg to agent %s: want [uuid, ref], got %s", to.Agent, truncate(res))
	}
	return network.ContainerUUID(uuid), ref, nil
}

func (c caller) TerminateContainer(ctx context.Context, to network.AgentTarget, uuid network.ContainerUUID) error {
	_, err := c.call(ctx, to, "ct", []any{uuid})
	return err
}

func (c caller) ContainerRequest(ctx context.Context, to network.AgentTarget, uuid network.ContainerUUID, op string, data json.RawMessage) (json.RawMessage, error) {
	// [uuid, op, data] as encoding/json would write it, data as it came
	// (it was validated with the client's request).
	args := make([]byte, 0, len(uuid)+len(op)+len(data)+8)
	args = append(args, '[')
	args = backrpc.AppendJSONString(args, string(uuid))
	args = append(args, ',')
	args = backrpc.AppendJSONString(args, op)
	args = append(args, ',')
	if len(data) == 0 {
		args = append(args, "null"...)
	} else {
		args = append(args, data...)
	}
	args = append(args, ']')
	return c.call(ctx, to, "cs", json.RawMessage(args))
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}
