package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/network"
)

// requestStream sends a streaming request and prints each chunk as one
// line of JSON as it arrives. The timeout bounds the opening and each
// read; an interrupt cancels the stream at the container.
func (a *app) requestStream(ctx context.Context, c *client.Client, direct bool, kind, uuid, op string, data json.RawMessage) error {
	octx, cancel := a.call(ctx)
	defer cancel()
	var rd *client.StreamReader
	var err error
	if direct {
		var conn *client.Connection
		var release func()
		conn, release, err = a.connectDirect(octx, c, kind, uuid)
		if err != nil {
			return a.callError("", err)
		}
		defer release()
		rd, err = conn.Stream(octx, op, data)
	} else {
		rd, err = c.Stream(octx, uuid, op, data)
	}
	if err != nil {
		return a.callError("", err)
	}
	defer rd.Close()
	for {
		rctx, rcancel := a.call(ctx)
		chunk, err := rd.Next(rctx)
		rcancel()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return a.callError("stream "+op+" on "+uuid, err)
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, chunk); err != nil {
			return fmt.Errorf("a chunk is not JSON: %.200s", chunk)
		}
		buf.WriteByte('\n')
		if _, err := a.stdout.Write(buf.Bytes()); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
	}
}

// connectDirect gets a reference to the container (looking up its kind
// when not given) and opens a connection to it.
func (a *app) connectDirect(ctx context.Context, c *client.Client, kind, uuid string) (*client.Connection, func(), error) {
	if kind == "" {
		recs, err := listContainers(ctx, c, "")
		if err != nil {
			return nil, nil, fmt.Errorf("look up the kind of %s: %w", uuid, err)
		}
		for _, r := range recs {
			if string(r.UUID) == uuid {
				kind = r.Kind
				break
			}
		}
		if kind == "" {
			return nil, nil, fmt.Errorf("container %s is not listed by the network (give --kind to get it anyway)", uuid)
		}
	}
	ref, err := c.Get(ctx, kind, client.GetOptions{UUID: network.ContainerUUID(uuid)})
	if err != nil {
		return nil, nil, err
	}
	conn, err := ref.Connect(ctx)
	if err != nil {
		_ = ref.Release(ctx)
		return nil, nil, err
	}
	return conn, func() {
		_ = conn.Close()
		rctx, cancel := a.call(context.Background())
		defer cancel()
		_ = ref.Release(rctx)
	}, nil
}
