// Package transient is huly-agent's transient runtime: each container is a
// systemd transient unit, huly-c-<kind>-<short uuid>.service, started over
// D-Bus with Type=notify (systemd waits for the program's READY=1), the
// kind's command, its environment and unit_properties. systemd supervises
// the program (Restart=on-failure when the kind asks for it, sandboxing,
// resource limits), so a container outlives an agent restart: at start the
// agent lists the huly-c-<kind>-* units, adopts those that a get claims (a
// pinned container, or a reference that follows its container back) and
// stops those that nobody claims within the kind's unused timeout (at
// least AdoptGrace).
//
// The agent follows each unit by polling its state (ActiveState/SubState)
// every PollInterval, bounded per call: active is running, activating is
// starting (auto-restart: crashed, waiting for systemd's restart),
// deactivating is stopping, inactive or failed is the end of the
// container. The nspawn runtime reuses all of this with a Launcher that
// runs systemd-nspawn in the unit.
//
// Everything that talks to systemd goes through the Units interface, so
// the naming, adoption decisions and state transitions are tested without
// a bus.
package transient

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/agent/runtime"
	"github.com/huly-net/huly-net/go/network"
)

// Defaults.
const (
	DefaultPollInterval = time.Second
	// AdoptGrace is the least time a unit found at start is kept for a get
	// to claim it: clients re-get after the agent is back, with backoff.
	AdoptGrace     = 30 * time.Second
	busCallTimeout = 5 * time.Second
)

// UnitPrefix starts the name of every container unit.
const UnitPrefix = "huly-c-"

// Launch is how one container runs in its unit.
type Launch struct {
	// ExecStart is the command line of the unit.
	ExecStart []string
	// Environment is the unit's Environment=; it carries
	// HULY_CONTAINER_UUID and HULY_CONTAINER_KIND, by which a unit is
	// recognised at adoption.
	Environment []string
	// Properties are added to the unit (after the common ones).
	Properties []sddbus.Property
	// Dial is the endpoint's HOST:PORT as the agent reaches it;
	// AdvertiseHost and AdvertisePort as clients do.
	Dial          string
	AdvertiseHost string
	AdvertisePort int
	// BeforeStop runs before the unit is stopped (nspawn: terminate the
	// machine through machined); Release after the container ends for good
	// (nspawn: the host side of the bridge). Both may be nil.
	BeforeStop func(ctx context.Context) error
	Release    func()
}

// Launcher makes a container's Launch. The transient runtime's own runs
// the kind's command with HULY_LISTEN on a free port of the agent's host.
type Launcher interface {
	// Prepare is for a new container.
	Prepare(ctx context.Context, uuid string, opts network.GetOptions) (Launch, error)
	// Resume is for a container adopted from its unit's environment.
	Resume(ctx context.Context, uuid, unit string, env map[string]string) (Launch, error)
}

// Options configure the runtime of one kind.
type Options struct {
	Spec           runtime.Spec
	UnitProperties map[string]string
	ListenHost     string
	AdvertiseHost  string
	Registry       *runtime.Registry
	Refresh        func()
	Logger         logrus.FieldLogger
	Units          Units
	// PollInterval is how often a unit's state is read; default 1 s.
	PollInterval time.Duration
	// Runtime is the name in container records; default "transient".
	Runtime string
	// Launcher; default the transient runtime's own.
	Launcher Launcher
}

// Runtime serves the containers of one kind as transient units.
type Runtime struct {
	opts     Options
	spec     runtime.Spec
	props    []sddbus.Property
	log      logrus.FieldLogger
	launcher Launcher
	detached atomic.Bool

	mu      sync.Mutex
	found   map[string]string // uuid → unit, found at start and not yet claimed
	reaping bool
	stop    chan struct{}
	wg      sync.WaitGroup
}

