package main

import (
	"github.com/huly-net/huly-net/go/backrpc"
	"strconv"

	"github.com/spf13/cobra"
)

func (a *app) kindsCommand() *cobra.Command {
	var detail bool
	cmd := &cobra.Command{
		Use:   "kinds",
		Short: "List the container kinds the agents offer",
		Long: `List the container kinds some agent offers, each once (a 0.7 network lists
a kind once per agent), with how many agents offer it. --json prints an
array of kind names. A Go network also shows the containers of each kind,
the routed requests in flight, the network's limits per kind (- for none)
and how many gets and requests they refused; --json --detail prints those
as objects.`,
		Args: exactArgs(0),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			c, err := a.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer a.close(c)
			ctx, cancel := a.call(cmd.Context())
			defer cancel()
			if c.ServerHas(backrpc.CapOps) && (detail || !a.json) {
				stats, err := c.KindStats(ctx)
				if err != nil {
					return a.callError("list kinds", err)
				}
				if a.json {
					return a.printJSON(stats)
				}
				return a.kindStatTable(stats)
			}
			kinds, err := c.Kinds(ctx)
			if err != nil {
				return a.callError("list kinds", err)
			}
			kinds = uniqueSorted(kinds)
			if a.json {
				return a.printJSON(kinds)
			}
			agents, err := c.Agents(ctx)
			if err != nil {
				return a.callError("list agents", err)
			}
			offered := map[string]int{}
			for _, ag := range agents {
				for _, k := range uniqueSorted(ag.Kinds) {
					offered[k]++
				}
			}
			rows := [][]string{{"KIND", "AGENTS"}}
			for _, k := range kinds {
				rows = append(rows, []string{k, strconv.Itoa(offered[k])})
			}
			return a.table(rows)
		}),
	}
	cmd.Flags().BoolVar(&detail, "detail", false, "with --json: objects with counts and limits (needs a Go network)")
	return cmd
}
