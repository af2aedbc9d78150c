package agentd

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/agent/runtime"
	"github.com/huly-net/huly-net/go/agent/runtime/builtin"
	"github.com/huly-net/huly-net/go/agent/runtime/nspawn"
	"github.com/huly-net/huly-net/go/agent/runtime/process"
	"github.com/huly-net/huly-net/go/agent/runtime/transient"
	"github.com/huly-net/huly-net/go/network"
)

// busTimeout bounds connecting to the system bus and the adoption scan.
const busTimeout = 30 * time.Second

type kindEnv struct {
	agent         *agent.Agent
	registry      *runtime.Registry
	listenHost    string
	advertiseHost string
	log           logrus.FieldLogger
	getenv        func(string) string
}

// systemdRuntime is what the transient and nspawn runtimes add to a
// factory: adoption of what an earlier agent left running, and letting it
// run when this agent stops.
type systemdRuntime interface {
	Adopt(ctx context.Context) error
	Detach()
}

type builtKinds struct {
	names   []string
	systemd []systemdRuntime
	closers []func()
}

// detach makes the transient and nspawn containers outlive the agent: the
// agent's Close then only lets go of them.
func (k *builtKinds) detach() {
	for _, s := range k.systemd {
		s.Detach()
	}
}

func (k *builtKinds) close() {
	for _, f := range k.closers {
		f()
	}
}

// buildKinds makes the runtime of every kind, registers its factory with
// the agent and declares its pinned containers.
func buildKinds(ctx context.Context, cfg *Config, env kindEnv) (*builtKinds, error) {
	out := &builtKinds{}
	names := cfg.Kinds.Names()
	refresh := env.agent.Refresh

	var bus *transient.Bus
	busFor := func(kind string) (*transient.Bus, error) {
		if bus != nil {
			return bus, nil
		}
		b, err := transient.ConnectSystemBus(ctx, busTimeout)
		if err != nil {
			return nil, fmt.Errorf("kind %s needs systemd over the system D-Bus: %w", kind, err)
		}
		bus = b
		out.closers = append(out.closers, b.Close)
		return b, nil
	}

	for _, name := range names {
		k := cfg.Kinds.Get(name)
		spec := k.spec(name)
		log := env.log.WithField("kind", name)
		var f agent.Factory
		switch k.Runtime {
		case runtime.Builtin:
			bf, err := builtin.Factory(builtin.Options{Spec: spec, Builtin: k.Builtin, Registry: env.registry})
			if err != nil {
				return out, err
			}
			f = bf
		case runtime.Process:
			rt, err := process.New(process.Options{
				Spec: spec, ListenHost: env.listenHost, AdvertiseHost: env.advertiseHost,
				Registry: env.registry, Refresh: refresh, Logger: log,
				Secure: env.agent != nil && env.agent.EndpointSecured(),
			})
			if err != nil {
				return out, err
			}
			f = rt.Factory
		case runtime.Transient, runtime.Nspawn:
			b, err := busFor(name)
			if err != nil {
				return out, err
			}
			props := map[string]string{}
			for p, v := range k.UnitProperties {
				props[p], _ = unitPropertyString(v) // validated
			}
			var rt interface {
				systemdRuntime
				Factory(context.Context, string, network.GetOptions) (agent.Container, error)
			}
			if k.Runtime == runtime.Transient {
				rt, err = transient.New(transient.Options{
					Spec: spec, UnitProperties: props, ListenHost: env.listenHost, AdvertiseHost: env.advertiseHost,
					Registry: env.registry, Refresh: refresh, Logger: log, Units: b,
				})
			} else {
				rt, err = nspawn.New(nspawn.Options{
					Spec: spec, UnitProperties: props, ListenHost: env.listenHost, AdvertiseHost: env.advertiseHost,
					Directory: k.Nspawn.Directory, Image: k.Nspawn.Image, PrivateNetwork: k.Nspawn.PrivateNetwork,
					Bind: k.Nspawn.Bind, Port: k.Nspawn.Port, StateDir: stateDir(env.getenv),
					Registry: env.registry, Refresh: refresh, Logger: log, Units: b, Machines: b,
				})
			}
			if err != nil {
				return out, err
			}
			actx, cancel := context.WithTimeout(ctx, busTimeout)
			err = rt.Adopt(actx)
			cancel()
			if err != nil {
				return out, fmt.Errorf("kind %s: adopt running containers: %w", name, err)
			}
			out.systemd = append(out.systemd, rt)
			f = rt.Factory
		default:
			return out, fmt.Errorf("kinds.%s.runtime: unknown runtime %q", name, k.Runtime)
		}
		env.agent.Register(name, f)
		for _, p := range k.Pinned {
			// Pinned containers are declared the way HA containers are: the
			// agent registers them itself, starts them when the network
			// answers that nobody else serves them, and starts them again
			// when they fail or are terminated. stateless only says whether
			// other agents are expected to declare the same uuid.
			if err := env.agent.AddStateless(name, p.UUID, p.Labels, f); err != nil {
				return out, fmt.Errorf("kinds.%s.pinned %s: %w", name, p.UUID, err)
			}
		}
		out.names = append(out.names, name)
	}
	return out, nil
}

// stateDir is the first directory of $STATE_DIRECTORY.
func stateDir(getenv func(string) string) string {
	d, _, _ := strings.Cut(getenv("STATE_DIRECTORY"), ":")
	return d
}
