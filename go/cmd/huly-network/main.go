// Command huly-network is the Huly network server: the ROUTER on port 3737
// that agents register with and clients get containers from.
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
	"reflect"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/auth"
	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/internal/config"
	"github.com/huly-net/huly-net/go/internal/logsetup"
	"github.com/huly-net/huly-net/go/internal/systemd"
	"github.com/huly-net/huly-net/go/internal/version"
	"github.com/huly-net/huly-net/go/network"
	"github.com/huly-net/huly-net/go/server"
	"github.com/huly-net/huly-net/go/transport"
)

const defaultListen = "tcp://*:3737"

// Config is the daemon's configuration: JSON keys, flags (--max-frame-size)
// and HULY_* variables are derived from the json tags.
type Config struct {
	Listen              string          `json:"listen" usage:"address to bind: tcp://HOST:PORT (HOST may be *); env HOST and PORT are honoured when this is not set"`
	AliveTimeout        config.Duration `json:"alive_timeout" usage:"drop a client, and the agents it hosts, after this long without a ping"`
	UnusedTimeout       config.Duration `json:"unused_timeout" usage:"terminate a container this long after its last reference is released"`
	PingInterval        config.Duration `json:"ping_interval" usage:"how often silent clients are swept (must be below alive-timeout)"`
	MaxAliveTimeout     config.Duration `json:"max_alive_timeout" usage:"largest alive timeout a client's hello may ask for; more is granted this much"`
	MaxClientIDLen      int             `json:"max_client_id_length" usage:"longest client id in bytes a hello may carry; a longer one is refused and its connection closed"`
	MaxDetachedSessions int             `json:"max_detached_sessions" usage:"sessions kept for disconnected clients waiting to come back; beyond it the oldest is dropped"`
	MaxFrameSize        int64           `json:"max_frame_size" usage:"largest accepted frame in bytes; a peer announcing more is disconnected"`
	MaxInflight         int             `json:"max_inflight" usage:"requests in flight per client before it is told to retry"`
	MaxServerInflight   int             `json:"max_server_inflight" usage:"requests in flight over all clients before new ones are told to retry (overload)"`
	MaxSubscriptions    int             `json:"max_subscriptions" usage:"kinds and uuids a client may watch (and failed gets it is kept waiting for) when it receives events by interest"`
	HandshakeTimeout    config.Duration `json:"handshake_timeout" usage:"time a new connection has to complete the ZMTP handshake"`
	SendQueue           int             `json:"send_queue" usage:"messages queued per client before a client that stopped reading is disconnected"`
	ShutdownTimeout     config.Duration `json:"shutdown_timeout" usage:"time to finish requests in flight on SIGTERM"`
	MetricsListen       string          `json:"metrics_listen" usage:"serve Prometheus metrics on HOST:PORT at /metrics (off when empty)"`
	PprofListen         string          `json:"pprof_listen" usage:"serve Go profiles on HOST:PORT at /debug/pprof/ for diagnosis (off when empty; bind loopback only)"`
	LogLevel            string          `json:"log_level" usage:"log level: trace, debug, info, warn, error"`
	LogFormat           string          `json:"log_format" usage:"log format: auto, text, json, journal (auto: journal when stderr is the journal)"`

	MaxConnections       int             `json:"max_connections" usage:"open connections at most; at the limit a new one replaces the oldest that has sent no message, or is closed at once (0: the file descriptor limit less a tenth, at least 64, kept for the server itself)"`
	HelloTimeout         config.Duration `json:"hello_timeout" usage:"time a connection has after its handshake to begin its first message (the hello) before it is closed"`
	FrameProgressTimeout config.Duration `json:"frame_progress_timeout" usage:"a connection whose message, once begun, goes this long without a byte is closed"`
	MaxBufferedBytes     int64           `json:"max_buffered_bytes" usage:"bytes all connections together may hold in unfinished messages; the connection that would go over is closed"`

	// Limits per kind (network.KindLimits).
	MaxContainersPerKind int    `json:"max_containers_per_kind" usage:"containers of one kind across the network (0: no limit); a get that would start one more fails at once"`
	MaxRequestsPerKind   int    `json:"max_requests_per_kind" usage:"routed requests to containers of one kind in flight at once (0: no limit); one more fails at once"`
	KindLimits           string `json:"kind_limits" usage:"per-kind limits replacing the two above, as KIND=CONTAINERS/REQUESTS (0 or empty: no limit), comma-separated"`

	// Security (docs/security.md); security.go.
	CurveSecretKeyFile string   `json:"curve_secret_key_file" usage:"the network's CURVE secret key file; turns security on (credential:NAME reads a systemd credential; empty uses the credential curve.key when present)"`
	AuthorizedKeys     string   `json:"authorized_keys" usage:"file of the keys that may connect, with their roles and kinds (reloaded on SIGHUP); required with a secret key"`
	AllowNullFrom      []string `json:"allow_null_from" usage:"CIDR from which peers without a key (TypeScript 0.7) are admitted on a secured network (repeatable)"`
	MaxAgentIDsPerKey  int      `json:"max_agent_ids_per_key" usage:"agent ids one key may have bound to it; a key registering more is refused"`
}

