package client

import (
	"context"
	"encoding/json"
	"fmt"
)

// Requester is anything that sends an operation to a container:
// *ContainerRef (routed through the network) and *Connection.
type Requester interface {
	Request(ctx context.Context, op string, data any) (json.RawMessage, error)
}

// Call is a typed request, the Go counterpart of the TypeScript cast proxy:
// Call[Out](ctx, ref, "Iface.method", a, b) sends operation "Iface.method"
// with data [a, b] and decodes the answer into Out.
func Call[Out any](ctx context.Context, r Requester, method string, args ...any) (Out, error) {
	var out Out
	if args == nil {
		args = []any{}
	}
	res, err := r.Request(ctx, method, args)
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(res, &out); err != nil {
		return out, fmt.Errorf("%s: decode answer into %T: %w", method, out, err)
	}
	return out, nil
}
