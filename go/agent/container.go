package agent

import (
	"context"
	"encoding/json"
	"sort"
	"sync"

	"github.com/huly-net/huly-net/go/network"
)

// Container is what an agent serves: one instance per container uuid,
// made by the Factory of its kind.
type Container interface {
	// Request runs operation op with data. clientID is the caller's client
	// id when the request came over the agent's endpoint (cs there), ""
	// when it was routed through the network. The result is encoded as
	// JSON (a json.RawMessage as it is); an error is answered as one.
	Request(ctx context.Context, clientID, op string, data json.RawMessage) (any, error)
	// Connect: a client connected to the container (cc); broadcast sends
	// that client an event. It must not block.
	Connect(clientID string, broadcast func(data any))
	// Disconnect: the client disconnected (cd) or went away.
	Disconnect(clientID string)
	// Terminate stops the container; the agent forgets it afterwards.
	Terminate(ctx context.Context) error
	// Ping reports whether the container is healthy; an error makes the
	// agent drop it (and restart it, for a stateless container).
	Ping(ctx context.Context) error
}

// Factory starts a container of one kind with the given uuid; opts are
// the options of the get that asked for it (labels, extra).
type Factory func(ctx context.Context, uuid string, opts network.GetOptions) (Container, error)

// DirectEndpoint is implemented by containers that serve an endpoint of
// their own (PROTOCOL.md §6, direct): the agent then hands out a direct
// reference to host:port instead of routing through itself.
type DirectEndpoint interface {
	DirectEndpoint() (host string, port int)
}

// Broadcaster keeps the send functions of the clients connected to a
// container. Embed it to get Connect and Disconnect.
type Broadcaster struct {
	mu      sync.Mutex
	clients map[string]func(any)
}

// Connect records a connected client.
func (b *Broadcaster) Connect(clientID string, send func(any)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.clients == nil {
		b.clients = map[string]func(any){}
	}
	b.clients[clientID] = send
}

// Disconnect forgets a client.
func (b *Broadcaster) Disconnect(clientID string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.clients, clientID)
}

// Broadcast sends data to every connected client and returns how many.
func (b *Broadcaster) Broadcast(data any) int {
	b.mu.Lock()
	sends := make([]func(any), 0, len(b.clients))
	for _, s := range b.clients {
		sends = append(sends, s)
	}
	b.mu.Unlock()
	for _, s := range sends {
		s(data)
	}
	return len(sends)
}

// Send sends data to one connected client; false when it is not connected.
func (b *Broadcaster) Send(clientID string, data any) bool {
	b.mu.Lock()
	s := b.clients[clientID]
	b.mu.Unlock()
	if s == nil {
		return false
	}
	s(data)
	return true
}

// Clients lists the connected client ids, sorted.
func (b *Broadcaster) Clients() []string {
	b.mu.Lock()
	out := make([]string, 0, len(b.clients))
	for id := range b.clients {
		out = append(out, id)
	}
	b.mu.Unlock()
	sort.Strings(out)
	return out
}

// Echo is the container of the reference's bench agent: every operation
// answers {"uuid","operation","data","clientId"}; operation "broadcast"
// also sends {"from": uuid, "to": clientId, ...data} to every connected
// client and answers {"broadcastTo": N}.
type Echo struct {
	Broadcaster
	uuid string
}

// NewEcho is the Factory of Echo containers.
func NewEcho(_ context.Context, uuid string, _ network.GetOptions) (Container, error) {
	return &Echo{uuid: uuid}, nil
}

// Request echoes.
func (e *Echo) Request(_ context.Context, clientID, op string, data json.RawMessage) (any, error) {
	if op == "broadcast" {
		e.mu.Lock()
		targets := make(map[string]func(any), len(e.clients))
		for id, s := range e.clients {
			targets[id] = s
		}
		e.mu.Unlock()
		for id, send := range targets {
			msg := map[string]any{}
			_ = json.Unmarshal(data, &msg) // non-objects broadcast as {from, to}
			msg["from"] = e.uuid
			msg["to"] = id
			send(msg)
		}
		return map[string]int{"broadcastTo": len(targets)}, nil
	}
	var cid any
	if clientID != "" {
		cid = clientID
	}
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	return struct {
		UUID      string          `json:"uuid"`
		Operation string          `json:"operation"`
		Data      json.RawMessage `json:"data"`
		ClientID  any             `json:"clientId"`
	}{e.uuid, op, data, cid}, nil
}

// Terminate does nothing: an echo holds nothing.
func (e *Echo) Terminate(context.Context) error { return nil }

// Ping always succeeds.
func (e *Echo) Ping(context.Context) error { return nil }
