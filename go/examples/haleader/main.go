// Command haleader is an example of a highly available container: two
// agents declare the same stateless container "leader". The first to
// register serves it; the other keeps it as a standby and takes over when
// the first goes away. The client holds one reference throughout and
// follows the container to its new agent.
//
//	go run ./cmd/hulyctl serve-echo --with-network   # or huly-network
//	go run ./examples/haleader
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/examples/internal/example"
	"github.com/huly-net/huly-net/go/network"
)

func main() { example.Main("haleader", run) }

const leaderUUID = "leader"

// leader answers "whoami" with the name of the node that runs it. Being
// stateless, it may run anywhere: whatever it must remember belongs in a
// store outside it.
type leader struct {
	agent.Broadcaster
	node string
}

func (l *leader) Request(_ context.Context, _ string, op string, _ json.RawMessage) (any, error) {
	if op != "whoami" {
		return nil, fmt.Errorf("unknown operation %s", op)
	}
	return l.node, nil
}

func (l *leader) Terminate(context.Context) error { return nil }
func (l *leader) Ping(context.Context) error      { return nil }

// node is one agent process: its session with the network and the agent
// that declares the leader.
type node struct {
	name  string
	c     *client.Client
	agent *agent.Agent
}

func startNode(ctx context.Context, addr, name string) (*node, error) {
	c, err := client.Dial(addr)
	if err != nil {
		return nil, err
	}
	a, err := agent.New(agent.Options{ID: name, Endpoint: "127.0.0.1:0", Listen: "127.0.0.1:0"})
	if err != nil {
		_ = c.Close(context.Background())
		return nil, err
	}
	n := &node{name: name, c: c, agent: a}
	factory := func(context.Context, string, network.GetOptions) (agent.Container, error) {
		return &leader{node: name}, nil
	}
	if err := a.AddStateless("leader", leaderUUID, nil, factory); err != nil {
		n.stop()
		return nil, err
	}
	if err := a.Attach(ctx, c); err != nil {
		n.stop()
		return nil, err
	}
	return n, nil
}

// stop ends the node as a shutdown would. A crash (kill -9) ends the
// same way, only later: the network drops an agent whose session falls
// silent after its alive timeout.
func (n *node) stop() {
	_ = n.agent.Close(context.Background())
	_ = n.c.Close(context.Background())
}

func run(ctx context.Context, addr string, out io.Writer) error {
	nodeA, err := startNode(ctx, addr, "node-a")
	if err != nil {
		return err
	}
	defer nodeA.stop()
	// Registered second, node-b is the standby.
	nodeB, err := startNode(ctx, addr, "node-b")
	if err != nil {
		return err
	}
	defer nodeB.stop()

	c, err := client.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	// Subscribe before the failover, so that its event is not missed.
	events := c.Events()
	ref, err := c.Get(ctx, "leader", client.GetOptions{UUID: leaderUUID})
	if err != nil {
		return err
	}
	who, err := client.Call[string](ctx, ref, "whoami")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "leader runs on %s\n", who)

	fmt.Fprintf(out, "%s stops\n", who)
	nodeA.stop()

	// The network announces the leader again once node-b has claimed it;
	// requests sent before then fail, and would be retried.
	if err := waitForOwner(ctx, events, nodeB.name); err != nil {
		return err
	}
	who, err = client.Call[string](ctx, ref, "whoami")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "leader runs on %s, same uuid: %v\n", who, ref.UUID() == leaderUUID)
	return nil
}

// waitForOwner waits for a network event that adds the leader on agent.
func waitForOwner(ctx context.Context, events <-chan network.Event, agentID string) error {
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return errors.New("client closed")
			}
			for _, ce := range ev.Containers {
				if ce.Container.UUID == leaderUUID && ce.Event != network.EventRemoved && string(ce.Container.AgentID) == agentID {
					return nil
				}
			}
		case <-ctx.Done():
			return fmt.Errorf("no failover to %s: %w", agentID, ctx.Err())
		}
	}
}
