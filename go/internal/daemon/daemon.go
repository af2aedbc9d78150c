// Package daemon is the one runner of the huly-net daemons. A daemon is a
// Service built from its configuration; Main turns a command line into that
// configuration and Run drives the service the way systemd expects:
//
//   - SIGTERM or SIGINT: STOPPING=1, then Stop within the drain bound; a
//     second signal aborts what is left (when the service can);
//   - SIGHUP: RELOADING=1, the configuration read again, logging settings
//     applied (and the rest given to a service that can reload), READY=1;
//   - READY=1 once the service is ready, STATUS= its one-line status every
//     second (when it changed), WATCHDOG=1 while the main loop answers;
//   - the metrics and pprof listeners beside the service;
//   - exit status 0 after a clean stop, 1 for a runtime failure, 2 for a
//     configuration problem (including a listen address that cannot be
//     valid).
package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/internal/systemd"
)

// Exit statuses.
const (
	ExitOK      = 0
	ExitFailure = 1 // a runtime failure: a listener could not be bound, the service failed
	ExitConfig  = 2 // bad flags, configuration or environment
)

// Service is a daemon's life cycle. Run calls Start once, then Status from
// its main loop, and Stop once.
type Service interface {
	// Start binds the listeners and starts serving. When it fails it has
	// released what it opened; the daemon exits with status 1.
	Start(ctx context.Context) error
	// Ready is closed when the service may announce READY=1 (nil: as soon as
	// Start returned).
	Ready() <-chan struct{}
	// Failed delivers an error when the service stops serving on its own.
	Failed() <-chan error
	// Status is the one-line STATUS= an operator reads.
	Status() string
	// Stop stops accepting work and drains what is in flight, giving up
	// at the end of ctx.
	Stop(ctx context.Context) error
}

// Aborter is a Service that can end its drain at once (a second SIGTERM).
type Aborter interface{ Abort() }

// Reloader is a Service that applies a new configuration on SIGHUP.
type Reloader interface {
	Reload(next Config) error
}

// Collector is a Service with Prometheus metrics of its own.
type Collector interface {
	Collectors() []prometheus.Collector
}

// RunOptions are the runner's settings of one daemon.
type RunOptions struct {
	Name  string
	Log   *logrus.Logger
	Base  *Base
	Drain time.Duration // bound of Stop; the runner adds a little for closing
	// Reload reads the configuration again for SIGHUP (nil: not supported).
	Reload func() (Config, error)
	// Current is the configuration in force, compared with a reloaded one.
	Current Config
}

// statusInterval is how often STATUS= is recomputed; it is sent only when it
// changed, so a change shows within a second without a stream of
// identical datagrams.
const statusInterval = time.Second

// closeGrace is what Stop gets beyond the drain bound for closing up.
const closeGrace = 5 * time.Second

// Run starts svc and serves until a signal stops it or it fails; it returns
// the exit status. Signals are caught from the start, so a SIGHUP before
// READY=1 does not end the process.
func Run(svc Service, o RunOptions) int {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := svc.Start(ctx); err != nil {
		o.Log.WithError(err).Errorf("%s failed to start", o.Name)
		return ExitFailure
	}
	side, err := startSide(svc, o.Base, o.Log)
	if err != nil {
		o.Log.WithError(err).Errorf("%s failed to start", o.Name)
		stopNow(svc)
		return ExitFailure
	}
	defer side.stop()
	l := &loop{svc: svc, o: o, log: o.Log, notifier: systemd.NewNotifier(o.Log), cancelStop: func() {}}
	defer func() { l.cancelStop() }()
	return l.run(ctx, sigs)
}

// loop is Run's main loop and its state.
type loop struct {
	svc        Service
	o          RunOptions
	log        *logrus.Logger
	notifier   *systemd.Notifier
	lastStatus string
	ready      bool

	stopped      chan error // set once a stop began
	stopDeadline <-chan time.Time
	cancelStop   context.CancelFunc
}

