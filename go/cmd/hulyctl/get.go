package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/network"
)

// getResult is the --json output of get; scripts read both keys.
type getResult struct {
	UUID     string `json:"uuid"`
	Endpoint string `json:"endpoint"`
}

func (a *app) getCommand() *cobra.Command {
	var (
		uuid   string
		labels []string
		extra  string
		hold   bool
	)
	cmd := &cobra.Command{
		Use:   "get KIND [--uuid U] [--label L]... [--extra JSON] [--hold]",
		Short: "Get (or start) a container and print its uuid and endpoint",
		Long: `Get a container of KIND: the one with --uuid (started with that uuid when
none exists), or one whose labels include every --label; --extra is passed
to a container that is started. Retries until the timeout while no agent
offers KIND.

The reference is released on exit, so the network terminates a container
nobody else holds after its unused timeout. --hold keeps it until Ctrl-C
or SIGTERM, printing the container again whenever it moves.

--json prints {"uuid": ..., "endpoint": ...} (one line per move with --hold).`,
		Args: exactArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			opts := client.GetOptions{UUID: network.ContainerUUID(uuid), Labels: labels}
			if extra != "" {
				if !json.Valid([]byte(extra)) {
					return usageError("--extra is not valid JSON: %s", extra)
				}
				opts.Extra = json.RawMessage(extra)
			}
			c, err := a.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer a.close(c)
			ctx, cancel := a.call(cmd.Context())
			ref, err := c.Get(ctx, args[0], opts)
			cancel()
			if err != nil {
				return a.callError("", err)
			}
			changed := ref.Changed()
			if err := a.printRef(ref); err != nil {
				return err
			}
			if !hold {
				return nil
			}
			return a.holdRef(cmd.Context(), ref, changed)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&uuid, "uuid", "", "the container's uuid")
	f.StringArrayVar(&labels, "label", nil, "a label the container must carry (repeatable)")
	f.StringVar(&extra, "extra", "", "JSON passed to a container that is started")
	f.BoolVar(&hold, "hold", false, "keep the reference until Ctrl-C or SIGTERM")
	return cmd
}

func (a *app) printRef(ref *client.ContainerRef) error {
	if a.json {
		return a.printJSON(getResult{UUID: ref.UUID(), Endpoint: ref.Endpoint()})
	}
	return a.table([][]string{
		{"uuid", ref.UUID()},
		{"endpoint", endpointText(ref.Endpoint())},
		{"ref", ref.Endpoint()},
	})
}

// holdRef keeps the reference until ctx ends (a signal), printing the
// container whenever the reference follows it elsewhere.
func (a *app) holdRef(ctx context.Context, ref *client.ContainerRef, changed <-chan struct{}) error {
	if !a.json {
		fmt.Fprintln(a.stderr, "hulyctl: holding", ref.UUID(), "until Ctrl-C")
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
			changed = ref.Changed()
			if err := a.printRef(ref); err != nil {
				return err
			}
		}
	}
}
