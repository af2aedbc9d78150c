package runtime

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/transport"
)

// Proxy is the agent's side of a container program's direct endpoint:
// requests routed through the agent (cs) are forwarded to the program over
// one session, the program's events are relayed to the clients connected
// through the agent, and DirectEndpoint makes the agent hand out a direct
// reference (kind 1) so that clients that Connect talk to the program
// itself.
type Proxy struct {
	agent.Broadcaster
	rpc  *backrpc.Client
	host string
	port int
}

// NewProxy opens a session with the endpoint at dial ("HOST:PORT"), which
// clients reach at advHost:advPort. The session reconnects by itself, so
// the program may restart behind it on the same address.
func NewProxy(dial, advHost string, advPort int, log logrus.FieldLogger) (*Proxy, error) {
	return NewProxyWith(dial, advHost, advPort, log, transport.DealerOptions{})
}

// NewProxyWith is NewProxy with transport options (the CURVE keys of a
// secured program's endpoint).
func NewProxyWith(dial, advHost string, advPort int, log logrus.FieldLogger, topts transport.DealerOptions) (*Proxy, error) {
	p := &Proxy{host: advHost, port: advPort}
	// Announcing streams makes the program's endpoint announce its own.
	rpc, err := backrpc.Dial(dial, backrpc.ClientOptions{Logger: log, Capabilities: []string{backrpc.CapStream}, Transport: topts}, backrpc.ClientHandler{
		OnEvent: func(payload json.RawMessage) { p.Broadcast(payload) },
	})
	if err != nil {
		return nil, fmt.Errorf("connect to container endpoint %s: %w", dial, err)
	}
	p.rpc = rpc
	return p, nil
}

// Request forwards op(data) to the program; while the program restarts
// the request waits for it, within ctx.
func (p *Proxy) Request(ctx context.Context, _ string, op string, data json.RawMessage) (any, error) {
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	res, err := p.rpc.Request(ctx, op, data)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// DirectEndpoint is where clients reach the program.
func (p *Proxy) DirectEndpoint() (string, int) { return p.host, p.port }

// WaitConnected waits for the session with the program.
func (p *Proxy) WaitConnected(ctx context.Context) error {
	if err := p.rpc.WaitConnected(ctx); err != nil {
		return fmt.Errorf("container endpoint %s: %w", p.rpc.Addr(), err)
	}
	return nil
}

// Close ends the session.
func (p *Proxy) Close(ctx context.Context) error {
	return p.rpc.Close(ctx)
}

// ContainerStatus makes a Status an agent.StatusReporter.
func (s *Status) ContainerStatus() agent.ContainerStatus {
	f, down := s.Report()
	return agent.ContainerStatus{Fields: f, Down: down}
}
