package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/server"
)

// serveEchoInfo is what serve-echo prints once it serves (one JSON line
// with --json): where the network and the agent are.
type serveEchoInfo struct {
	Network     string   `json:"network"`
	ServerID    string   `json:"server_id"`
	WithNetwork bool     `json:"with_network"`
	AgentID     string   `json:"agent_id"`
	Endpoint    string   `json:"endpoint"`
	Kinds       []string `json:"kinds"`
}

type serveEchoFlags struct {
	endpoint      string
	listen        string
	kinds         []string
	agentID       string
	labels        []string
	withNetwork   bool
	aliveTimeout  time.Duration
	unusedTimeout time.Duration
}

func (a *app) serveEchoCommand() *cobra.Command {
	var f serveEchoFlags
	cmd := &cobra.Command{
		Use:   "serve-echo [--endpoint HOST:PORT] [--kind echo]... [--with-network]",
		Short: "Host an agent whose containers echo their data back",
		Long: `Host an agent offering --kind (default echo) whose containers answer every
operation with {"uuid","operation","data","clientId"}; operation
"broadcast" sends the data to every client connected to the container.
This is the counterpart of the TypeScript bench-agent, for tests and
bench.

The agent serves its endpoint (for connections, request --direct) on
--endpoint, which is also what it advertises; port 0 takes a free port, an
empty --endpoint serves none (requests are routed through the network
only). --listen binds elsewhere than the advertised address.

--with-network also runs a network server on the --network address, so
that one command starts a usable local network:

  hulyctl serve-echo --with-network

It prints where it serves (one JSON line with --json) and runs until Ctrl-C
or SIGTERM.`,
		Args: exactArgs(0),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			if len(f.kinds) == 0 {
				return usageError("--kind: at least one kind is required")
			}
			for _, k := range f.kinds {
				if strings.TrimSpace(k) == "" {
					return usageError("--kind: empty kind")
				}
			}
			if f.listen != "" && f.endpoint == "" {
				return usageError("--listen needs an --endpoint to advertise")
			}
			return a.serveEcho(cmd.Context(), f)
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&f.endpoint, "endpoint", "127.0.0.1:0", "advertised HOST:PORT of the agent's endpoint (port 0: a free one; empty: no endpoint)")
	fl.StringVar(&f.listen, "listen", "", "HOST:PORT the endpoint binds (default: --endpoint)")
	fl.StringArrayVar(&f.kinds, "kind", []string{"echo"}, "kind to offer (repeatable)")
	fl.StringVar(&f.agentID, "agent-id", "", "agent id (default: a new UUID)")
	fl.StringArrayVar(&f.labels, "label", nil, "label added to every container (repeatable)")
	fl.BoolVar(&f.withNetwork, "with-network", false, "also run a network server on --network")
	fl.DurationVar(&f.aliveTimeout, "alive-timeout", 3*time.Second, "with --with-network: drop silent clients and their agents after this long")
	fl.DurationVar(&f.unusedTimeout, "unused-timeout", 5*time.Second, "with --with-network: terminate containers this long after their last reference is released")
	return cmd
}

func (a *app) serveEcho(ctx context.Context, f serveEchoFlags) (err error) {
	info := serveEchoInfo{Network: a.network, WithNetwork: f.withNetwork, Kinds: f.kinds}

	if f.withNetwork {
		if f.aliveTimeout <= 0 || f.unusedTimeout <= 0 {
			return usageError("--alive-timeout and --unused-timeout must be positive")
		}
		srv := server.New(server.Options{
			AliveTimeout:  f.aliveTimeout,
			UnusedTimeout: f.unusedTimeout,
			PingInterval:  min(time.Second, f.aliveTimeout/3),
			Logger:        a.log,
		})
		if err := srv.Listen(a.network); err != nil {
			return fmt.Errorf("network server: %w", err)
		}
		runCtx, stopServer := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Run(runCtx, a.timeout) }()
		defer func() {
			stopServer()
			if serr := <-done; serr != nil && !errors.Is(serr, context.DeadlineExceeded) && err == nil {
				err = fmt.Errorf("stop network server: %w", serr)
			}
		}()
		// The agent dials what was bound: --network may name port 0 or *.
		a.network = dialable(srv.Addr())
		info.Network = a.network
	}

	c, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer a.close(c)
	info.ServerID = c.ServerID()

	ag, err := agent.New(agent.Options{
		ID:       f.agentID,
		Endpoint: f.endpoint,
		Listen:   firstNonEmpty(f.listen, f.endpoint),
		Labels:   f.labels,
		Logger:   a.log,
		// A keyed agent's endpoint admits the keys the network vouches for.
		EndpointServer: a.endpointSecurity(),
	})
	if err != nil {
		return usageError("%v", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), a.timeout)
		defer cancel()
		if cerr := ag.Close(cctx); cerr != nil {
			a.log.WithError(cerr).Warn("stop agent")
		}
	}()
	for _, k := range f.kinds {
		ag.Register(k, agent.NewEcho)
	}
	actx, cancel := a.call(ctx)
	err = ag.Attach(actx, c)
	cancel()
	if err != nil {
		return a.callError("register agent", err)
	}
	info.AgentID = ag.ID()
	if addr := ag.Addr(); addr != nil {
		info.Endpoint = advertised(f.endpoint, addr)
	}
	if err := a.printServing(info); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

func (a *app) printServing(info serveEchoInfo) error {
	if a.json {
		return a.printJSON(info)
	}
	netNote := ""
	if info.WithNetwork {
		netNote = " (in process)"
	}
	endpoint := info.Endpoint
	if endpoint == "" {
		endpoint = "- (requests routed through the network)"
	}
	if err := a.table([][]string{
		{"network", info.Network + netNote},
		{"server id", info.ServerID},
		{"agent", info.AgentID},
		{"endpoint", endpoint},
		{"kinds", list(info.Kinds)},
	}); err != nil {
		return err
	}
	_, err := fmt.Fprintln(a.stdout, "serving until Ctrl-C")
	if err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// dialable turns a bound address into one a client can dial: a wildcard
// host becomes the loopback address.
func dialable(addr net.Addr) string {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return addr.String()
	}
	ip := ta.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return net.JoinHostPort(ip.String(), fmt.Sprint(ta.Port))
}

// advertised is the endpoint's host as given with the port bound.
func advertised(endpoint string, bound net.Addr) string {
	host, _, err := net.SplitHostPort(endpoint)
	if err != nil {
		host = endpoint
	}
	if ta, ok := bound.(*net.TCPAddr); ok {
		return net.JoinHostPort(host, fmt.Sprint(ta.Port))
	}
	return bound.String()
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
