package main

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/huly-net/huly-net/go/network"
)

// watchLine is one --json line of watch: the network event as the server
// sent it, with the time it arrived.
type watchLine struct {
	Time       time.Time                `json:"time"`
	Agents     []network.AgentEvent     `json:"agents"`
	Containers []network.ContainerEvent `json:"containers"`
}

func (a *app) watchCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "watch",
		Short: "Stream network events until Ctrl-C",
		Long: `Print the network's events as they arrive, until Ctrl-C or SIGTERM: agents
and containers added, updated and removed. Without --json one line per
agent or container; with --json one JSON object per event:
{"time", "agents": [{"id","kinds","event"}], "containers": [{"container","event"}]},
event 0 added, 1 updated, 2 removed. The session reconnects by itself when
the server restarts.`,
		Args: exactArgs(0),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := a.dial(ctx)
			if err != nil {
				return err
			}
			defer a.close(c)
			// Events come on the client's event goroutine; writes are
			// serialised and the first failure ends the watch.
			var (
				mu      sync.Mutex
				failed  error
				failure = make(chan struct{})
			)
			unsubscribe := c.OnEvent(func(ev network.Event) {
				mu.Lock()
				defer mu.Unlock()
				if failed != nil {
					return
				}
				if err := a.printEvent(time.Now(), ev); err != nil {
					failed = err
					close(failure)
				}
			})
			defer unsubscribe()
			fmt.Fprintf(a.stderr, "hulyctl: watching %s (server %s) until Ctrl-C\n", a.network, c.ServerID())
			select {
			case <-ctx.Done():
				return nil
			case <-failure:
				mu.Lock()
				defer mu.Unlock()
				return failed
			}
		}),
	}
}

func (a *app) printEvent(at time.Time, ev network.Event) error {
	if a.json {
		return a.printJSON(watchLine{Time: at, Agents: nonNil(ev.Agents), Containers: nonNil(ev.Containers)})
	}
	var b strings.Builder
	stamp := at.Format("15:04:05.000")
	for _, ag := range ev.Agents {
		fmt.Fprintf(&b, "%s  agent      %-7s  %s  kinds=%s\n", stamp, ag.Event, ag.ID, list(ag.Kinds))
	}
	for _, ce := range ev.Containers {
		r := ce.Container
		fmt.Fprintf(&b, "%s  container  %-7s  %s  kind=%s agent=%s endpoint=%s", stamp, ce.Event, r.UUID, r.Kind, r.AgentID, endpointText(r.Endpoint))
		if len(r.Labels) > 0 {
			fmt.Fprintf(&b, " labels=%s", list(r.Labels))
		}
		b.WriteByte('\n')
	}
	if _, err := a.stdout.Write([]byte(b.String())); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