// New checks the options (unit properties are parsed here, so a bad one
// is a configuration error) and returns the runtime.
func New(opts Options) (*Runtime, error) {
	spec := opts.Spec.WithDefaults()
	if spec.Command == "" {
		return nil, fmt.Errorf("kind %s: the %s runtime needs a command", spec.Kind, orDefault(opts.Runtime, runtime.Transient))
	}
	if opts.Units == nil {
		return nil, fmt.Errorf("kind %s: no connection to systemd", spec.Kind)
	}
	props, err := ParseProperties(opts.UnitProperties)
	if err != nil {
		return nil, fmt.Errorf("kinds.%s.unit_properties: %w", spec.Kind, err)
	}
	if opts.ListenHost == "" {
		opts.ListenHost = "127.0.0.1"
	}
	if opts.AdvertiseHost == "" {
		opts.AdvertiseHost = opts.ListenHost
	}
	if opts.Registry == nil {
		opts.Registry = &runtime.Registry{}
	}
	if opts.Logger == nil {
		opts.Logger = logrus.StandardLogger()
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	opts.Runtime = orDefault(opts.Runtime, runtime.Transient)
	r := &Runtime{
		opts: opts, spec: spec, props: props,
		log:   opts.Logger.WithFields(logrus.Fields{"kind": spec.Kind, "runtime": opts.Runtime}),
		found: map[string]string{}, stop: make(chan struct{}),
	}
	r.launcher = opts.Launcher
	if r.launcher == nil {
		r.launcher = &commandLauncher{r: r}
	}
	return r, nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// UnitName is the unit of container uuid: huly-c-<kind>-<short uuid>.service.
func UnitName(kind, uuid string) string {
	return UnitPrefix + runtime.NameSafe(kind) + "-" + runtime.ShortUUID(uuid) + ".service"
}

// Spec is the kind's configuration with defaults.
func (r *Runtime) Spec() runtime.Spec { return r.spec }

// ListenHost and AdvertiseHost are the hosts of the kind's endpoints.
func (r *Runtime) ListenHost() string    { return r.opts.ListenHost }
func (r *Runtime) AdvertiseHost() string { return r.opts.AdvertiseHost }

// Adopt lists the units of this kind that an earlier agent left running
// and keeps them for a get to claim; those not claimed within the unused
// timeout (at least AdoptGrace) are stopped. Failed units are reset.
func (r *Runtime) Adopt(ctx context.Context) error {
	pattern := UnitPrefix + runtime.NameSafe(r.spec.Kind) + "-*.service"
	units, err := r.opts.Units.List(ctx, pattern)
	if err != nil {
		return err
	}
	for _, u := range units {
		env, err := r.opts.Units.Environment(ctx, u.Name)
		if err != nil {
			r.log.WithError(err).WithField("unit", u.Name).Warn("cannot read a container unit; leaving it alone")
			continue
		}
		m := envMap(env)
		// The name pattern of kind "a" also matches kind "a-b": the
		// environment says whose unit it is.
		if m[runtime.EnvKind] != r.spec.Kind || m[runtime.EnvUUID] == "" {
			continue
		}
		switch u.ActiveState {
		case "active", "activating", "reloading":
			r.mu.Lock()
			r.found[m[runtime.EnvUUID]] = u.Name
			r.mu.Unlock()
			r.log.WithFields(logrus.Fields{"unit": u.Name, "container": m[runtime.EnvUUID]}).Info("found a running container unit; waiting for a get to adopt it")
		case "failed":
			_ = r.opts.Units.ResetFailed(ctx, u.Name)
		}
	}
	r.mu.Lock()
	if len(r.found) > 0 && !r.reaping {
		r.reaping = true
		r.wg.Add(1)
		go r.reap(max(r.spec.UnusedTimeout, AdoptGrace))
	}
	r.mu.Unlock()
	return nil
}

// Found lists the units found at start and not claimed yet, by uuid.
func (r *Runtime) Found() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]string, len(r.found))
	for k, v := range r.found {
		out[k] = v
	}
	return out
}