func defaults() *Config {
	return &Config{
		Listen:              defaultListen,
		AliveTimeout:        config.Duration(3 * time.Second),
		UnusedTimeout:       config.Duration(5 * time.Second),
		PingInterval:        config.Duration(time.Second),
		MaxAliveTimeout:     config.Duration(backrpc.DefaultMaxAliveTimeout),
		MaxClientIDLen:      backrpc.DefaultMaxClientIDLen,
		MaxDetachedSessions: backrpc.DefaultMaxDetachedSessions,
		MaxFrameSize:        transport.DefaultMaxFrameSize,
		MaxInflight:         1024,
		MaxServerInflight:   backrpc.DefaultMaxServerInflight,
		MaxSubscriptions:    network.DefaultMaxSubscriptions,
		HandshakeTimeout:    config.Duration(transport.DefaultHandshakeTimeout),
		SendQueue:           transport.DefaultSendQueue,
		ShutdownTimeout:     config.Duration(5 * time.Second),
		LogLevel:            "info",
		LogFormat:           "auto",

		HelloTimeout:         config.Duration(transport.DefaultHandshakeTimeout),
		FrameProgressTimeout: config.Duration(transport.DefaultFrameProgressTimeout),
		MaxBufferedBytes:     transport.DefaultMaxBufferedBytes,
		MaxAgentIDsPerKey:    auth.DefaultMaxAgentIDsPerKey,
	}
}

func (c *Config) validate() error {
	var errs []error
	positive := func(key string, d config.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s: must be positive, got %s", key, d))
		}
	}
	positive("alive_timeout", c.AliveTimeout)
	positive("unused_timeout", c.UnusedTimeout)
	positive("ping_interval", c.PingInterval)
	positive("max_alive_timeout", c.MaxAliveTimeout)
	if c.MaxAliveTimeout < c.AliveTimeout && c.MaxAliveTimeout > 0 {
		errs = append(errs, fmt.Errorf("max_alive_timeout (%s) must not be below alive_timeout (%s)", c.MaxAliveTimeout, c.AliveTimeout))
	}
	if c.MaxClientIDLen < 36 {
		errs = append(errs, fmt.Errorf("max_client_id_length: must be at least 36 (a UUID), got %d", c.MaxClientIDLen))
	}
	if c.MaxDetachedSessions < 1 {
		errs = append(errs, fmt.Errorf("max_detached_sessions: must be at least 1, got %d", c.MaxDetachedSessions))
	}
	positive("handshake_timeout", c.HandshakeTimeout)
	positive("shutdown_timeout", c.ShutdownTimeout)
	positive("hello_timeout", c.HelloTimeout)
	positive("frame_progress_timeout", c.FrameProgressTimeout)
	if c.MaxConnections < 0 {
		errs = append(errs, fmt.Errorf("max_connections: must be 0 (from the file descriptor limit) or positive, got %d", c.MaxConnections))
	}
	if c.MaxBufferedBytes < c.MaxFrameSize+64<<10 {
		errs = append(errs, fmt.Errorf("max_buffered_bytes (%d) must be at least max_frame_size (%d) and 64 KiB", c.MaxBufferedBytes, c.MaxFrameSize))
	}
	if c.PingInterval >= c.AliveTimeout && c.PingInterval > 0 {
		errs = append(errs, fmt.Errorf("ping_interval (%s) must be below alive_timeout (%s)", c.PingInterval, c.AliveTimeout))
	}
	if c.MaxFrameSize < 1024 {
		errs = append(errs, fmt.Errorf("max_frame_size: must be at least 1024 bytes, got %d", c.MaxFrameSize))
	}
	if c.MaxServerInflight < 1 {
		errs = append(errs, fmt.Errorf("max_server_inflight: must be at least 1, got %d", c.MaxServerInflight))
	}
	if c.MaxSubscriptions < 1 {
		errs = append(errs, fmt.Errorf("max_subscriptions: must be at least 1, got %d", c.MaxSubscriptions))
	}
	if c.MaxInflight < 1 {
		errs = append(errs, fmt.Errorf("max_inflight: must be at least 1, got %d", c.MaxInflight))
	}
	if c.MaxAgentIDsPerKey < 1 {
		errs = append(errs, fmt.Errorf("max_agent_ids_per_key: must be at least 1, got %d", c.MaxAgentIDsPerKey))
	}
	if c.SendQueue < 1 {
		errs = append(errs, fmt.Errorf("send_queue: must be at least 1, got %d", c.SendQueue))
	}
	if _, err := c.kindLimits(); err != nil {
		errs = append(errs, fmt.Errorf("kind_limits: %w", err))
	}
	if c.MaxContainersPerKind < 0 || c.MaxRequestsPerKind < 0 {
		errs = append(errs, errors.New("max_containers_per_kind and max_requests_per_kind must not be negative"))
	}
	if _, err := transport.ParseAddr(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen: %w", err))
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			errs = append(errs, fmt.Errorf("metrics_listen: %w", err))
		}
	}
	if c.PprofListen != "" {
		if _, _, err := net.SplitHostPort(c.PprofListen); err != nil {
			errs = append(errs, fmt.Errorf("pprof_listen: %w", err))
		}
	}
	return errors.Join(errs...)
}

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stderr))
}

