package bridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/internal/config"
	"github.com/huly-net/huly-net/go/internal/daemon"
)

// Config is the huly-bridge daemon's configuration. The connection settings
// at the top level are the defaults of every forward; a forward that sets
// one in the file keeps its own.
type Config struct {
	Forwards       config.Named[ForwardConfig] `json:"forwards" flag:"forward" inherit:"true" usage:"forward NAME=LISTEN,TARGET (repeatable; LISTEN empty for a socket-activated listener named NAME)"`
	DrainTimeout   config.Duration             `json:"drain_timeout" usage:"after SIGTERM, how long active connections may finish"`
	MaxConnections int                         `json:"max_connections" usage:"per-forward limit of concurrent connections (0: none)"`
	IdleTimeout    config.Duration             `json:"idle_timeout" usage:"close connections idle this long (0: never)"`
	DialTimeout    config.Duration             `json:"dial_timeout" usage:"timeout of each connection attempt to a target"`
	DialRetries    int                         `json:"dial_retries" usage:"attempts after a failed dial before the client is closed"`
	DialBackoff    config.Duration             `json:"dial_backoff" usage:"wait before the first dial retry, doubled after each (at most 2s)"`
	daemon.Base
}

// ForwardConfig is one forward in the configuration (forwards.NAME).
type ForwardConfig struct {
	Listen         string          `json:"listen"`
	Target         string          `json:"target"`
	MaxConnections int             `json:"max_connections"`
	IdleTimeout    config.Duration `json:"idle_timeout"`
	DialTimeout    config.Duration `json:"dial_timeout"`
	DialRetries    int             `json:"dial_retries"`
	DialBackoff    config.Duration `json:"dial_backoff"`
}

// ParseSpec reads LISTEN,TARGET (LISTEN may be empty), the form of
// --forward NAME=LISTEN,TARGET and of HULY_FORWARDS entries.
func (f *ForwardConfig) ParseSpec(s string) error {
	listen, target, ok := strings.Cut(s, ",")
	if !ok || target == "" {
		return errors.New("want NAME=LISTEN,TARGET (LISTEN empty for a socket-activated listener)")
	}
	f.Listen, f.Target = listen, target
	return nil
}

// DefaultConfig returns the configuration's defaults.
func DefaultConfig() *Config {
	return &Config{
		DrainTimeout:   config.Duration(DefaultDrainTimeout),
		MaxConnections: 4096,
		DialTimeout:    config.Duration(DefaultDialTimeout),
		DialRetries:    5,
		DialBackoff:    config.Duration(DefaultDialBackoff),
		Base:           daemon.DefaultBase(),
	}
}

// ForwardList is the forwards in the order of the configuration.
func (c *Config) ForwardList() []Forward {
	var out []Forward
	c.Forwards.Each(func(name string, f *ForwardConfig) {
		out = append(out, Forward{
			Name: name, Listen: f.Listen, Target: f.Target,
			MaxConnections: f.MaxConnections, IdleTimeout: f.IdleTimeout.D(),
			DialTimeout: f.DialTimeout.D(), DialRetries: f.DialRetries, DialBackoff: f.DialBackoff.D(),
		})
	})
	return out
}