// reap stops the units nobody claimed after grace.
func (r *Runtime) reap(grace time.Duration) {
	defer r.wg.Done()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-r.stop:
		return
	case <-t.C:
	}
	r.ReapNow()
}

// ReapNow stops every unit found at start that no get claimed.
func (r *Runtime) ReapNow() {
	if r.detached.Load() {
		return
	}
	r.mu.Lock()
	left := r.found
	r.found = map[string]string{}
	r.mu.Unlock()
	for id, unit := range left {
		r.log.WithFields(logrus.Fields{"unit": unit, "container": id}).Info("stopping a container unit nobody claimed")
		ctx, cancel := context.WithTimeout(context.Background(), r.spec.StopTimeout+busCallTimeout)
		if l, err := r.resume(ctx, id, unit); err == nil {
			if l.BeforeStop != nil {
				_ = l.BeforeStop(ctx)
			}
			if l.Release != nil {
				l.Release()
			}
		}
		if err := r.opts.Units.Stop(ctx, unit); err != nil {
			r.log.WithError(err).WithField("unit", unit).Warn("stop unclaimed container unit")
		}
		cancel()
	}
}

func (r *Runtime) resume(ctx context.Context, id, unit string) (Launch, error) {
	env, err := r.opts.Units.Environment(ctx, unit)
	if err != nil {
		return Launch{}, err
	}
	return r.launcher.Resume(ctx, id, unit, envMap(env))
}

// Detach lets the containers outlive the agent: from now on Terminate
// only lets go of them (the agent is stopping).
func (r *Runtime) Detach() {
	r.detached.Store(true)
	r.mu.Lock()
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// Factory starts (or adopts) the container uuid; it returns once the unit
// is active, which for Type=notify means the program sent READY=1.
func (r *Runtime) Factory(ctx context.Context, id string, opts network.GetOptions) (agent.Container, error) {
	st := runtime.NewStatus(id, r.spec.Kind, r.opts.Runtime, r.spec.IsPinned(id))
	if err := r.opts.Registry.Add(st, r.spec.MaxInstances); err != nil {
		return nil, err
	}
	c, err := r.start(ctx, st, id, opts)
	if err != nil {
		r.opts.Registry.Remove(st)
		return nil, err
	}
	return c, nil
}

func (r *Runtime) start(ctx context.Context, st *runtime.Status, id string, opts network.GetOptions) (*Container, error) {
	unit := UnitName(r.spec.Kind, id)
	log := r.log.WithFields(logrus.Fields{"container": id, "unit": unit})
	r.mu.Lock()
	foundUnit, adopt := r.found[id]
	delete(r.found, id)
	r.mu.Unlock()

	var launch Launch
	var err error
	if adopt {
		unit = foundUnit
		cctx, cancel := context.WithTimeout(ctx, busCallTimeout)
		launch, err = r.resume(cctx, id, unit)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("adopt %s: %w", unit, err)
		}
		log.Info("adopted a running container unit")
	} else {
		cctx, cancel := context.WithTimeout(ctx, busCallTimeout)
		cur, err := r.opts.Units.State(cctx, unit)
		if err == nil && cur.ActiveState == "failed" {
			_ = r.opts.Units.ResetFailed(cctx, unit)
		}
		cancel()
		if err == nil && cur.ActiveState != "" && cur.ActiveState != "inactive" && cur.ActiveState != "failed" {
			return nil, fmt.Errorf("container %s: unit %s is already %s (another container with the same short uuid?)", id, unit, cur.ActiveState)
		}
		launch, err = r.launcher.Prepare(ctx, id, opts)
		if err != nil {
			return nil, err
		}
		props := r.unitProperties(id, launch)
		sctx, cancel := context.WithTimeout(ctx, r.spec.StartTimeout+busCallTimeout)
		err = r.opts.Units.StartTransient(sctx, unit, props)
		cancel()
		if err != nil {
			fctx, fcancel := context.WithTimeout(context.Background(), r.spec.StopTimeout+busCallTimeout)
			state, _ := r.opts.Units.State(fctx, unit)
			_ = r.opts.Units.Stop(fctx, unit)
			_ = r.opts.Units.ResetFailed(fctx, unit)
			fcancel()
			if launch.Release != nil {
				launch.Release()
			}
			return nil, fmt.Errorf("container %s: unit %s did not start (%s/%s; see journalctl -u %s): %w", id, unit, state.ActiveState, state.SubState, unit, err)
		}
		log.Info("container unit started")
	}
	proxy, err := runtime.NewProxy(launch.Dial, launch.AdvertiseHost, launch.AdvertisePort, log)
	if err != nil {
		if launch.Release != nil {
			launch.Release()
		}
		return nil, err
	}
	c := &Container{
		Proxy: proxy, Status: st, rt: r, unit: unit, launch: launch, log: log,
		stopFollow: make(chan struct{}), done: make(chan struct{}),
	}
	st.Set(runtime.Running)
	if r.opts.Refresh != nil {
		st.OnChange(r.opts.Refresh)
	}
	c.followWG.Add(1)
	go c.follow()
	return c, nil
}

