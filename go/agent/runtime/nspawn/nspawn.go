// Package nspawn is huly-agent's nspawn runtime: each container is a
// systemd-nspawn machine, huly-<kind>-<short uuid>, running the kind's
// program as the machine's first process. systemd-nspawn itself runs in a
// transient unit (huly-c-<kind>-<short uuid>.service, Type=notify with
// --notify-ready=yes, so the unit is active once the program sent
// READY=1), registered with machined (--keep-unit), which the agent uses to
// terminate the machine. The unit handling — start, following its state,
// adoption at agent start, unit_properties — is the transient runtime's;
// this package supplies the systemd-nspawn command line and the port.
//
// The port: with private_network the machine has only its own loopback,
// so the program listens on 127.0.0.1:PORT inside (nspawn.port), and the
// container's port reaches the host through two tiers of go/bridge: the
// inner tier is the container SDK's relay (HULY_RELAY_LISTEN), a unix
// socket in a directory of the agent's state directory bound into the
// machine at /run/huly; the outer tier is a forward in the agent from a
// free port of its listen host to that socket. Without private_network the
// machine shares the host's network and the program listens on a free
// port of the agent's listen host directly.
package nspawn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/agent/runtime"
	"github.com/huly-net/huly-net/go/agent/runtime/transient"
	"github.com/huly-net/huly-net/go/bridge"
	"github.com/huly-net/huly-net/go/network"
)

// Paths inside the machine.
const (
	InnerDir    = "/run/huly"
	RelaySocket = "relay.sock"
	// envHostPort records the host port of the outer tier in the unit, so
	// that an adopting agent listens there again.
	envHostPort = "HULY_HOST_PORT"
)

// Options configure the runtime of one kind.
type Options struct {
	Spec           runtime.Spec
	UnitProperties map[string]string
	ListenHost     string
	AdvertiseHost  string
	Directory      string
	Image          string
	PrivateNetwork bool
	Bind           []string
	// Port is where the program listens inside a machine with a private
	// network.
	Port int
	// StateDir holds the relay sockets (machines/NAME/relay.sock); it must
	// be reachable by systemd-nspawn (not under a PrivateTmp). Default
	// $STATE_DIRECTORY.
	StateDir string
	// Nspawn is the systemd-nspawn binary; default "systemd-nspawn" looked
	// up in PATH.
	Nspawn   string
	Registry *runtime.Registry
	Refresh  func()
	Logger   logrus.FieldLogger
	Units    transient.Units
	Machines transient.Machines
	// PollInterval as for the transient runtime.
	PollInterval time.Duration
}

// Runtime serves the containers of one kind as nspawn machines.
type Runtime struct {
	*transient.Runtime
	opts Options
	log  logrus.FieldLogger
}

// New returns the runtime.
func New(opts Options) (*Runtime, error) {
	if (opts.Directory == "") == (opts.Image == "") {
		return nil, fmt.Errorf("kinds.%s.nspawn: give exactly one of directory and image", opts.Spec.Kind)
	}
	if opts.PrivateNetwork && (opts.Port < 1 || opts.Port > 65535) {
		return nil, fmt.Errorf("kinds.%s.nspawn.port: want 1-65535 with a private network, got %d", opts.Spec.Kind, opts.Port)
	}
	if opts.Machines == nil {
		return nil, fmt.Errorf("kind %s: no connection to machined", opts.Spec.Kind)
	}
	if opts.StateDir == "" {
		opts.StateDir, _, _ = strings.Cut(os.Getenv("STATE_DIRECTORY"), ":")
	}
	if opts.PrivateNetwork && opts.StateDir == "" {
		return nil, fmt.Errorf("kind %s: the nspawn runtime with a private network needs a state directory for its relay sockets (STATE_DIRECTORY)", opts.Spec.Kind)
	}
	if opts.Nspawn == "" {
		opts.Nspawn = "systemd-nspawn"
	}
	if opts.Logger == nil {
		opts.Logger = logrus.StandardLogger()
	}
	r := &Runtime{opts: opts, log: opts.Logger.WithFields(logrus.Fields{"kind": opts.Spec.Kind, "runtime": runtime.Nspawn})}
	tr, err := transient.New(transient.Options{
		Spec: opts.Spec, UnitProperties: opts.UnitProperties, ListenHost: opts.ListenHost, AdvertiseHost: opts.AdvertiseHost,
		Registry: opts.Registry, Refresh: opts.Refresh, Logger: opts.Logger, Units: opts.Units,
		PollInterval: opts.PollInterval, Runtime: runtime.Nspawn, Launcher: r,
	})
	if err != nil {
		return nil, err
	}
	r.Runtime = tr
	return r, nil
}

// MachineName is the machine of container uuid: huly-<kind>-<short uuid>.
func MachineName(kind, uuid string) string {
	return "huly-" + strings.ReplaceAll(runtime.NameSafe(kind), "_", "-") + "-" + runtime.ShortUUID(uuid)
}

// Factory starts (or adopts) a container.
func (r *Runtime) Factory(ctx context.Context, id string, opts network.GetOptions) (agent.Container, error) {
	return r.Runtime.Factory(ctx, id, opts)
}