// Validate checks the configuration; errors name the key or the forward.
func (c *Config) Validate() error {
	var errs []error
	if c.DrainTimeout < 0 {
		errs = append(errs, fmt.Errorf("drain_timeout %s is negative", c.DrainTimeout))
	}
	if c.Forwards.Len() == 0 {
		errs = append(errs, errors.New("no forwards: give --forward NAME=LISTEN,TARGET or a config file with \"forwards\""))
	}
	for _, fw := range c.ForwardList() {
		// Listen may be empty here: whether a socket-activated listener
		// stands in for it is known only at start-up.
		if err := fw.Validate(true); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Daemon is huly-bridge's life cycle, run by internal/daemon.
type Daemon struct {
	cfg      *Config
	log      logrus.FieldLogger
	b        *Bridge
	stopping atomic.Bool
	stopRun  context.CancelFunc
	runDone  chan struct{}
	stopOnce sync.Once
}

// NewDaemon builds the daemon from its configuration; activated are the
// listeners systemd passed, by name (see AssignListeners).
func NewDaemon(cfg *Config, activated map[string][]net.Listener, log logrus.FieldLogger) (*Daemon, error) {
	fws := cfg.ForwardList()
	listeners, err := AssignListeners(fws, activated)
	if err != nil {
		closeAll(activated)
		return nil, err
	}
	b, err := New(Options{Forwards: fws, Listeners: listeners, DrainTimeout: cfg.DrainTimeout.D(), Log: log})
	if err != nil {
		closeAll(activated)
		return nil, err
	}
	return &Daemon{cfg: cfg, log: log, b: b, runDone: make(chan struct{})}, nil
}

func closeAll(ls map[string][]net.Listener) {
	for _, l := range ls {
		for _, ln := range l {
			_ = ln.Close()
		}
	}
}

// Bridge is the forwarder the daemon runs.
func (d *Daemon) Bridge() *Bridge { return d.b }

// Start binds every forward's listener and starts accepting.
func (d *Daemon) Start(ctx context.Context) error {
	if err := d.b.Listen(ctx); err != nil {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_ = d.b.Run(cctx) // closes whatever was opened
		close(d.runDone)
		return fmt.Errorf("cannot listen: %w", err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	d.stopRun = stop
	go func() {
		defer close(d.runDone)
		_ = d.b.Run(runCtx) // Listen succeeded, so Run cannot fail
	}()
	return nil
}

// Ready: the bridge is ready once it listens.
func (d *Daemon) Ready() <-chan struct{} { return nil }

// Failed: a listening bridge does not fail on its own.
func (d *Daemon) Failed() <-chan error { return nil }

// Stop closes the listeners and lets active connections finish, up to the
// drain timeout (then the bridge closes them).
func (d *Daemon) Stop(ctx context.Context) error {
	d.stopOnce.Do(func() {
		d.stopping.Store(true)
		d.log.WithFields(logrus.Fields{"active": d.active(), "drain_timeout": d.cfg.DrainTimeout.String()}).Info("stopping: no new connections")
		if d.stopRun != nil {
			d.stopRun()
		}
	})
	select {
	case <-d.runDone:
		return nil
	case <-ctx.Done():
		d.b.Abort()
		return ctx.Err()
	}
}

// Abort closes every connection at once.
func (d *Daemon) Abort() { d.b.Abort() }

// Collectors are the bridge's metrics.
func (d *Daemon) Collectors() []prometheus.Collector {
	return []prometheus.Collector{NewCollector(d.b)}
}

func (d *Daemon) active() int64 {
	var n int64
	for _, s := range d.b.Stats() {
		n += s.ActiveConnections
	}
	return n
}

// Status is the one-line STATUS=: forwards, active connections, and the
// targets that are unreachable and since when.
func (d *Daemon) Status() string {
	if d.stopping.Load() {
		return fmt.Sprintf("stopping: draining %d connections", d.active())
	}
	stats := d.b.Stats()
	var active int64
	var down []string
	for _, s := range stats {
		active += s.ActiveConnections
		if s.TargetState == TargetUnreachable {
			down = append(down, fmt.Sprintf("%s (%s) since %s", s.Name, s.Target, s.TargetSince.UTC().Format(time.RFC3339)))
		}
	}
	msg := fmt.Sprintf("%d forwards, %d active connections", len(stats), active)
	if len(down) > 0 {
		msg += "; unreachable: " + strings.Join(down, ", ")
	}
	return msg
}

// AssignListeners maps socket-activated listeners to forwards by name. An
// unnamed socket (LISTEN_FD_n) goes to the one forward without a listen
// address when there is exactly one such; anything left over is an error.
func AssignListeners(fws []Forward, activated map[string][]net.Listener) (map[string][]net.Listener, error) {
	out := map[string][]net.Listener{}
	known := map[string]bool{}
	var noListen []string
	for _, f := range fws {
		known[f.Name] = true
		if l := activated[f.Name]; len(l) > 0 {
			out[f.Name] = l
		} else if f.Listen == "" {
			noListen = append(noListen, f.Name)
		}
	}
	var unnamed, unknown []string
	for name := range activated {
		switch {
		case known[name]:
		case strings.HasPrefix(name, "LISTEN_FD_"):
			unnamed = append(unnamed, name)
		default:
			unknown = append(unknown, name)
		}
	}
	sort.Strings(unknown)
	if len(unknown) > 0 {
		return nil, fmt.Errorf("socket-activated listener(s) %s match no forward (FileDescriptorName= must be a forward's name)", strings.Join(unknown, ", "))
	}
	if len(unnamed) > 0 {
		if len(unnamed) == 1 && len(noListen) == 1 {
			out[noListen[0]] = activated[unnamed[0]]
			noListen = nil
		} else {
			return nil, fmt.Errorf("%d unnamed socket-activated listener(s) for %d forward(s) without listen; name them with FileDescriptorName=", len(unnamed), len(noListen))
		}
	}
	if len(noListen) > 0 {
		return nil, fmt.Errorf("forward(s) %s: listen is required (no socket-activated listener of that name)", strings.Join(noListen, ", "))
	}
	return out, nil
}