// unitProperties are the properties of a new container's unit.
func (r *Runtime) unitProperties(id string, l Launch) []sddbus.Property {
	props := []sddbus.Property{
		sddbus.PropDescription(fmt.Sprintf("Huly container %s (kind %s)", id, r.spec.Kind)),
		sddbus.PropType("notify"),
		sddbus.PropExecStart(l.ExecStart, true),
		{Name: "Environment", Value: godbus.MakeVariant(l.Environment)},
		// A failed unit is garbage-collected, so its name can be reused.
		{Name: "CollectMode", Value: godbus.MakeVariant("inactive-or-failed")},
		{Name: "TimeoutStartUSec", Value: godbus.MakeVariant(uint64(r.spec.StartTimeout / time.Microsecond))},
		{Name: "TimeoutStopUSec", Value: godbus.MakeVariant(uint64(r.spec.StopTimeout / time.Microsecond))},
	}
	if r.spec.Restart == runtime.RestartOnFailure {
		props = append(props,
			sddbus.Property{Name: "Restart", Value: godbus.MakeVariant("on-failure")},
			sddbus.Property{Name: "RestartUSec", Value: godbus.MakeVariant(uint64(r.spec.RestartBackoff / time.Microsecond))},
		)
	}
	props = append(props, l.Properties...)
	return append(props, r.props...)
}

// commandLauncher runs the kind's command directly in the unit.
type commandLauncher struct{ r *Runtime }

func (l *commandLauncher) Prepare(_ context.Context, id string, opts network.GetOptions) (Launch, error) {
	r := l.r
	port, err := FreePort(r.opts.ListenHost)
	if err != nil {
		return Launch{}, fmt.Errorf("container %s: %w", id, err)
	}
	listen := net.JoinHostPort(r.opts.ListenHost, strconv.Itoa(port))
	return Launch{
		ExecStart:     append([]string{r.spec.Command}, r.spec.Args...),
		Environment:   runtime.ContainerEnv(r.spec, id, mergeLabels(opts.Labels, r.spec.Labels), opts.Extra, listen),
		Dial:          DialAddr(r.opts.ListenHost, port),
		AdvertiseHost: r.opts.AdvertiseHost,
		AdvertisePort: port,
	}, nil
}

func (l *commandLauncher) Resume(_ context.Context, id, unit string, env map[string]string) (Launch, error) {
	_, p, err := net.SplitHostPort(env[runtime.EnvListen])
	port, perr := strconv.Atoi(p)
	if err != nil || perr != nil {
		return Launch{}, fmt.Errorf("unit %s: no usable %s in its environment", unit, runtime.EnvListen)
	}
	return Launch{Dial: DialAddr(l.r.opts.ListenHost, port), AdvertiseHost: l.r.opts.AdvertiseHost, AdvertisePort: port}, nil
}

// FreePort returns a port of host that was free a moment ago.
func FreePort(host string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", host, err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	return port, nil
}