// CommandLine is the systemd-nspawn command line of a container.
func (r *Runtime) CommandLine(machine string, env []string, hostDir string) []string {
	spec := r.Spec()
	args := []string{
		r.opts.Nspawn, "--quiet", "--keep-unit", "--register=yes",
		"--machine=" + machine, "--notify-ready=yes", "--kill-signal=SIGTERM",
	}
	if r.opts.Directory != "" {
		args = append(args, "--directory="+r.opts.Directory, "--ephemeral")
	} else {
		args = append(args, "--image="+r.opts.Image, "--ephemeral")
	}
	if r.opts.PrivateNetwork {
		args = append(args, "--private-network", "--bind="+hostDir+":"+InnerDir)
	}
	for _, b := range r.opts.Bind {
		args = append(args, "--bind="+b)
	}
	for _, kv := range env {
		args = append(args, "--setenv="+kv)
	}
	args = append(args, "--", spec.Command)
	return append(args, spec.Args...)
}

// Prepare implements transient.Launcher.
func (r *Runtime) Prepare(_ context.Context, id string, opts network.GetOptions) (transient.Launch, error) {
	spec := r.Spec()
	machine := MachineName(spec.Kind, id)
	hostPort, err := transient.FreePort(r.ListenHost())
	if err != nil {
		return transient.Launch{}, fmt.Errorf("container %s: %w", id, err)
	}
	labels := append(append([]string(nil), opts.Labels...), spec.Labels...)
	var inner []string
	var hostDir string
	if r.opts.PrivateNetwork {
		hostDir = filepath.Join(r.opts.StateDir, "machines", machine)
		if err := os.MkdirAll(hostDir, 0o755); err != nil {
			return transient.Launch{}, fmt.Errorf("container %s: relay directory: %w", id, err)
		}
		inner = runtime.ContainerEnv(spec, id, labels, opts.Extra, net.JoinHostPort("127.0.0.1", strconv.Itoa(r.opts.Port)))
		inner = append(inner, runtime.EnvRelay+"=unix:"+InnerDir+"/"+RelaySocket)
	} else {
		inner = runtime.ContainerEnv(spec, id, labels, opts.Extra, net.JoinHostPort(r.ListenHost(), strconv.Itoa(hostPort)))
	}
	l := r.launch(id, machine, hostDir, hostPort)
	l.ExecStart = r.CommandLine(machine, inner, hostDir)
	l.Environment = []string{
		runtime.EnvUUID + "=" + id, runtime.EnvKind + "=" + spec.Kind,
		envHostPort + "=" + strconv.Itoa(hostPort), "HULY_MACHINE=" + machine,
	}
	if err := r.openBridge(&l, hostDir, hostPort); err != nil {
		return transient.Launch{}, fmt.Errorf("container %s: %w", id, err)
	}
	return l, nil
}

// Resume implements transient.Launcher.
func (r *Runtime) Resume(_ context.Context, id, unit string, env map[string]string) (transient.Launch, error) {
	spec := r.Spec()
	machine := env["HULY_MACHINE"]
	if machine == "" {
		machine = MachineName(spec.Kind, id)
	}
	hostPort, err := strconv.Atoi(env[envHostPort])
	if err != nil {
		return transient.Launch{}, fmt.Errorf("unit %s: no usable %s in its environment", unit, envHostPort)
	}
	var hostDir string
	if r.opts.PrivateNetwork {
		hostDir = filepath.Join(r.opts.StateDir, "machines", machine)
	}
	l := r.launch(id, machine, hostDir, hostPort)
	if err := r.openBridge(&l, hostDir, hostPort); err != nil {
		return transient.Launch{}, fmt.Errorf("adopt %s: %w", unit, err)
	}
	return l, nil
}

func (r *Runtime) launch(id, machine, hostDir string, hostPort int) transient.Launch {
	return transient.Launch{
		Dial:          transient.DialAddr(r.ListenHost(), hostPort),
		AdvertiseHost: r.AdvertiseHost(),
		AdvertisePort: hostPort,
		BeforeStop: func(ctx context.Context) error {
			return r.opts.Machines.TerminateMachine(ctx, machine)
		},
	}
}

// openBridge starts the outer tier (host port → the relay socket) for a
// machine with a private network.
func (r *Runtime) openBridge(l *transient.Launch, hostDir string, hostPort int) error {
	if !r.opts.PrivateNetwork {
		return nil
	}
	listen := "tcp:" + net.JoinHostPort(r.ListenHost(), strconv.Itoa(hostPort))
	b, err := bridge.New(bridge.Options{
		Forwards: []bridge.Forward{{
			Name: filepath.Base(hostDir), Listen: listen, Target: "unix:" + filepath.Join(hostDir, RelaySocket),
			// The relay appears once the program is up; a client that
			// connects early waits for it.
			DialRetries: 10, DialTimeout: 2 * time.Second,
		}},
		DrainTimeout: time.Second,
		Log:          r.log,
	})
	if err != nil {
		return fmt.Errorf("bridge %s: %w", listen, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := b.Listen(ctx); err != nil {
		cancel()
		return fmt.Errorf("bridge %s: %w", listen, err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := b.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			r.log.WithError(err).Warn("bridge stopped")
		}
	}()
	l.Release = func() {
		cancel()
		wg.Wait()
	}
	return nil
}
