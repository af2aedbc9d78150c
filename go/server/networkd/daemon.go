// Package networkd is the life cycle of the network server as a daemon: its
// configuration, listeners (bound or passed by systemd), metrics, STATUS and
// SIGHUP reload, run by internal/daemon. Tests start it in-process from a
// Config, as cmd/huly-network does from its command line.
package networkd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/internal/daemon"
	"github.com/huly-net/huly-net/go/internal/version"
	"github.com/huly-net/huly-net/go/server"
	"github.com/huly-net/huly-net/go/transport"
)

// Daemon is the network server as a daemon.Service.
type Daemon struct {
	cfg       *Config
	srv       *server.Server
	activated net.Listener
	log       logrus.FieldLogger

	cancel  context.CancelFunc
	done    chan struct{} // closed when the server's Run returned
	runErr  error
	failed  chan error
	mu      sync.Mutex
	stopped bool
}

// New constructs the daemon from a validated configuration and the
// listener passed by systemd (nil: bind listen). Its errors (a bad key or
// authorized-keys file) are configuration problems.
func New(cfg *Config, activated net.Listener, getenv func(string) string, log *logrus.Logger) (*Daemon, error) {
	sec, err := loadSecurity(cfg, getenv, log)
	if err != nil {
		if activated != nil {
			_ = activated.Close()
		}
		return nil, daemon.Errorf("%w", err)
	}
	srv := server.New(server.Options{
		Security:            sec,
		AliveTimeout:        cfg.AliveTimeout.D(),
		UnusedTimeout:       cfg.UnusedTimeout.D(),
		PingInterval:        cfg.PingInterval.D(),
		MaxAliveTimeout:     cfg.MaxAliveTimeout.D(),
		MaxClientIDLen:      cfg.MaxClientIDLen,
		MaxDetachedSessions: cfg.MaxDetachedSessions,
		MaxInflight:         cfg.MaxInflight,
		KindLimits:          cfg.mustKindLimits(),
		MaxServerInflight:   cfg.MaxServerInflight,
		MaxSubscriptions:    cfg.MaxSubscriptions,
		Transport: transport.Options{
			MaxFrameSize:     cfg.MaxFrameSize,
			HandshakeTimeout: cfg.HandshakeTimeout.D(),
			SendQueue:        cfg.SendQueue,
			Logger:           log,

			MaxConnections:       cfg.Connections(),
			FirstMessageTimeout:  cfg.HelloTimeout.D(),
			FrameProgressTimeout: cfg.FrameProgressTimeout.D(),
			MaxBufferedBytes:     cfg.MaxBufferedBytes,
		},
		Logger: log,
	})
	return &Daemon{cfg: cfg, srv: srv, activated: activated, log: log, done: make(chan struct{}), failed: make(chan error, 1)}, nil
}

// Server is the network server the daemon runs.
func (d *Daemon) Server() *server.Server { return d.srv }

// Start binds the listener (or serves the one passed by systemd) and
// starts serving.
func (d *Daemon) Start(ctx context.Context) error {
	if ln := d.activated; ln != nil {
		if err := d.srv.Serve(ln); err != nil {
			_ = d.srv.Close()
			return fmt.Errorf("serve activated socket: %w", err)
		}
		d.log.WithField("listen", ln.Addr().String()).Info("serving the socket passed by systemd")
	} else if err := d.srv.Listen(d.cfg.Listen); err != nil {
		_ = d.srv.Close()
		return err
	}
	d.log.WithFields(logrus.Fields{
		"listen":                d.srv.Addr().String(),
		"server_id":             d.srv.ID(),
		"version":               version.Version,
		"alive_timeout":         d.cfg.AliveTimeout.D(),
		"max_alive_timeout":     d.cfg.MaxAliveTimeout.D(),
		"max_client_id_length":  d.cfg.MaxClientIDLen,
		"max_detached_sessions": d.cfg.MaxDetachedSessions,

		"max_connections":     d.cfg.Connections(),
		"max_server_inflight": d.cfg.MaxServerInflight,
		"max_subscriptions":   d.cfg.MaxSubscriptions,
	}).Info("huly-network listening")
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.cancel = cancel
	go func() {
		err := d.srv.Run(runCtx, d.cfg.ShutdownTimeout.D())
		d.runErr = err
		close(d.done)
		d.mu.Lock()
		defer d.mu.Unlock()
		if !d.stopped {
			d.failed <- fmt.Errorf("server stopped: %w", err)
		}
	}()
	return nil
}

// Ready is nil: the server is ready once it listens.
func (d *Daemon) Ready() <-chan struct{} { return nil }

// Failed delivers the error of a server that stopped on its own.
func (d *Daemon) Failed() <-chan error { return d.failed }

// Status counts clients, agents and containers; it blocks while the
// network core is stuck, which withholds the watchdog.
func (d *Daemon) Status() string {
	st := d.srv.Stats()
	return fmt.Sprintf("%d clients, %d agents, %d containers", st.RPC.Clients, st.Network.Agents, st.Network.Containers)
}

// Stop finishes the requests in flight within shutdown_timeout.
func (d *Daemon) Stop(ctx context.Context) error {
	d.mu.Lock()
	d.stopped = true
	d.mu.Unlock()
	if d.cancel == nil { // never started
		return d.srv.Close()
	}
	d.log.Info("stopping: finishing requests in flight")
	d.cancel()
	select {
	case <-d.done:
	case <-ctx.Done():
		_ = d.srv.Close()
		return ctx.Err()
	}
	if d.runErr != nil && !errors.Is(d.runErr, context.DeadlineExceeded) && !errors.Is(d.runErr, context.Canceled) {
		return fmt.Errorf("shutdown: %w", d.runErr)
	}
	return nil
}

// Collectors are the server's metrics: counters, per-kind counts and
// limits, and security.
func (d *Daemon) Collectors() []prometheus.Collector {
	return append([]prometheus.Collector{newStatsCollector(d.srv), newKindCollector(d.srv)}, d.srv.SecurityCollectors()...)
}

// Reload reads the authorized keys again and names the settings (other
// than logging, which the runner applied) that need a restart.
func (d *Daemon) Reload(next daemon.Config) error {
	n, ok := next.(*Config)
	if !ok {
		return fmt.Errorf("reload: unexpected configuration %T", next)
	}
	a, b := *d.cfg, *n
	a.Base, b.Base = daemon.Base{}, daemon.Base{}
	if !reflect.DeepEqual(a, b) {
		d.log.Warn("configuration changes other than log_level and log_format take effect after a restart")
	}
	reloadKeys(d.srv, d.log)
	return nil
}