// DialAddr is how the agent reaches a port bound on host.
func DialAddr(host string, port int) string {
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

func mergeLabels(a, b []string) []string {
	out := append([]string(nil), a...)
	for _, l := range b {
		found := false
		for _, x := range out {
			if x == l {
				found = true
				break
			}
		}
		if !found {
			out = append(out, l)
		}
	}
	return out
}

func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// Container is a container served by a transient unit.
type Container struct {
	*runtime.Proxy
	*runtime.Status
	rt     *Runtime
	unit   string
	launch Launch
	log    logrus.FieldLogger

	terminating atomic.Bool
	stopFollow  chan struct{}
	followWG    sync.WaitGroup
	done        chan struct{} // the unit ended for good
	doneOnce    sync.Once
}

var _ agent.DirectEndpoint = (*Container)(nil)
var _ agent.StatusReporter = (*Container)(nil)

// Unit is the container's unit name.
func (c *Container) Unit() string { return c.unit }

// follow polls the unit's state until the container ends.
func (c *Container) follow() {
	defer c.followWG.Done()
	t := time.NewTicker(c.rt.opts.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stopFollow:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), busCallTimeout)
		u, err := c.rt.opts.Units.State(ctx, c.unit)
		cancel()
		if err != nil {
			c.log.WithError(err).Debug("read unit state")
			continue
		}
		if c.Observe(u) {
			return
		}
	}
}

// Observe applies a unit state to the container; it reports whether the
// container has ended for good.
func (c *Container) Observe(u UnitInfo) bool {
	if c.terminating.Load() {
		return false
	}
	prev := c.State()
	switch u.ActiveState {
	case "active", "reloading":
		if prev == runtime.Crashed || prev == runtime.Starting {
			c.Restarted()
		}
		c.Set(runtime.Running)
	case "activating":
		if u.SubState == "auto-restart" {
			if prev != runtime.Crashed {
				c.log.Warn("container unit failed; systemd restarts it")
				c.Crashed("unit " + c.unit + " failed, restarting")
			}
		} else {
			c.Set(runtime.Starting)
		}
	case "deactivating":
		c.Set(runtime.Stopping)
	case "inactive", "failed", "":
		c.log.WithField("state", u.ActiveState+"/"+u.SubState).Warn("container unit ended")
		c.Crashed("unit " + c.unit + " " + orDefault(u.ActiveState, "gone"))
		c.end()
		return true
	}
	return false
}

func (c *Container) end() {
	c.doneOnce.Do(func() {
		close(c.done)
		if c.launch.Release != nil {
			c.launch.Release()
		}
		c.rt.opts.Registry.Remove(c.Status)
	})
}

// Ping fails once the unit has ended.
func (c *Container) Ping(context.Context) error {
	select {
	case <-c.done:
		return fmt.Errorf("container %s: unit %s ended", c.UUID(), c.unit)
	default:
		return nil
	}
}

// Terminate stops the unit, unless the agent is stopping: then the unit
// keeps running for the next agent to adopt.
func (c *Container) Terminate(ctx context.Context) error {
	if c.terminating.Swap(true) {
		return nil
	}
	close(c.stopFollow)
	c.followWG.Wait()
	cctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_ = c.Proxy.Close(cctx)
	cancel()
	if c.rt.detached.Load() {
		c.log.Info("leaving the container unit running for the next agent")
		c.rt.opts.Registry.Remove(c.Status)
		return nil
	}
	c.Set(runtime.Stopping)
	var errs []error
	if c.launch.BeforeStop != nil {
		if err := c.launch.BeforeStop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.rt.opts.Units.Stop(ctx, c.unit); err != nil {
		errs = append(errs, err)
	}
	_ = c.rt.opts.Units.ResetFailed(ctx, c.unit)
	c.end()
	if len(errs) > 0 {
		return fmt.Errorf("terminate container %s: %v", c.UUID(), errs)
	}
	c.Set(runtime.Stopped)
	return nil
}
