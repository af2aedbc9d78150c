// Command huly-agent is the Huly agent daemon: it registers with a
// huly-network server and serves the containers of the kinds in its
// configuration. The daemon is agentd.Daemon, run by internal/daemon.
package main

import (
	"os"
	"time"

	"github.com/huly-net/huly-net/go/agent/agentd"
	"github.com/huly-net/huly-net/go/internal/daemon"
)

const description = `huly-agent registers with a huly-network server and serves the containers
of the kinds in its configuration file (--config), each through a runtime:

  builtin    Go code compiled into the agent ("builtin": "echo" or "kv")
  process    a child process per container ("command", "args", "environment");
             serving the direct-endpoint protocol (package container) on the
             socket the agent passes (HULY_LISTEN_FD) and reporting readiness
             on NOTIFY_SOCKET, as under systemd
  transient  the same program as a transient systemd unit
             huly-c-<kind>-<short uuid>.service, over D-Bus ("unit_properties")
  nspawn     a systemd-nspawn machine per container ("nspawn": directory or
             image, port, bind, private_network)

A kind is kinds.NAME in the file: {"runtime": ..., "labels": [...],
"max_instances": N, "restart": "never"|"on-failure", "pinned": [{"uuid": ...}]}.
examples/agent.json shows every runtime.

systemd (Type=notify): READY=1 after the first registration with the network;
STATUS= says whether the agent is registered and counts its containers by
state; STOPPING=1 on SIGTERM, after which process children are terminated and
the agent unregisters, while transient units and nspawn machines keep running
and are adopted (or stopped, when no longer wanted) at the next start.`

// Command is huly-agent's command line.
var Command = daemon.Command[*agentd.Config]{
	Name:        "huly-agent",
	Summary:     "host the containers of a huly network",
	Description: description,
	Defaults:    agentd.DefaultConfig,
	Drain:       func(*agentd.Config) time.Duration { return agentd.CloseTimeout },
	Reloadable:  true,
	New: func(cfg *agentd.Config, env daemon.Env) (daemon.Service, error) {
		return agentd.New(cfg, env.Log, env.Getenv), nil
	},
}

func main() {
	os.Exit(Command.Main(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}
