// Package builtin is huly-agent's builtin runtime: container kinds written
// in Go and compiled into the agent, served in its own process.
//
//	echo  every operation answers {"uuid","operation","data","clientId"};
//	      "broadcast" also sends its data to the connected clients
//	kv    a key-value store: store {"key","value"}, retrieve {"key"},
//	      delete {"key"}, list (keys, sorted); changes are broadcast as
//	      {"event":"stored"|"deleted","key"}
package builtin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/agent/runtime"
	"github.com/huly-net/huly-net/go/network"
)

// Names of the builtin kinds.
const (
	NameEcho = "echo"
	NameKV   = "kv"
)

// Names lists the builtin implementations, for configuration errors.
var Names = []string{NameEcho, NameKV}

// Lookup returns the constructor of a builtin implementation.
func Lookup(name string) (func(uuid string) agent.Container, bool) {
	switch name {
	case NameEcho:
		return func(uuid string) agent.Container {
			c, _ := agent.NewEcho(context.Background(), uuid, network.GetOptions{})
			return c
		}, true
	case NameKV:
		return func(string) agent.Container { return NewKV() }, true
	}
	return nil, false
}

// Options configure the builtin runtime of one kind.
type Options struct {
	Spec runtime.Spec
	// Builtin names the implementation (echo, kv).
	Builtin  string
	Registry *runtime.Registry
}

// Factory returns the agent.Factory of a builtin kind.
func Factory(opts Options) (agent.Factory, error) {
	mk, ok := Lookup(opts.Builtin)
	if !ok {
		return nil, fmt.Errorf("kind %s: unknown builtin %q (have %v)", opts.Spec.Kind, opts.Builtin, Names)
	}
	reg := opts.Registry
	if reg == nil {
		reg = &runtime.Registry{}
	}
	spec := opts.Spec
	return func(_ context.Context, uuid string, _ network.GetOptions) (agent.Container, error) {
		st := runtime.NewStatus(uuid, spec.Kind, runtime.Builtin, spec.IsPinned(uuid))
		if err := reg.Add(st, spec.MaxInstances); err != nil {
			return nil, err
		}
		st.Set(runtime.Running)
		return &container{Container: mk(uuid), Status: st, reg: reg}, nil
	}, nil
}

// container adds the life cycle to a builtin implementation.
type container struct {
	agent.Container
	*runtime.Status
	reg *runtime.Registry
}

func (c *container) Terminate(ctx context.Context) error {
	c.Set(runtime.Stopping)
	err := c.Container.Terminate(ctx)
	c.Set(runtime.Stopped)
	c.reg.Remove(c.Status)
	return err
}

// KV is the key-value store container.
type KV struct {
	agent.Broadcaster
	mu   sync.Mutex
	data map[string]json.RawMessage
}

// NewKV returns an empty store.
func NewKV() *KV { return &KV{data: map[string]json.RawMessage{}} }

type kvArgs struct {
	Key   *string         `json:"key"`
	Value json.RawMessage `json:"value"`
}

// Request runs store, retrieve, delete or list.
func (k *KV) Request(_ context.Context, _ string, op string, data json.RawMessage) (any, error) {
	var a kvArgs
	if op != "list" {
		if err := json.Unmarshal(data, &a); err != nil || a.Key == nil {
			return nil, fmt.Errorf("kv %s: data must be {\"key\": string, ...}", op)
		}
	}
	k.mu.Lock()
	switch op {
	case "store":
		if len(a.Value) == 0 {
			k.mu.Unlock()
			return nil, errors.New(`kv store: data must be {"key": string, "value": any}`)
		}
		k.data[*a.Key] = append(json.RawMessage(nil), a.Value...)
		k.mu.Unlock()
		k.Broadcast(map[string]any{"event": "stored", "key": *a.Key})
		return "ok", nil
	case "retrieve":
		v, ok := k.data[*a.Key]
		k.mu.Unlock()
		if !ok {
			return nil, nil
		}
		return v, nil
	case "delete":
		_, ok := k.data[*a.Key]
		delete(k.data, *a.Key)
		k.mu.Unlock()
		if ok {
			k.Broadcast(map[string]any{"event": "deleted", "key": *a.Key})
		}
		return ok, nil
	case "list":
		keys := make([]string, 0, len(k.data))
		for key := range k.data {
			keys = append(keys, key)
		}
		k.mu.Unlock()
		sort.Strings(keys)
		return keys, nil
	}
	k.mu.Unlock()
	return nil, fmt.Errorf("kv: unknown operation %q (store, retrieve, delete, list)", op)
}

// Terminate forgets the data: a builtin store lives as long as its container.
func (k *KV) Terminate(context.Context) error {
	k.mu.Lock()
	k.data = map[string]json.RawMessage{}
	k.mu.Unlock()
	return nil
}

// Ping always succeeds.
func (k *KV) Ping(context.Context) error { return nil }