func (l *loop) run(ctx context.Context, sigs <-chan os.Signal) int {
	wd := l.notifier.StartLoopWatchdog(ctx)
	defer wd.Stop()
	ready := l.svc.Ready()
	if ready == nil {
		ready = closed // READY=1 comes first, then STATUS=
	} else {
		l.status()
	}
	tick := time.NewTicker(statusInterval)
	defer tick.Stop()
	failed := l.svc.Failed()
	for {
		select {
		case <-ready:
			ready, l.ready = nil, true
			l.notifier.Ready()
			l.lastStatus = "" // STATUS= follows READY=1 even when unchanged
			l.status()
			l.log.Infof("%s ready", l.o.Name)
		case ack := <-wd.Ping():
			_ = l.svc.Status() // a service that cannot answer withholds the ping
			close(ack)
		case <-tick.C:
			l.status()
		case err := <-failed:
			failed = nil
			if l.stopped != nil {
				continue // failures while stopping are Stop's to report
			}
			l.log.WithError(err).Errorf("%s failed", l.o.Name)
			l.notifier.Stopping()
			stopNow(l.svc)
			return ExitFailure
		case sig := <-sigs:
			l.signal(sig)
		case err := <-l.stopped:
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				l.log.WithError(err).Errorf("%s stopped with errors", l.o.Name)
				return ExitFailure
			}
			l.log.Infof("%s stopped", l.o.Name)
			return ExitOK
		case <-l.stopDeadline:
			l.log.Errorf("%s did not stop within %s", l.o.Name, l.o.Drain+2*closeGrace)
			return ExitFailure
		}
	}
}

// status sends STATUS= when it changed.
func (l *loop) status() {
	if st := l.svc.Status(); st != l.lastStatus {
		l.lastStatus = st
		l.notifier.Status("%s", st)
	}
}

// signal handles SIGHUP (reload), a first SIGTERM/SIGINT (stop within the
// drain bound) and a second one (abort, when the service can).
func (l *loop) signal(sig os.Signal) {
	switch {
	case sig == syscall.SIGHUP:
		reload(l.svc, &l.o, l.notifier, l.log, l.ready)
		l.status()
	case l.stopped != nil:
		if a, ok := l.svc.(Aborter); ok {
			l.log.WithField("signal", sig.String()).Warn("second signal: closing all connections now")
			a.Abort()
		}
	default:
		l.log.WithField("signal", sig.String()).Infof("%s stopping", l.o.Name)
		l.notifier.Stopping()
		l.stopped = make(chan error, 1)
		sctx, cancel := context.WithTimeout(context.Background(), l.o.Drain+closeGrace)
		l.cancelStop = cancel
		stopped := l.stopped
		go func() { stopped <- l.svc.Stop(sctx) }()
		l.stopDeadline = time.After(l.o.Drain + 2*closeGrace)
		l.status()
	}
}

var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// stopNow stops a service without a drain.
func stopNow(svc Service) {
	ctx, cancel := context.WithTimeout(context.Background(), closeGrace)
	defer cancel()
	if a, ok := svc.(Aborter); ok {
		a.Abort()
	}
	_ = svc.Stop(ctx) // already failing: the first error is the one reported
}

// reload reads the configuration again: logging settings apply here, the
// rest goes to a service that can reload; otherwise changes are named as
// needing a restart.
func reload(svc Service, o *RunOptions, n *systemd.Notifier, log *logrus.Logger, ready bool) {
	if o.Reload == nil {
		log.Infof("SIGHUP: configuration reload is not supported; restart %s to apply changes", o.Name)
		return
	}
	n.Reloading()
	defer func() {
		if ready {
			n.Ready()
		}
	}()
	next, err := o.Reload()
	if err != nil {
		log.WithError(err).Error("SIGHUP: configuration not reloaded")
		return
	}
	cur, nb := o.Current.Daemon(), next.Daemon()
	if err := applyLogging(log, cur, nb); err != nil {
		log.WithError(err).Error("SIGHUP: logging settings not reloaded")
		return
	}
	if r, ok := svc.(Reloader); ok {
		if err := r.Reload(next); err != nil {
			log.WithError(err).Error("SIGHUP: configuration not reloaded")
			return
		}
		o.Current = next
		return
	}
	if !sameBeyondLogging(o.Current, next) {
		log.Warnf("SIGHUP: configuration reload is not supported beyond log_level and log_format; restart %s to apply other changes", o.Name)
	}
}

// ErrNotReady is returned by services asked for something before Start.
var ErrNotReady = errors.New("not started")

// Errorf is a configuration problem found while constructing a service:
// the daemon exits with status 2.
func Errorf(format string, args ...any) error { return &ConfigError{fmt.Errorf(format, args...)} }

// ConfigError marks an error as a configuration problem (exit status 2).
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }
