// Command echo-container is an example container program built on the
// container SDK (package container): huly-agent's process, transient and
// nspawn runtimes start it, one process per container.
//
// Operations (PROTOCOL.md §6; the method of a direct request is the
// operation):
//
//	broadcast  sends {"from": uuid, ...data} to every connected client and
//	           answers {"broadcastTo": N}
//	info       answers {"uuid","kind","labels","extra","pid"}
//	stream     streams: data {"n": N} answers N chunks {"i": 0…N-1}
//	           (one array to a plain request)
//	anything   answers {"uuid","operation","data","clientId"}, like the
//	           reference's bench agent
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/huly-net/huly-net/go/container"
)

type echo struct {
	host *container.Host
}

func (e *echo) Start(_ context.Context, h *container.Host) error {
	e.host = h
	return nil
}

func (e *echo) Request(_ context.Context, clientID, op string, data json.RawMessage) (any, error) {
	info := e.host.Info()
	switch op {
	case "broadcast":
		msg := map[string]any{}
		_ = json.Unmarshal(data, &msg) // data that is not an object broadcasts as {from}
		msg["from"] = info.UUID
		return map[string]int{"broadcastTo": e.host.Broadcast(msg)}, nil
	case "info":
		return map[string]any{
			"uuid": info.UUID, "kind": info.Kind, "labels": info.Labels,
			"extra": info.Extra, "pid": os.Getpid(),
		}, nil
	}
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	var cid any
	if clientID != "" {
		cid = clientID
	}
	return struct {
		UUID      string          `json:"uuid"`
		Operation string          `json:"operation"`
		Data      json.RawMessage `json:"data"`
		ClientID  any             `json:"clientId"`
	}{info.UUID, op, data, cid}, nil
}

// StreamOp: "stream" streams (container.Streamer).
func (e *echo) StreamOp(op string) bool { return op == "stream" }

// Stream emits {"i": 0…n-1}.
func (e *echo) Stream(ctx context.Context, _ string, _ string, data json.RawMessage, emit container.Emitter) error {
	var p struct {
		N int `json:"n"`
	}
	if err := json.Unmarshal(data, &p); err != nil || p.N < 0 || p.N > 10_000_000 {
		return fmt.Errorf(`stream: data must be {"n": 0…10000000}`)
	}
	for i := range p.N {
		if err := emit.Emit(ctx, map[string]int{"i": i}); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	if err := container.Serve(context.Background(), &echo{}); err != nil {
		fmt.Fprintln(os.Stderr, "echo-container:", err)
		os.Exit(1)
	}
}
