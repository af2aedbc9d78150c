// Command huly-network is the Huly network server: the ROUTER on port 3737
// that agents register with and clients get containers from. `huly-network
// --help` lists its settings; the daemon itself is networkd.Daemon, run by
// internal/daemon.
package main

import (
	"os"
	"time"

	"github.com/huly-net/huly-net/go/internal/daemon"
	"github.com/huly-net/huly-net/go/internal/systemd"
	"github.com/huly-net/huly-net/go/server/networkd"
)

const description = `huly-network is the Huly network server: the ZeroMQ ROUTER that agents
register with and clients get containers from.

The listen address defaults to tcp://*:3737; when it is not set, the PORT and
HOST variables of a TypeScript pod are honoured. A socket passed by systemd
(one .socket unit) is served instead of binding. With curve_secret_key_file
and authorized_keys the network speaks CURVE (docs/security.md).

systemd (Type=notify): READY=1 once the ROUTER listens; STATUS= counts
clients, agents and containers; SIGHUP reloads the logging settings and the
authorized-keys file; STOPPING=1 on SIGTERM, then requests in flight finish
within shutdown_timeout.`

// Command is huly-network's command line.
var Command = daemon.Command[*networkd.Config]{
	Name:        "huly-network",
	Summary:     "the Huly network server: locates and routes to containers hosted by agents",
	Description: description,
	Defaults:    networkd.DefaultConfig,
	Adjust:      networkd.PortHost,
	Drain:       func(c *networkd.Config) time.Duration { return c.ShutdownTimeout.D() },
	Reloadable:  true,
	New: func(cfg *networkd.Config, env daemon.Env) (daemon.Service, error) {
		activated, err := systemd.Listeners()
		if err != nil {
			return nil, daemon.Errorf("socket activation: %w", err)
		}
		ln, err := systemd.OnlyListener(activated)
		if err != nil {
			systemd.CloseListeners(activated)
			return nil, daemon.Errorf("socket activation: %w", err)
		}
		return networkd.New(cfg, ln, env.Getenv, env.Log)
	},
}

func main() {
	os.Exit(Command.Main(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}
