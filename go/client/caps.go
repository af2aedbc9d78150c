package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/huly-net/huly-net/go/backrpc"
)

// capabilities are what a Go client announces in its hello.
var capabilities = []string{backrpc.CapOps, backrpc.CapStream}

// ErrNotSupported matches (errors.Is) a call to an extension the network
// server did not announce (a TypeScript 0.7 server announces none).
var ErrNotSupported = errors.New("not supported by the network server")

// ServerHas reports whether the network server announced capability name
// (backrpc.Cap*) in its last hello answer.
func (c *Client) ServerHas(name string) bool { return c.rpc.ServerHello().Has(name) }

// requireCapability waits for the session (whose hello answer says what the
// server supports) and fails unless the server announced name.
func (c *Client) requireCapability(ctx context.Context, name, what string) error {
	if c.isClosed() {
		return ErrClosed
	}
	if err := c.rpc.WaitConnected(ctx); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if !c.ServerHas(name) {
		return fmt.Errorf("%s: %w (capability %q not announced)", what, ErrNotSupported, name)
	}
	return nil
}
