package main

import (
	"context"
	"fmt"
	"sort"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/network"
)

// Operator commands: they need a network server that announces them (a Go
// huly-network); against a TypeScript 0.7 network they fail with a clear
// message and send nothing.

func (a *app) drainCommand(drain bool) *cobra.Command {
	use, short, long := "drain AGENT", "Place no new containers on an agent",
		`Mark AGENT drained: the network places no new container on it; the
containers it has keep serving until they are released (or the agent
stops). 'hulyctl agents' shows the state; 'hulyctl undrain' reverses it. The
mark lasts as long as the agent's registration: an agent that restarts
comes back undrained.`
	if !drain {
		use, short, long = "undrain AGENT", "Place new containers on a drained agent again",
			`Reverse 'hulyctl drain': new containers may be placed on AGENT again.`
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  exactArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			return a.withOps(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				var err error
				if drain {
					err = c.Drain(ctx, args[0])
				} else {
					err = c.Undrain(ctx, args[0])
				}
				if err != nil {
					return a.callError("", err)
				}
				state := "drained"
				if !drain {
					state = "active"
				}
				if a.json {
					return a.printJSON(map[string]string{"agentId": args[0], "state": state})
				}
				_, err = fmt.Fprintf(a.stdout, "agent %s: %s\n", args[0], state)
				return err
			})
		}),
	}
}

func (a *app) terminateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "terminate UUID",
		Short: "Stop a container now",
		Long: `Stop container UUID now: the network forgets it at once (the clients
holding a reference see it removed and follow it, which gets them a new
container with the same uuid) and tells its agent to stop it. The agent
applies its policy: a pinned or stateless (HA) container is one the agent
keeps running, so it registers it again and it reappears; any other
container is stopped.`,
		Args: exactArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			return a.withOps(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				res, err := c.Terminate(ctx, args[0])
				if err != nil {
					return a.callError("", err)
				}
				if a.json {
					return a.printJSON(res)
				}
				_, err = fmt.Fprintf(a.stdout, "container %s (%s) terminated on agent %s\n", res.UUID, res.Kind, res.Agent)
				return err
			})
		}),
	}
}

// withOps dials, checks that the server announces operator commands and
// runs fn bounded by the timeout.
func (a *app) withOps(ctx context.Context, fn func(context.Context, *client.Client) error) error {
	c, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer a.close(c)
	if !c.ServerHas(backrpc.CapOps) {
		return fmt.Errorf("network %s does not offer operator commands (a TypeScript 0.7 network?)", a.network)
	}
	cctx, cancel := a.call(ctx)
	defer cancel()
	return fn(cctx, c)
}

// agentStateTable is the agents table with the drain state and the
// containers per kind.
func (a *app) agentStateTable(states []network.AgentState) error {
	rows := [][]string{{"AGENT", "ENDPOINT", "KINDS", "CONTAINERS", "STATE"}}
	for _, st := range states {
		state := "active"
		if st.Drained {
			state = "drained"
		}
		rows = append(rows, []string{
			string(st.AgentID), endpointText(st.Endpoint), list(st.Kinds), strconv.Itoa(st.Containers), state,
		})
	}
	return a.table(rows)
}

// kindStatTable is the kinds table with the counts and limits.
func (a *app) kindStatTable(stats []network.KindStat) error {
	limit := func(n int) string {
		if n <= 0 {
			return "-"
		}
		return strconv.Itoa(n)
	}
	rows := [][]string{{"KIND", "AGENTS", "CONTAINERS", "MAX-CONTAINERS", "REQUESTS", "MAX-REQUESTS", "REFUSED"}}
	for _, s := range stats {
		rows = append(rows, []string{
			s.Kind, strconv.Itoa(s.Agents), strconv.Itoa(s.Containers), limit(s.MaxContainers),
			strconv.FormatInt(s.Requests, 10), limit(s.MaxRequests), strconv.FormatUint(s.RejectedGets+s.RejectedRequests, 10),
		})
	}
	return a.table(rows)
}

func (a *app) printAgentStates(ctx context.Context, c *client.Client) error {
	states, err := c.AgentStates(ctx)
	if err != nil {
		return a.callError("list agents", err)
	}
	sort.Slice(states, func(i, j int) bool { return states[i].AgentID < states[j].AgentID })
	if a.json {
		if states == nil {
			states = []network.AgentState{}
		}
		return a.printJSON(states)
	}
	return a.agentStateTable(states)
}
