// Package agentd is the huly-agent daemon: an Agent that registers with a
// huly-network server and serves the containers of the kinds in its
// configuration, each through a runtime — builtin (Go code in the agent),
// process (a child process per container), transient (a systemd transient
// unit huly-c-<kind>-<short uuid>.service per container, over D-Bus) or
// nspawn (a systemd-nspawn machine huly-<kind>-<short uuid> per container).
//
// It lives beside package agent rather than in it because the runtimes
// import agent; Daemon is started in-process from a Config, and
// internal/daemon runs it for cmd/huly-agent.
package agentd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/agent/runtime"
	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/internal/version"
)

// Timings of the daemon.
const (
	// healthInterval is how often the agent pings its containers; a
	// crashed process without a restart policy is dropped within it.
	healthInterval = 2 * time.Second
	// CloseTimeout bounds unregistering and stopping process containers.
	CloseTimeout = 20 * time.Second
)

// Daemon is huly-agent's life cycle: READY once registered with the
// network; on Stop, process children are terminated and the agent
// unregisters, while transient units and nspawn machines keep running and
// are adopted (or stopped, when no longer wanted) at the next start.
type Daemon struct {
	cfg    *Config
	log    *logrus.Logger
	getenv func(string) string

	id     string
	a      *agent.Agent
	reg    runtime.Registry
	kinds  *builtKinds
	c      *client.Client
	cancel context.CancelFunc

	ready      chan struct{}
	failed     chan error
	registered atomic.Bool
	stopping   atomic.Bool
	stopOnce   sync.Once
}

// New returns the daemon of a validated configuration; getenv reads
// STATE_DIRECTORY (where the agent id is kept).
func New(cfg *Config, log *logrus.Logger, getenv func(string) string) *Daemon {
	return &Daemon{cfg: cfg, log: log, getenv: getenv, ready: make(chan struct{}), failed: make(chan error, 1)}
}

// Agent is the daemon's agent (nil before Start).
func (d *Daemon) Agent() *agent.Agent { return d.a }

// Start binds the agent's endpoint, builds the kinds' runtimes (adopting
// what an earlier agent left running) and starts registering.
func (d *Daemon) Start(ctx context.Context) error {
	cfg, log := d.cfg, d.log
	id, idFile, err := agentID(cfg, d.getenv)
	if err != nil {
		return err
	}
	d.id = id
	if cfg.AgentID == "" && idFile == "" {
		log.WithField("agent", id).Warn("no agent_id and no STATE_DIRECTORY: this id lasts until the agent stops")
	}
	listenHost, listenPort, _ := net.SplitHostPort(cfg.Listen)
	adv := advertised(cfg)
	endpointServer, err := endpointSecurity(cfg, d.getenv)
	if err != nil {
		return err
	}
	d.a, err = agent.New(agent.Options{
		EndpointServer: endpointServer,
		ID:             id,
		Endpoint:       net.JoinHostPort(adv, listenPort),
		Listen:         cfg.Listen,
		Labels:         cfg.Labels,
		HealthInterval: healthInterval,
		Logger:         log,
		Capacity:       cfg.capacity(),
	})
	if err != nil {
		return fmt.Errorf("start agent: %w", err)
	}
	d.kinds, err = buildKinds(ctx, cfg, kindEnv{
		agent: d.a, registry: &d.reg, listenHost: listenHost, advertiseHost: adv, log: log, getenv: d.getenv,
	})
	var secOpt client.Option
	if err == nil {
		secOpt, err = clientSecurity(cfg, log, d.getenv)
	}
	if err == nil {
		d.c, err = client.Dial(cfg.Network, client.WithLogger(log), secOpt)
		if err != nil {
			err = fmt.Errorf("network %s: %w", cfg.Network, err)
		}
	}
	if err != nil {
		d.close(context.Background())
		return err
	}
	log.WithFields(logrus.Fields{
		"agent": id, "network": cfg.Network, "listen": d.a.Addr().String(), "endpoint": d.a.EndpointRef(),
		"kinds": strings.Join(d.kinds.names, ","), "version": version.String(),
	}).Info("huly-agent registering with the network")
	actx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	go func() {
		if err := d.a.Attach(actx, d.c); err != nil {
			if actx.Err() == nil {
				d.failed <- fmt.Errorf("register with the network: %w", err)
			}
			return
		}
		d.registered.Store(true)
		log.WithField("agent", id).Info("huly-agent registered with the network")
		close(d.ready)
	}()
	return nil
}

// Ready is closed after the first registration, so that `systemctl start`
// returns once the network lists the agent.
func (d *Daemon) Ready() <-chan struct{} { return d.ready }

// Failed delivers a registration that failed for good.
func (d *Daemon) Failed() <-chan error { return d.failed }

// Status says whether the agent is registered and counts its containers
// by state ("registered; 3 running, 1 starting, 0 crashed").
func (d *Daemon) Status() string {
	state := "waiting for the network at " + d.cfg.Network
	switch {
	case d.stopping.Load():
		state = "stopping"
	case d.registered.Load() && !d.c.Connected():
		state = "network unreachable, retrying"
	case d.registered.Load():
		state = "registered"
	}
	return state + "; " + countsLine(d.reg.Counts())
}

// Stop terminates process containers and unregisters, leaving transient
// units and nspawn machines running.
func (d *Daemon) Stop(ctx context.Context) error {
	d.stopOnce.Do(func() {
		d.stopping.Store(true)
		d.log.Info("stopping: terminating process containers, leaving units and machines running")
		d.close(ctx)
	})
	return nil
}

// close lets go of what Start built, in the reverse order.
func (d *Daemon) close(ctx context.Context) {
	if d.cancel != nil {
		d.cancel()
	}
	if d.kinds != nil {
		d.kinds.detach()
	}
	if d.a != nil {
		cctx, cancel := context.WithTimeout(ctx, CloseTimeout)
		if err := d.a.Close(cctx); err != nil && !errors.Is(err, context.Canceled) {
			d.log.WithError(err).Warn("agent stopped with errors")
		}
		cancel()
	}
	if d.c != nil {
		cctx, cancel := context.WithTimeout(ctx, CloseTimeout)
		_ = d.c.Close(cctx) // the session ends either way; nothing left to report to
		cancel()
	}
	if d.kinds != nil {
		d.kinds.close()
	}
}

// Collectors are the agent's metrics.
func (d *Daemon) Collectors() []prometheus.Collector {
	return []prometheus.Collector{newContainersCollector(&d.reg, d.a)}
}

// countsLine is "3 running, 1 starting, 0 crashed" plus any other state
// that has containers.
func countsLine(counts map[runtime.State]int) string {
	parts := []string{
		strconv.Itoa(counts[runtime.Running]) + " running",
		strconv.Itoa(counts[runtime.Starting]) + " starting",
		strconv.Itoa(counts[runtime.Crashed]) + " crashed",
	}
	for _, st := range []runtime.State{runtime.Stopping, runtime.Stopped} {
		if n := counts[st]; n > 0 {
			parts = append(parts, strconv.Itoa(n)+" "+string(st))
		}
	}
	return strings.Join(parts, ", ")
}
