package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"io"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/stream"
)

// RelayStream reads op's answer from the program as a stream (when its
// endpoint announces streams) and emits every chunk: a stream routed
// through the agent reaches a container program with the program's own
// flow control and cancellation. A program that does not stream answers
// one result, the only chunk.
func (p *Proxy) RelayStream(ctx context.Context, _ string, op string, data json.RawMessage, emit agent.Emitter) error {
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	if err := p.rpc.WaitConnected(ctx); err != nil {
		return err
	}
	if !p.rpc.ServerHello().Has(backrpc.CapStream) {
		res, err := p.rpc.Request(ctx, op, data)
		if err != nil {
			return err
		}
		return emit.Emit(ctx, res)
	}
	rd, err := stream.OpenReader(ctx, p.rpc.Request, "", op, data, 0)
	if err != nil {
		return err
	}
	defer rd.Close()
	for {
		c, err := rd.Next(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := emit.Emit(ctx, c); err != nil {
			return err
		}
	}
}
