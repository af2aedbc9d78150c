// Command huly-bridge forwards TCP or unix-socket connections to targets: a
// socat replacement with systemd readiness, socket activation, limits, and
// Prometheus metrics. `huly-bridge --help` lists its settings.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/bridge"
	"github.com/huly-net/huly-net/go/internal/logsetup"
	"github.com/huly-net/huly-net/go/internal/systemd"
	"github.com/huly-net/huly-net/go/internal/version"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // a runtime failure: a listener could not be opened
	exitUsage   = 2 // bad flags, configuration or environment
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	s, err := parseSettings(args, getenv, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errVersion):
		fmt.Fprintln(stdout, "huly-bridge", version.Version)
		return exitOK
	case err != nil:
		fmt.Fprintf(stderr, "huly-bridge: %v\n", err)
		return exitUsage
	}
	log, err := logsetup.Configure(s.LogLevel, s.LogFormat)
	if err != nil { // parseSettings checked both already
		fmt.Fprintf(stderr, "huly-bridge: %v\n", err)
		return exitUsage
	}
	log.SetOutput(stderr)

	activated, err := systemd.Listeners()
	if err != nil {
		log.WithError(err).Error("socket activation")
		return exitUsage
	}
	listeners, err := assignListeners(s.Forwards, activated)
	if err != nil {
		systemd.CloseListeners(activated)
		fmt.Fprintf(stderr, "huly-bridge: %v\n", err)
		return exitUsage
	}
	b, err := bridge.New(bridge.Options{Forwards: s.Forwards, Listeners: listeners, DrainTimeout: s.DrainTimeout, Log: log})
	if err != nil {
		systemd.CloseListeners(activated)
		fmt.Fprintf(stderr, "huly-bridge: %v\n", err)
		return exitUsage
	}
	d := &daemon{log: log, b: b, s: s, notify: systemd.NewNotifier(log)}
	return d.run()
}

// assignListeners maps socket-activated listeners to forwards by name. An
// unnamed socket (LISTEN_FD_n) goes to the one forward without a listen
// address when there is exactly one such; anything left over is an error.
func assignListeners(fws []bridge.Forward, activated map[string][]net.Listener) (map[string][]net.Listener, error) {
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

type daemon struct {
	log    *logrus.Logger
	b      *bridge.Bridge
	s      *settings
	notify *systemd.Notifier
}

// statusInterval is how often STATUS= is recomputed; it is sent only when
// it changed, so a target going down shows within a second without a
// stream of identical datagrams.
const statusInterval = time.Second

func (d *daemon) run() int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	if err := d.b.Listen(ctx); err != nil {
		d.log.WithError(err).Error("cannot listen")
		return exitFailure
	}
	metricsSrv, err := d.startMetrics()
	if err != nil {
		d.log.WithError(err).Error("cannot serve metrics")
		d.closeBridge()
		return exitFailure
	}

	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		_ = d.b.Run(runCtx) // Listen already succeeded, so Run cannot fail
	}()

	// The watchdog is fed only while this loop answers, so a wedged daemon
	// is restarted by systemd.
	alive := make(chan chan struct{})
	go d.notify.WatchdogCheck(ctx, func(cctx context.Context) error {
		reply := make(chan struct{})
		select {
		case alive <- reply:
		case <-cctx.Done():
			return errors.New("main loop did not answer")
		}
		select {
		case <-reply:
			return nil
		case <-cctx.Done():
			return errors.New("main loop did not answer")
		}
	})

	d.notify.Ready()
	lastStatus := d.status()
	d.notify.Status("%s", lastStatus)
	d.log.WithField("version", version.Version).Info("huly-bridge ready")

	tick := time.NewTicker(statusInterval)
	defer tick.Stop()
	stopping := false
	for {
		select {
		case reply := <-alive:
			close(reply)
		case <-tick.C:
			st := d.status()
			if stopping {
				st = fmt.Sprintf("stopping: draining %d connections", d.active())
			}
			if st != lastStatus {
				lastStatus = st
				d.notify.Status("%s", st)
			}
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				d.log.Info("SIGHUP: configuration reload is not supported; restart the service to apply changes")
				continue
			}
			if stopping {
				d.log.WithField("signal", sig.String()).Warn("second signal: closing all connections now")
				d.b.Abort()
				continue
			}
			stopping = true
			d.notify.Stopping()
			n := d.active()
			lastStatus = fmt.Sprintf("stopping: draining %d connections", n)
			d.notify.Status("%s", lastStatus)
			d.log.WithFields(logrus.Fields{"signal": sig.String(), "active": n, "drain_timeout": d.s.DrainTimeout}).Info("stopping: no new connections")
			stopRun()
		case <-runDone:
			if metricsSrv != nil {
				sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
				_ = metricsSrv.Shutdown(sctx)
				scancel()
			}
			d.log.Info("stopped")
			return exitOK
		}
	}
}

func (d *daemon) closeBridge() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = d.b.Run(ctx) // closes the listeners at once
}

func (d *daemon) active() int64 {
	var n int64
	for _, s := range d.b.Stats() {
		n += s.ActiveConnections
	}
	return n
}

// status is the one-line STATUS=: forwards, active connections, and the
// targets that are unreachable and since when.
func (d *daemon) status() string {
	stats := d.b.Stats()
	var active int64
	var down []string
	for _, s := range stats {
		active += s.ActiveConnections
		if s.TargetState == bridge.TargetUnreachable {
			down = append(down, fmt.Sprintf("%s (%s) since %s", s.Name, s.Target, s.TargetSince.UTC().Format(time.RFC3339)))
		}
	}
	msg := fmt.Sprintf("%d forwards, %d active connections", len(stats), active)
	if len(down) > 0 {
		msg += "; unreachable: " + strings.Join(down, ", ")
	}
	return msg
}

func (d *daemon) startMetrics() (*http.Server, error) {
	if d.s.MetricsListen == "" {
		return nil, nil
	}
	addr, err := metricsAddr(d.s.MetricsListen)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(bridge.NewCollector(d.b), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: d.log}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.WithError(err).Error("metrics server stopped")
		}
	}()
	d.log.WithField("addr", ln.Addr().String()).Info("serving metrics")
	return srv, nil
}
