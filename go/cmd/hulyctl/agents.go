package main

import (
	"sort"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/network"
)

func (a *app) agentsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "agents",
		Short: "List the registered agents",
		Long: `List the agents registered with the network: id, endpoint, the kinds
they offer and how many containers they serve. --json prints the network's
answer as an array of {"agentId","endpoint","kinds","containers"}. A Go
network also says whether each agent is drained (column STATE; in JSON
"drained", with "perKind" container counts and "capacity").`,
		Args: exactArgs(0),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			c, err := a.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer a.close(c)
			ctx, cancel := a.call(cmd.Context())
			defer cancel()
			if c.ServerHas(backrpc.CapOps) {
				return a.printAgentStates(ctx, c)
			}
			agents, err := c.Agents(ctx)
			if err != nil {
				return a.callError("list agents", err)
			}
			sortAgents(agents)
			if a.json {
				if agents == nil {
					agents = []network.AgentInfo{}
				}
				return a.printJSON(agents)
			}
			return a.agentTable(agents)
		}),
	}
}

func sortAgents(agents []network.AgentInfo) {
	sort.Slice(agents, func(i, j int) bool { return agents[i].AgentID < agents[j].AgentID })
}

func (a *app) agentTable(agents []network.AgentInfo) error {
	rows := [][]string{{"AGENT", "ENDPOINT", "KINDS", "CONTAINERS"}}
	for _, ag := range agents {
		rows = append(rows, []string{
			string(ag.AgentID), endpointText(ag.Endpoint), list(ag.Kinds), strconv.Itoa(ag.Containers),
		})
	}
	return a.table(rows)
}
