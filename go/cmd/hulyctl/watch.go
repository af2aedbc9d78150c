package main

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/huly-net/huly-net/go/client"
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
	var kinds, uuids []string
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Stream network events until Ctrl-C",
		Long: `Print the network's events as they arrive, until Ctrl-C or SIGTERM: agents
and containers added, updated and removed. Without --json one line per
agent or container; with --json one JSON object per event:
{"time", "agents": [{"id","kinds","event"}], "containers": [{"container","event"}]},
event 0 added, 1 updated, 2 removed. The session reconnects by itself when
the server restarts.

Without --kind and --uuid every event is shown. With them, only the
containers of those kinds and uuids (and the agents offering those kinds);
a network server that delivers events by interest then sends only those.`,
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
			sub := client.Subscription{All: len(kinds) == 0 && len(uuids) == 0, Kinds: kinds}
			for _, u := range uuids {
				sub.UUIDs = append(sub.UUIDs, network.ContainerUUID(u))
			}
			unsubscribe := c.OnEvent(func(ev network.Event) {
				mu.Lock()
				defer mu.Unlock()
				if failed != nil {
					return
				}
				if ev = client.FilterEvent(sub, ev); ev.Empty() {
					return
				}
				if err := a.printEvent(time.Now(), ev); err != nil {
					failed = err
					close(failure)
				}
			})
			defer unsubscribe()
			defer c.Subscribe(sub)()
			if err := c.WaitSubscribed(ctx); err != nil {
				return err
			}
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
	cmd.Flags().StringSliceVar(&kinds, "kind", nil, "show only containers of this kind (repeatable)")
	cmd.Flags().StringSliceVar(&uuids, "uuid", nil, "show only the container of this uuid (repeatable)")
	return cmd
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
