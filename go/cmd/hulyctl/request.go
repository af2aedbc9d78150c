package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/network"
)

func (a *app) requestCommand() *cobra.Command {
	var (
		direct   bool
		kind     string
		streamed bool
	)
	cmd := &cobra.Command{
		Use:   "request [--direct] [--stream] UUID OP [JSON]",
		Short: "Send an operation to a container and print its result",
		Long: `Send operation OP with data JSON (null when absent; - reads it from stdin)
to the container UUID and print the result as JSON.

By default the request is routed through the network and the container's
agent. --direct connects to the container instead, through its agent's
endpoint or the container's own one, as a client's Connect does; that takes
a reference for the time of the request, and needs the container's kind,
which is looked up unless --kind gives it (a 0.7 TypeScript network lists
nothing without a kind).

--stream reads the answer as a stream and prints one JSON value per line as
the chunks arrive (--timeout bounds each read, not the whole stream); a
network or endpoint that does not stream answers one result, printed as
one line.`,
		Args: rangeArgs(2, 3),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			uuid, op := args[0], args[1]
			data := json.RawMessage("null")
			if len(args) == 3 {
				d, err := readData(args[2], cmd.InOrStdin())
				if err != nil {
					return err
				}
				data = d
			}
			c, err := a.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer a.close(c)
			if streamed {
				return a.requestStream(cmd.Context(), c, direct, kind, uuid, op, data)
			}
			ctx, cancel := a.call(cmd.Context())
			defer cancel()
			var res json.RawMessage
			if direct {
				res, err = a.requestDirect(ctx, c, kind, uuid, op, data)
			} else {
				res, err = c.Request(ctx, uuid, op, data)
			}
			if err != nil {
				return a.callError("", err)
			}
			return a.printResult(res)
		}),
	}
	cmd.Flags().BoolVar(&direct, "direct", false, "connect to the container instead of routing through the network")
	cmd.Flags().StringVar(&kind, "kind", "", "the container's kind, for --direct (looked up when empty)")
	cmd.Flags().BoolVar(&streamed, "stream", false, "read the answer as a stream: one JSON value per line as chunks arrive")
	return cmd
}

// readData parses the JSON argument; "-" reads it from stdin.
func readData(arg string, stdin io.Reader) (json.RawMessage, error) {
	b := []byte(arg)
	if arg == "-" {
		var err error
		if b, err = io.ReadAll(stdin); err != nil {
			return nil, fmt.Errorf("read data from stdin: %w", err)
		}
	}
	b = bytes.TrimSpace(b)
	if !json.Valid(b) {
		return nil, usageError("data is not valid JSON: %.200s", b)
	}
	return json.RawMessage(b), nil
}

// requestDirect gets a reference to the container and sends the request
// over a connection opened from it.
func (a *app) requestDirect(ctx context.Context, c *client.Client, kind, uuid, op string, data json.RawMessage) (json.RawMessage, error) {
	if kind == "" {
		recs, err := listContainers(ctx, c, "")
		if err != nil {
			return nil, fmt.Errorf("look up the kind of %s: %w", uuid, err)
		}
		for _, r := range recs {
			if string(r.UUID) == uuid {
				kind = r.Kind
				break
			}
		}
		if kind == "" {
			return nil, fmt.Errorf("container %s is not listed by the network (give --kind to get it anyway)", uuid)
		}
	}
	ref, err := c.Get(ctx, kind, client.GetOptions{UUID: network.ContainerUUID(uuid)})
	if err != nil {
		return nil, err
	}
	defer func() { _ = ref.Release(ctx) }()
	conn, err := ref.Connect(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = conn.Close() }()
	return conn.Request(ctx, op, data)
}

// printResult prints a container's answer: one line of JSON with --json,
// indented otherwise.
func (a *app) printResult(res json.RawMessage) error {
	if len(res) == 0 {
		res = json.RawMessage("null")
	}
	var buf bytes.Buffer
	var err error
	if a.json {
		err = json.Compact(&buf, res)
	} else {
		err = json.Indent(&buf, res, "", "  ")
	}
	if err != nil {
		return fmt.Errorf("the answer is not JSON: %.200s", res)
	}
	buf.WriteByte('\n')
	if _, err := a.stdout.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}