// run is the daemon; it returns the exit code: 0 after a clean stop, 1 when
// serving failed, 2 for bad flags or configuration.
func run(args []string, getenv func(string) string, stderr io.Writer) int {
	cfg, showVersion, err := loadConfig(args, getenv, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "huly-network: %v\n", err)
		return 2
	}
	if showVersion {
		fmt.Fprintln(stderr, "huly-network", version.Version)
		return 0
	}
	if err := cfg.validate(); err != nil {
		fmt.Fprintf(stderr, "huly-network: invalid configuration: %v\n", err)
		return 2
	}
	reload := func() (*Config, error) {
		c, _, err := loadConfig(args, getenv, io.Discard)
		if err != nil {
			return nil, err
		}
		return c, c.validate()
	}
	log, err := logsetup.ConfigureOutput(stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		fmt.Fprintf(stderr, "huly-network: %v\n", err)
		return 2
	}
	if err := checkSecurity(cfg, getenv); err != nil {
		fmt.Fprintf(stderr, "huly-network: invalid configuration: %v\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := serve(ctx, cfg, log, reload); err != nil {
		log.WithError(err).Error("huly-network failed")
		return 1
	}
	return 0
}

// loadConfig reads the configuration: defaults, --config, flags, HULY_*,
// and the TypeScript pod's PORT/HOST when nothing else set the address.
func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (*Config, bool, error) {
	cfg := defaults()
	fs := flag.NewFlagSet("huly-network", flag.ContinueOnError)
	fs.SetOutput(stderr)
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := config.New(fs, cfg).Load(args, getenv); err != nil {
		return nil, false, err
	}
	if cfg.Listen == defaultListen {
		if port := getenv("PORT"); port != "" {
			host := getenv("HOST")
			if host == "" || host == "0.0.0.0" {
				host = "*"
			}
			cfg.Listen = "tcp://" + net.JoinHostPort(host, port)
		}
	}
	return cfg, *showVersion, nil
}

// applyReload applies what can change without a restart (the log level
// and format) and names what cannot.
func applyReload(log *logrus.Logger, cur, next *Config) {
	if next.LogLevel != cur.LogLevel || next.LogFormat != cur.LogFormat {
		if lvl, err := logsetup.ParseLevel(next.LogLevel); err == nil {
			log.SetLevel(lvl)
		}
		if f, err := logsetup.Formatter(next.LogFormat); err == nil {
			log.SetFormatter(f)
		}
		log.WithFields(logrus.Fields{"log_level": next.LogLevel, "log_format": next.LogFormat}).Info("reloaded logging settings")
	}
	a, b := *cur, *next
	a.LogLevel, a.LogFormat, b.LogLevel, b.LogFormat = "", "", "", ""
	if !reflect.DeepEqual(a, b) {
		log.Warn("configuration changes other than log_level and log_format take effect after a restart")
	}
	cur.LogLevel, cur.LogFormat = next.LogLevel, next.LogFormat
}

