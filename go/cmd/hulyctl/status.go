package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/huly-net/huly-net/go/network"
)

// statusReport is the roll call; its JSON keys are what scripts read.
type statusReport struct {
	Network string `json:"network"`
	// ServerID is the id the server answered hello with; it changes when
	// the server restarts.
	ServerID  string  `json:"server_id"`
	ClientID  string  `json:"client_id"`
	ConnectMS float64 `json:"connect_ms"`
	// RoundTripMS is the time of the agent listing, a request the server
	// answers by itself.
	RoundTripMS      float64             `json:"round_trip_ms"`
	Agents           []network.AgentInfo `json:"agents"`
	Kinds            []string            `json:"kinds"`
	Containers       int                 `json:"containers"`
	ContainersByKind map[string]int      `json:"containers_by_kind"`
}

func (a *app) statusCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Roll call: the server, its agents, kinds and containers",
		Long: `Connect to the network and report what it says about itself and what it
serves: the server id (from its hello answer; it changes at every server
restart), the connect and round-trip times, every agent with its kinds and
container count, the kinds offered and the containers per kind.`,
		Args: exactArgs(0),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			start := time.Now()
			c, err := a.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer a.close(c)
			connected := time.Since(start)
			ctx, cancel := a.call(cmd.Context())
			defer cancel()
			t0 := time.Now()
			agents, err := c.Agents(ctx)
			if err != nil {
				return a.callError("list agents", err)
			}
			rtt := time.Since(t0)
			kinds, err := c.Kinds(ctx)
			if err != nil {
				return a.callError("list kinds", err)
			}
			recs, err := listContainers(ctx, c, "")
			if err != nil {
				return a.callError("list containers", err)
			}
			sortAgents(agents)
			if agents == nil {
				agents = []network.AgentInfo{}
			}
			rep := statusReport{
				Network:          a.network,
				ServerID:         c.ServerID(),
				ClientID:         c.ID(),
				ConnectMS:        ms(connected),
				RoundTripMS:      ms(rtt),
				Agents:           agents,
				Kinds:            uniqueSorted(kinds),
				Containers:       len(recs),
				ContainersByKind: map[string]int{},
			}
			for _, r := range recs {
				rep.ContainersByKind[r.Kind]++
			}
			if a.json {
				return a.printJSON(rep)
			}
			return a.statusText(rep)
		}),
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (a *app) statusText(rep statusReport) error {
	byKind := make([]string, 0, len(rep.ContainersByKind))
	for k, n := range rep.ContainersByKind {
		byKind = append(byKind, k+" "+strconv.Itoa(n))
	}
	sort.Strings(byKind)
	containers := strconv.Itoa(rep.Containers)
	if len(byKind) > 0 {
		containers += " (" + strings.Join(byKind, ", ") + ")"
	}
	if err := a.table([][]string{
		{"network", rep.Network},
		{"server id", rep.ServerID},
		{"connected in", fmt.Sprintf("%.2f ms", rep.ConnectMS)},
		{"round trip", fmt.Sprintf("%.2f ms", rep.RoundTripMS)},
		{"agents", strconv.Itoa(len(rep.Agents))},
		{"kinds", list(rep.Kinds)},
		{"containers", containers},
	}); err != nil {
		return err
	}
	if len(rep.Agents) == 0 {
		return nil
	}
	if _, err := fmt.Fprintln(a.stdout); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return a.agentTable(rep.Agents)
}
