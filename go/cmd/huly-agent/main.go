// Command huly-agent is the Huly agent daemon: it registers with a
// huly-network server and serves the containers of the kinds in its
// configuration, each through a runtime — builtin (Go code in the agent),
// process (a child process per container), transient (a systemd transient
// unit huly-c-<kind>-<short uuid>.service per container, over D-Bus) or
// nspawn (a systemd-nspawn machine huly-<kind>-<short uuid> per container).
//
// systemd (Type=notify): READY=1 is sent after the first successful
// registration with the network (so `systemctl start huly-agent` returns
// once the network lists the agent); STATUS= says whether the agent is
// registered and counts its containers by state ("registered; 3 running,
// 1 starting, 0 crashed"); WATCHDOG=1 at half of WatchdogSec while the
// main loop answers; STOPPING=1 on SIGTERM, after which process children
// are terminated and the agent unregisters, while transient units and
// nspawn machines keep running and are adopted (or stopped, when no longer
// wanted) at the next start. Bad flags or configuration exit with status 2
// and a message naming the key.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/agent/runtime"
	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/internal/config"
	"github.com/huly-net/huly-net/go/internal/logsetup"
	"github.com/huly-net/huly-net/go/internal/systemd"
	"github.com/huly-net/huly-net/go/internal/version"
)

// Timings of the daemon.
const (
	// healthInterval is how often the agent pings its containers; a
	// crashed process without a restart policy is dropped within it.
	healthInterval = 2 * time.Second
	closeTimeout   = 20 * time.Second
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stderr))
}

// labelFlag is the repeatable --label.
type labelFlag struct{ vals []string }

func (l *labelFlag) String() string     { return strings.Join(l.vals, ",") }
func (l *labelFlag) Set(s string) error { l.vals = append(l.vals, s); return nil }

// load parses the command line, the file and the environment.
func load(args []string, getenv func(string) string, stderr io.Writer) (*Config, bool, error) {
	cfg := defaults()
	fs := flag.NewFlagSet("huly-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	showVersion := fs.Bool("version", false, "print the version and exit")
	labels := &labelFlag{}
	fs.Var(labels, "label", "a label of the agent, added to its containers (repeatable)")
	loader := config.New(fs, cfg)
	if err := loader.Load(args, getenv); err != nil {
		return nil, false, err
	}
	if *showVersion {
		return cfg, true, nil
	}
	// Flags override the file and the environment overrides both; the
	// loader did that for every key but the hand-made --label.
	if len(labels.vals) > 0 && getenv("HULY_LABELS") == "" {
		cfg.Labels = labels.vals
	}
	if err := cfg.validate(); err != nil {
		return nil, false, fmt.Errorf("invalid configuration: %w", err)
	}
	return cfg, false, nil
}

// run is the daemon; it returns the exit code: 0 after a clean stop, 1 when
// serving failed, 2 for bad flags or configuration.
func run(args []string, getenv func(string) string, stderr io.Writer) int {
	cfg, showVersion, err := load(args, getenv, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "huly-agent: %s\n", strings.ReplaceAll(err.Error(), "\n", "\nhuly-agent: "))
		return 2
	}
	if showVersion {
		fmt.Fprintln(stderr, "huly-agent", version.Version)
		return 0
	}
	log, err := logsetup.ConfigureOutput(stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		fmt.Fprintf(stderr, "huly-agent: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := serve(ctx, cfg, getenv, log); err != nil {
		log.WithError(err).Error("huly-agent failed")
		return 1
	}
	return 0
}

func serve(ctx context.Context, cfg *Config, getenv func(string) string, log *logrus.Logger) error {
	notifier := systemd.NewNotifier(log)
	id, idFile, err := agentID(cfg, getenv)
	if err != nil {
		return err
	}
	if cfg.AgentID == "" && idFile == "" {
		log.WithField("agent", id).Warn("no agent_id and no STATE_DIRECTORY: this id lasts until the agent stops")
	}
	_, listenPort, _ := net.SplitHostPort(cfg.Listen)
	listenHost, _, _ := net.SplitHostPort(cfg.Listen)
	adv := advertised(cfg)
	endpointServer, err := endpointSecurity(cfg, getenv)
	if err != nil {
		return err
	}
	a, err := agent.New(agent.Options{
		EndpointServer: endpointServer,
		ID:             id,
		Endpoint:       net.JoinHostPort(adv, listenPort),
		Listen:         cfg.Listen,
		Labels:         cfg.Labels,
		HealthInterval: healthInterval,
		Logger:         log,
	})
	if err != nil {
		return fmt.Errorf("start agent: %w", err)
	}
	closeAgent := func() {
		cctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		if err := a.Close(cctx); err != nil {
			log.WithError(err).Warn("agent stopped with errors")
		}
	}

	reg := &runtime.Registry{}
	kinds, err := buildKinds(ctx, cfg, kindEnv{
		agent: a, registry: reg, listenHost: listenHost, advertiseHost: adv, log: log, getenv: getenv,
	})
	if err != nil {
		closeAgent()
		return err
	}
	defer kinds.close()

	metricsStop, err := serveMetrics(cfg.MetricsListen, reg, a, log)
	if err != nil {
		kinds.detach()
		closeAgent()
		return err
	}
	defer metricsStop()

	secOpt, err := clientSecurity(cfg, log, getenv)
	if err != nil {
		kinds.detach()
		closeAgent()
		return err
	}
	c, err := client.Dial(cfg.Network, client.WithLogger(log), secOpt)
	if err != nil {
		kinds.detach()
		closeAgent()
		return fmt.Errorf("network %s: %w", cfg.Network, err)
	}
	closeClient := func() {
		cctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		_ = c.Close(cctx)
	}

	log.WithFields(logrus.Fields{
		"agent": id, "network": cfg.Network, "listen": a.Addr().String(), "endpoint": a.EndpointRef(),
		"kinds": strings.Join(kinds.names, ","), "version": version.Version,
	}).Info("huly-agent registering with the network")
	registered := false
	status := func() {
		state := "waiting for the network at " + cfg.Network
		if registered {
			state = "registered"
			if !c.Connected() {
				state = "network unreachable, retrying"
			}
		}
		notifier.Status("%s; %s", state, countsLine(reg.Counts()))
	}
	status()

	// The watchdog is fed from the main loop, which answers only while it
	// is not stuck; it runs from the start, since registering may wait for
	// the network for a long time.
	wd := notifier.StartLoopWatchdog(ctx)
	defer wd.Stop()

	attached := make(chan error, 1)
	go func() { attached <- a.Attach(ctx, c) }()
	statusTick := time.NewTicker(time.Second)
	defer statusTick.Stop()
	// SIGHUP would end the process by default; reloading kinds under
	// running containers is not supported, so say so and go on.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-hup:
			log.Warn("SIGHUP: configuration reload is not supported; restart huly-agent to apply changes")
		case err := <-attached:
			if err != nil {
				if ctx.Err() != nil {
					break loop
				}
				kinds.detach()
				closeAgent()
				closeClient()
				return fmt.Errorf("register with the network: %w", err)
			}
			registered = true
			log.WithField("agent", id).Info("huly-agent registered with the network")
			notifier.Ready()
			status()
		case <-statusTick.C:
			status()
		case ack := <-wd.Ping():
			close(ack)
		}
	}

	log.Info("stopping: terminating process containers, leaving units and machines running")
	notifier.Stopping()
	notifier.Status("stopping; %s", countsLine(reg.Counts()))
	kinds.detach()
	closeAgent()
	closeClient()
	log.Info("huly-agent stopped")
	return nil
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