func serve(ctx context.Context, cfg *Config, log *logrus.Logger, reload func() (*Config, error)) error {
	// Before READY=1: from then on a SIGHUP must reload, not end the
	// process (its default action).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	notifier := systemd.NewNotifier(log)
	sec, err := loadSecurity(cfg, log)
	if err != nil {
		return err
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

			MaxConnections:       maxConnections(cfg),
			FirstMessageTimeout:  cfg.HelloTimeout.D(),
			FrameProgressTimeout: cfg.FrameProgressTimeout.D(),
			MaxBufferedBytes:     cfg.MaxBufferedBytes,
		},
		Logger: log,
	})

	listeners, err := systemd.Listeners()
	if err != nil {
		return fmt.Errorf("socket activation: %w", err)
	}
	if len(listeners) > 0 {
		ln, err := systemd.OnlyListener(listeners)
		if err != nil {
			systemd.CloseListeners(listeners)
			return fmt.Errorf("socket activation: %w", err)
		}
		if err := srv.Serve(ln); err != nil {
			return fmt.Errorf("serve activated socket: %w", err)
		}
		log.WithField("listen", ln.Addr().String()).Info("serving the socket passed by systemd")
	} else {
		if err := srv.Listen(cfg.Listen); err != nil {
			return err
		}
	}

	var side []*sideServer
	defer func() {
		for _, s := range side {
			s.stop()
		}
	}()
	for _, h := range []struct {
		name, addr string
		handler    func() http.Handler
	}{
		{"metrics", cfg.MetricsListen, func() http.Handler { return metricsHandler(srv) }},
		{"pprof", cfg.PprofListen, pprofHandler},
	} {
		if h.addr == "" {
			continue
		}
		s, err := startSideServer(h.name, h.addr, h.handler(), log)
		if err != nil {
			_ = srv.Close()
			return err
		}
		side = append(side, s)
	}

	log.WithFields(logrus.Fields{
		"listen":                srv.Addr().String(),
		"server_id":             srv.ID(),
		"version":               version.Version,
		"alive_timeout":         cfg.AliveTimeout.D(),
		"max_alive_timeout":     cfg.MaxAliveTimeout.D(),
		"max_client_id_length":  cfg.MaxClientIDLen,
		"max_detached_sessions": cfg.MaxDetachedSessions,

		"max_connections":     maxConnections(cfg),
		"max_server_inflight": cfg.MaxServerInflight,
		"max_subscriptions":   cfg.MaxSubscriptions,
	}).Info("huly-network ready")
	notifier.Ready()
	status := func() {
		st := srv.Stats()
		notifier.Status("%d clients, %d agents, %d containers", st.RPC.Clients, st.Network.Agents, st.Network.Containers)
	}
	status()

	// The main loop's liveness feeds the watchdog: a stuck status loop (or
	// a deadlocked network core, which Stats would block on) withholds it.
	wd := notifier.StartLoopWatchdog(ctx)

	runCtx, runCancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- srv.Run(runCtx, cfg.ShutdownTimeout.D()) }()

	statusTick := time.NewTicker(time.Second)
	defer statusTick.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-hup:
			notifier.Reloading()
			if next, err := reload(); err != nil {
				log.WithError(err).Error("SIGHUP: configuration not reloaded")
			} else {
				applyReload(log, cfg, next)
			}
			reloadKeys(srv, log)
			notifier.Ready()
			status()
		case err := <-runDone:
			runCancel()
			wd.Stop()
			return fmt.Errorf("server stopped: %w", err)
		case <-statusTick.C:
			status()
		case ack := <-wd.Ping():
			_ = srv.Stats()
			close(ack)
		}
	}

	log.Info("stopping: finishing requests in flight")
	notifier.Stopping()
	wd.Stop()
	runCancel()
	err = <-runDone
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("huly-network stopped")
	return nil
}

// maxConnections is the configured limit, or the one derived from the file
// descriptor limit.
func maxConnections(cfg *Config) int {
	if cfg.MaxConnections > 0 {
		return cfg.MaxConnections
	}
	return transport.DefaultMaxConnections()
}

// sideServer is an HTTP listener beside the ROUTER: metrics or profiles.
type sideServer struct {
	srv  *http.Server
	done chan struct{}
}

func startSideServer(name, addr string, h http.Handler, log logrus.FieldLogger) (*sideServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s listen %s: %w", name, addr, err)
	}
	s := &sideServer{srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.WithError(err).Errorf("%s server stopped", name)
		}
	}()
	log.WithField(name, ln.Addr().String()).Infof("serving %s", name)
	return s, nil
}

// stop ends the listener; a profile still being taken is cut after a
// second rather than holding up the daemon's exit.
func (s *sideServer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if s.srv.Shutdown(ctx) != nil {
		_ = s.srv.Close()
	}
	<-s.done
}
