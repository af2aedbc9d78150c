// Command multitenant is an example of containers chosen by label: each
// tenant gets its own workspace container, and every user of a tenant who
// asks for a workspace with that tenant's label lands in the same one,
// without knowing its uuid.
//
//	go run ./cmd/hulyctl serve-echo --with-network   # or huly-network
//	go run ./examples/multitenant
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/examples/internal/example"
	"github.com/huly-net/huly-net/go/network"
)

func main() { example.Main("multitenant", run) }

// workspace is one tenant's container. The labels of the get that started
// it are its identity: the agent hands it to later gets whose labels it
// carries.
type workspace struct {
	agent.Broadcaster
	tenant string

	mu     sync.Mutex
	visits int
}

func newWorkspace(_ context.Context, _ string, opts network.GetOptions) (agent.Container, error) {
	w := &workspace{}
	for _, l := range opts.Labels {
		if t, ok := strings.CutPrefix(l, "tenant="); ok {
			w.tenant = t
		}
	}
	if w.tenant == "" {
		return nil, errors.New("a workspace needs a tenant=NAME label")
	}
	return w, nil
}

func (w *workspace) Request(_ context.Context, _ string, op string, _ json.RawMessage) (any, error) {
	if op != "visit" {
		return nil, fmt.Errorf("unknown operation %s", op)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.visits++
	return map[string]any{"tenant": w.tenant, "visits": w.visits}, nil
}

func (w *workspace) Terminate(context.Context) error { return nil }
func (w *workspace) Ping(context.Context) error      { return nil }

type visit struct {
	Tenant string `json:"tenant"`
	Visits int    `json:"visits"`
}

func run(ctx context.Context, addr string, out io.Writer) error {
	host, err := client.Dial(addr)
	if err != nil {
		return err
	}
	defer host.Close(context.Background())
	a, err := agent.New(agent.Options{Endpoint: "127.0.0.1:0", Listen: "127.0.0.1:0"})
	if err != nil {
		return err
	}
	defer a.Close(context.Background())
	a.Register("workspace", newWorkspace)
	if err := a.Attach(ctx, host); err != nil {
		return err
	}

	// Three users, each with a session of its own, as three browsers would.
	users := []struct{ name, tenant string }{
		{"ann", "acme"}, {"bob", "globex"}, {"cid", "acme"},
	}
	workspaceOf := map[string]string{}
	for _, u := range users {
		c, err := client.Dial(addr)
		if err != nil {
			return err
		}
		defer c.Close(context.Background())
		ws, err := c.Get(ctx, "workspace", client.GetOptions{Labels: []string{"tenant=" + u.tenant}})
		if err != nil {
			return err
		}
		v, err := client.Call[visit](ctx, ws, "visit")
		if err != nil {
			return err
		}
		workspaceOf[u.name] = ws.UUID()
		fmt.Fprintf(out, "%s (%s) is in the %s workspace, visit %d\n", u.name, u.tenant, v.Tenant, v.Visits)
	}
	fmt.Fprintf(out, "ann and cid share a workspace: %v\n", workspaceOf["ann"] == workspaceOf["cid"])
	fmt.Fprintf(out, "bob's is another: %v\n", workspaceOf["bob"] != workspaceOf["ann"])

	// The network lists them with their labels.
	recs, err := host.List(ctx, "workspace")
	if err != nil {
		return err
	}
	var labels []string
	for _, r := range recs {
		labels = append(labels, strings.Join(r.Labels, ","))
	}
	sort.Strings(labels)
	fmt.Fprintf(out, "workspaces: %s\n", strings.Join(labels, " "))
	return nil
}
