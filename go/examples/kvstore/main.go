// Command kvstore is an example of a stateful container: a key-value store
// that an agent serves and a client uses with typed calls (client.Call, the
// Go counterpart of the TypeScript cast proxy).
//
// The agent and the client run in this one process for brevity; in
// production they are separate programs, often on separate hosts. Any
// network will do:
//
//	go run ./cmd/hulyctl serve-echo --with-network   # or huly-network
//	go run ./examples/kvstore
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/examples/internal/example"
	"github.com/huly-net/huly-net/go/network"
)

func main() { example.Main("kvstore", run) }

// store is the container: one per uuid, so every uuid is its own store.
// Operations take their arguments as a JSON array, as client.Call sends
// them: KV.put [key, value], KV.get [key], KV.delete [key], KV.list [].
type store struct {
	agent.Broadcaster // Connect and Disconnect: nobody listens here

	mu   sync.Mutex
	data map[string]json.RawMessage
}

func newStore(context.Context, string, network.GetOptions) (agent.Container, error) {
	return &store{data: map[string]json.RawMessage{}}, nil
}

func (s *store) Request(_ context.Context, _ string, op string, data json.RawMessage) (any, error) {
	var args []json.RawMessage
	if err := json.Unmarshal(data, &args); err != nil {
		return nil, fmt.Errorf("%s: arguments must be an array", op)
	}
	key := ""
	if len(args) > 0 {
		if err := json.Unmarshal(args[0], &key); err != nil {
			return nil, fmt.Errorf("%s: the key must be a string", op)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch op {
	case "KV.put":
		if len(args) != 2 {
			return nil, errors.New("KV.put: want [key, value]")
		}
		s.data[key] = args[1]
		return true, nil
	case "KV.get":
		v, ok := s.data[key]
		if !ok {
			return nil, fmt.Errorf("no key %q", key)
		}
		return v, nil
	case "KV.delete":
		_, ok := s.data[key]
		delete(s.data, key)
		return ok, nil
	case "KV.list":
		keys := make([]string, 0, len(s.data))
		for k := range s.data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return keys, nil
	}
	return nil, fmt.Errorf("unknown operation %s", op)
}

func (s *store) Terminate(context.Context) error { return nil }
func (s *store) Ping(context.Context) error      { return nil }

func run(ctx context.Context, addr string, out io.Writer) error {
	// The agent side: offer kind "kv".
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
	a.Register("kv", newStore)
	if err := a.Attach(ctx, host); err != nil {
		return err
	}

	// The client side: one store, reached by its uuid.
	c, err := client.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	kv, err := c.Get(ctx, "kv", client.GetOptions{UUID: "kv-example"})
	if err != nil {
		return err
	}

	for _, p := range []struct {
		key   string
		value any
	}{{"greeting", "hello"}, {"answer", 42}, {"config", map[string]bool{"debug": true}}} {
		if _, err := client.Call[bool](ctx, kv, "KV.put", p.key, p.value); err != nil {
			return err
		}
		fmt.Fprintf(out, "put %s\n", p.key)
	}
	greeting, err := client.Call[string](ctx, kv, "KV.get", "greeting")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "get greeting: %s\n", greeting)
	answer, err := client.Call[int](ctx, kv, "KV.get", "answer")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "get answer: %d\n", answer)

	keys, err := client.Call[[]string](ctx, kv, "KV.list")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "list: %v\n", keys)

	deleted, err := client.Call[bool](ctx, kv, "KV.delete", "answer")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "delete answer: %v\n", deleted)

	// A container's error comes back as a *client.RemoteError.
	_, err = client.Call[int](ctx, kv, "KV.get", "answer")
	var remote *client.RemoteError
	if !errors.As(err, &remote) {
		return fmt.Errorf("want a remote error for a deleted key, got %v", err)
	}
	fmt.Fprintf(out, "get answer: error %q\n", remote.Message)

	keys, err = client.Call[[]string](ctx, kv, "KV.list")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "list: %v\n", keys)
	return nil
}
