package server

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/internal/jsonsplit"
	"github.com/huly-net/huly-net/go/network"
	"github.com/huly-net/huly-net/go/stream"
)

// routeStream routes the stream methods (package stream) to the agent of
// the container named first in params, like cs. An agent whose session did
// not announce streams (a TypeScript agent) gets a plain cs for an open, and
// its result is the stream's only chunk.
func (s *Server) routeStream(ctx context.Context, method string, params json.RawMessage) (any, error) {
	p, err := jsonsplit.Array(params)
	if err != nil || len(p) < 2 {
		return nil, fmt.Errorf("%s: params must be an array [uuid, ...]", method)
	}
	uuid, err := jsonsplit.String(p[0])
	if err != nil || uuid == "" {
		return nil, fmt.Errorf("%s: container uuid must be a non-empty string", method)
	}
	if method != stream.MethodCancel {
		done, err := s.net.AdmitRequest(network.ContainerUUID(uuid))
		if err != nil {
			return nil, err
		}
		defer done()
	}
	to, ok := s.net.RouteTarget(network.ContainerUUID(uuid))
	if !ok {
		return nil, fmt.Errorf("Container %s not found", uuid) //nolint:staticcheck // the reference's wording, which clients match
	}
	if host, ok := s.rpc.Client(string(to.Client)); !ok || !host.HasCapability(backrpc.CapStream) {
		if method != stream.MethodOpen {
			return nil, fmt.Errorf("%s: %w: the agent of %s does not stream", method, stream.ErrNotFound, uuid)
		}
		op, err := jsonsplit.String(p[1])
		if err != nil {
			return nil, fmt.Errorf("%s: operation must be a string", method)
		}
		data := json.RawMessage("null")
		if len(p) > 2 {
			data = p[2]
		}
		res, err := s.net.Route(ctx, network.ContainerUUID(uuid), op, data)
		if err != nil {
			return nil, err
		}
		return stream.Batch{Chunks: []json.RawMessage{res}, End: true}, nil
	}
	return caller{s}.call(ctx, to, method, params)
}
