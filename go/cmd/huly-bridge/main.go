// Command huly-bridge forwards TCP or unix-socket connections to targets: a
// socat replacement with systemd readiness, socket activation, limits, and
// Prometheus metrics. `huly-bridge --help` lists its settings; the daemon
// itself is bridge.Daemon, run by internal/daemon.
package main

import (
	"os"
	"time"

	"github.com/huly-net/huly-net/go/bridge"
	"github.com/huly-net/huly-net/go/internal/daemon"
	"github.com/huly-net/huly-net/go/internal/systemd"
)

const description = `huly-bridge forwards TCP or unix-socket connections to targets.

Addresses are tcp:HOST:PORT or unix:PATH. A forward whose listener is passed
by systemd (FileDescriptorName=NAME in its .socket unit) needs no LISTEN:
--forward NAME=,TARGET. The connection settings (max_connections,
idle_timeout, dial_*) are defaults for every forward; a value set on one
forward in the config file (forwards.NAME.KEY) wins for it.

systemd (Type=notify): READY=1 once every forward listens; STATUS= counts
forwards and connections and names unreachable targets; STOPPING=1 on
SIGTERM, then active connections drain for drain_timeout (a second signal
closes them at once).`

// Command is huly-bridge's command line.
var Command = daemon.Command[*bridge.Config]{
	Name:        "huly-bridge",
	Summary:     "forward TCP and unix-socket connections, with systemd readiness and socket activation",
	Description: description,
	Defaults:    bridge.DefaultConfig,
	Drain:       func(c *bridge.Config) time.Duration { return c.DrainTimeout.D() },
	Reloadable:  true,
	New: func(cfg *bridge.Config, env daemon.Env) (daemon.Service, error) {
		activated, err := systemd.Listeners()
		if err != nil {
			return nil, err
		}
		return bridge.NewDaemon(cfg, activated, env.Log)
	},
}

func main() {
	os.Exit(Command.Main(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}
