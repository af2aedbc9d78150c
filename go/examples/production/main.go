// Command production is an example of a production layout: three agents,
// as on three hosts, each with a stable id, its own endpoint and a label
// naming its node, all offering kind "worker". The network spreads new
// containers over them round-robin; clients reach a container through the
// network (routed) or over a connection to its agent.
//
// In a real deployment each agent is a huly-agent daemon (or a program
// built on package agent) on its own host, with an endpoint address the
// clients can reach; here they share this process and 127.0.0.1.
//
//	go run ./cmd/hulyctl serve-echo --with-network   # or huly-network
//	go run ./examples/production
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/examples/internal/example"
	"github.com/huly-net/huly-net/go/network"
)

func main() { example.Main("production", run) }

// worker answers "where" with the node it runs on.
type worker struct {
	agent.Broadcaster
	node string
}

func (w *worker) Request(_ context.Context, _ string, op string, _ json.RawMessage) (any, error) {
	if op != "where" {
		return nil, fmt.Errorf("unknown operation %s", op)
	}
	return w.node, nil
}

func (w *worker) Terminate(context.Context) error { return nil }
func (w *worker) Ping(context.Context) error      { return nil }

// logger: warnings and errors only, to stderr. A daemon would log at info
// (package internal/logsetup picks the journal format under systemd).
func logger() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(os.Stderr)
	l.SetLevel(logrus.WarnLevel)
	return l
}

// startAgent runs one node's agent on a session of its own.
func startAgent(ctx context.Context, addr, node string) (stop func(), err error) {
	log := logger().WithField("node", node)
	c, err := client.Dial(addr, client.WithLogger(log))
	if err != nil {
		return nil, err
	}
	a, err := agent.New(agent.Options{
		ID:       "agent-" + node, // stable: a restarted agent is the same agent
		Endpoint: "127.0.0.1:0",   // a reachable HOST:PORT in production
		Listen:   "127.0.0.1:0",
		Labels:   []string{"node=" + node},
		Logger:   log,
	})
	if err != nil {
		_ = c.Close(context.Background())
		return nil, err
	}
	stop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.Close(ctx) // terminates the containers, unregisters
		_ = c.Close(ctx)
	}
	a.Register("worker", func(context.Context, string, network.GetOptions) (agent.Container, error) {
		return &worker{node: node}, nil
	})
	if err := a.Attach(ctx, c); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

func run(ctx context.Context, addr string, out io.Writer) error {
	for _, node := range []string{"node-1", "node-2", "node-3"} {
		stop, err := startAgent(ctx, addr, node)
		if err != nil {
			return fmt.Errorf("%s: %w", node, err)
		}
		defer stop()
	}

	c, err := client.Dial(addr, client.WithLogger(logger()))
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Close(ctx)
	}()
	if err := c.WaitConnected(ctx); err != nil {
		return err
	}

	agents, err := c.Agents(ctx)
	if err != nil {
		return err
	}
	var ids []string
	for _, ag := range agents {
		if slices.Contains(ag.Kinds, "worker") { // the network may serve others too
			ids = append(ids, string(ag.AgentID))
		}
	}
	sort.Strings(ids)
	fmt.Fprintf(out, "%d agents offer worker: %s\n", len(ids), strings.Join(ids, ", "))

	// Six jobs, one container each: two per node.
	perNode := map[string]int{}
	var refs []*client.ContainerRef
	for i := 1; i <= 6; i++ {
		ref, err := c.Get(ctx, "worker", client.GetOptions{UUID: network.ContainerUUID(fmt.Sprintf("job-%d", i))})
		if err != nil {
			return err
		}
		refs = append(refs, ref)
		node, err := client.Call[string](ctx, ref, "where")
		if err != nil {
			return err
		}
		perNode[node]++
	}
	fmt.Fprintf(out, "jobs per node: node-1 %d, node-2 %d, node-3 %d\n", perNode["node-1"], perNode["node-2"], perNode["node-3"])

	// A connection goes to the agent that runs the container, not through
	// the network: the path for chatty clients.
	conn, err := refs[0].Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	routed, err := client.Call[string](ctx, refs[0], "where")
	if err != nil {
		return err
	}
	direct, err := client.Call[string](ctx, conn, "where")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "job-1 routed and over a connection: same node: %v\n", routed == direct)

	// Releasing a reference lets the network terminate the container once
	// nobody holds it (after its unused timeout).
	for _, r := range refs {
		if err := r.Release(ctx); err != nil && !errors.Is(err, client.ErrReleased) {
			return err
		}
	}
	fmt.Fprintln(out, "released 6 jobs")
	return nil
}
