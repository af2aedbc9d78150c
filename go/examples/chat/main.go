// Command chat is an example of container events: a chat room container
// broadcasts every message to the clients connected to it. Two users join
// the same room (one uuid), each over a connection of its own, and each
// sees what the other says.
//
//	go run ./cmd/hulyctl serve-echo --with-network   # or huly-network
//	go run ./examples/chat
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

func main() { example.Main("chat", run) }

// message is what the room broadcasts.
type message struct {
	From string `json:"from"`
	Text string `json:"text"`
}

// room is the container. agent.Broadcaster keeps the connected clients
// (the agent calls Connect and Disconnect) and sends them events.
type room struct {
	agent.Broadcaster
}

func newRoom(context.Context, string, network.GetOptions) (agent.Container, error) {
	return &room{}, nil
}

func (r *room) Request(_ context.Context, _ string, op string, data json.RawMessage) (any, error) {
	switch op {
	case "say":
		var m message
		if err := json.Unmarshal(data, &m); err != nil || m.From == "" {
			return nil, errors.New(`say: want {"from", "text"}`)
		}
		return map[string]int{"delivered": r.Broadcast(m)}, nil
	case "members":
		return len(r.Clients()), nil
	}
	return nil, fmt.Errorf("unknown operation %s", op)
}

func (r *room) Terminate(context.Context) error { return nil }
func (r *room) Ping(context.Context) error      { return nil }

// user is one chat client: its own session, a connection to the room, and
// the room's events.
type user struct {
	name   string
	c      *client.Client
	conn   *client.Connection
	events <-chan json.RawMessage
}

func join(ctx context.Context, addr, name string) (*user, error) {
	c, err := client.Dial(addr)
	if err != nil {
		return nil, err
	}
	ref, err := c.Get(ctx, "chat-room", client.GetOptions{UUID: "room-general"})
	if err != nil {
		_ = c.Close(context.Background())
		return nil, err
	}
	// Connect: the room's broadcasts now reach this connection's events.
	conn, err := ref.Connect(ctx)
	if err != nil {
		_ = c.Close(context.Background())
		return nil, err
	}
	// Take the event channel at once: events that come before anyone
	// asked for it are not kept.
	return &user{name: name, c: c, conn: conn, events: conn.Events()}, nil
}

func (u *user) say(ctx context.Context, text string) error {
	_, err := u.conn.Request(ctx, "say", message{From: u.name, Text: text})
	return err
}

// hear waits for the next message from someone else (a user also hears
// itself: the room broadcasts to everyone connected).
func (u *user) hear(ctx context.Context) (message, error) {
	for {
		select {
		case data, ok := <-u.events:
			if !ok {
				return message{}, errors.New("connection closed")
			}
			var m message
			if err := json.Unmarshal(data, &m); err != nil {
				return message{}, err
			}
			if m.From != u.name {
				return m, nil
			}
		case <-ctx.Done():
			return message{}, ctx.Err()
		}
	}
}

func run(ctx context.Context, addr string, out io.Writer) error {
	// The agent that serves chat rooms.
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
	a.Register("chat-room", newRoom)
	if err := a.Attach(ctx, host); err != nil {
		return err
	}

	alice, err := join(ctx, addr, "alice")
	if err != nil {
		return err
	}
	defer alice.c.Close(context.Background())
	bob, err := join(ctx, addr, "bob")
	if err != nil {
		return err
	}
	defer bob.c.Close(context.Background())

	members, err := client.Call[int](ctx, alice.conn, "members")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "room-general has %d members\n", members)

	if err := alice.say(ctx, "hi bob"); err != nil {
		return err
	}
	m, err := bob.hear(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "bob hears %s: %s\n", m.From, m.Text)

	if err := bob.say(ctx, "hello alice"); err != nil {
		return err
	}
	m, err = alice.hear(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "alice hears %s: %s\n", m.From, m.Text)
	return nil
}
