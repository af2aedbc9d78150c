// Package container is the SDK for writing a Huly container as its own
// program: the kind of program huly-agent's process, transient and nspawn
// runtimes start.
//
// Serve reads what the agent passed in the environment, serves the
// container's direct endpoint (PROTOCOL.md §6: a backrpc server where the
// request method is the container operation and the params are its data;
// events are the container's broadcast data as is), tells the agent it is
// ready the way systemd is told (READY=1 on NOTIFY_SOCKET), and stops
// cleanly on SIGTERM or SIGINT.
//
// Environment (set by huly-agent; see docs/huly-agent.md):
//
//	HULY_CONTAINER_UUID    the container's uuid (required)
//	HULY_CONTAINER_KIND    its kind
//	HULY_CONTAINER_LABELS  its labels: a JSON array, or comma separated
//	HULY_CONTAINER_EXTRA   the extra JSON of the get that started it
//	HULY_LISTEN            HOST:PORT to serve the direct endpoint on
//	HULY_LISTEN_FD         an inherited listening socket to serve instead
//	                       (the process runtime keeps the port across restarts)
//	HULY_RELAY_LISTEN      unix:PATH: also accept connections there and relay
//	                       them to the endpoint (the inner tier of the nspawn
//	                       runtime's bridge, for a machine without a network)
//	HULY_CURVE_SECRET_KEY  on a secured network: the endpoint's own secret
//	                       key (Z85, made by the agent for this container);
//	                       the endpoint then speaks CURVE only
//	HULY_CURVE_CLIENT_KEYS the public keys (Z85, comma separated) the
//	                       endpoint admits: the agent's session for this
//	                       container; every other key and NULL peers are
//	                       refused (docs/security.md, "Direct connections")
//	HULY_LOG_LEVEL, HULY_LOG_FORMAT  as for the daemons
//	NOTIFY_SOCKET          where READY=1 and STOPPING=1 go
package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/bridge"
	"github.com/huly-net/huly-net/go/curve"
	"github.com/huly-net/huly-net/go/internal/logsetup"
	"github.com/huly-net/huly-net/go/stream"
	"github.com/huly-net/huly-net/go/transport"
)

// Environment variable names.
const (
	EnvUUID       = "HULY_CONTAINER_UUID"
	EnvKind       = "HULY_CONTAINER_KIND"
	EnvLabels     = "HULY_CONTAINER_LABELS"
	EnvExtra      = "HULY_CONTAINER_EXTRA"
	EnvListen     = "HULY_LISTEN"
	EnvListenFD   = "HULY_LISTEN_FD"
	EnvRelay      = "HULY_RELAY_LISTEN"
	EnvLogLevel   = "HULY_LOG_LEVEL"
	EnvLogFormat  = "HULY_LOG_FORMAT"
	DefaultListen = "127.0.0.1:0"
)

// Environment variables of a secured network (set by the process runtime).
const (
	EnvCurveSecret  = "HULY_CURVE_SECRET_KEY"
	EnvCurveClients = "HULY_CURVE_CLIENT_KEYS"
)

// DefaultStopTimeout bounds Stop and the endpoint's drain after SIGTERM.
const DefaultStopTimeout = 5 * time.Second

// Info is what the agent told the container about itself.
type Info struct {
	UUID   string
	Kind   string
	Labels []string
	Extra  json.RawMessage
	// Listen is the HOST:PORT asked for (informational when a socket was
	// passed with HULY_LISTEN_FD).
	Listen string
	// ListenFD is the inherited listening socket's descriptor, 0 when none.
	ListenFD int
	// Relay is the unix socket path of HULY_RELAY_LISTEN ("" when none).
	Relay string
	// Curve is the endpoint's key pair on a secured network (nil: NULL, as
	// the TypeScript containers speak).
	Curve *curve.KeyPair
	// CurveClients are the only client keys the endpoint admits when Curve
	// is set.
	CurveClients []curve.Key
}

// InfoFromEnv reads Info from the environment (getenv: usually os.Getenv).
func InfoFromEnv(getenv func(string) string) (Info, error) {
	in := Info{
		UUID:   strings.TrimSpace(getenv(EnvUUID)),
		Kind:   strings.TrimSpace(getenv(EnvKind)),
		Listen: strings.TrimSpace(getenv(EnvListen)),
	}
	if in.UUID == "" {
		return Info{}, fmt.Errorf("%s is not set: this program is meant to be started by huly-agent", EnvUUID)
	}
	labels, err := parseLabels(getenv(EnvLabels))
	if err != nil {
		return Info{}, fmt.Errorf("%s: %w", EnvLabels, err)
	}
	in.Labels = labels
	if x := strings.TrimSpace(getenv(EnvExtra)); x != "" && x != "null" {
		if !json.Valid([]byte(x)) {
			return Info{}, fmt.Errorf("%s is not valid JSON", EnvExtra)
		}
		in.Extra = json.RawMessage(x)
	}
	if fd := strings.TrimSpace(getenv(EnvListenFD)); fd != "" {
		n, err := strconv.Atoi(fd)
		if err != nil || n < 3 {
			return Info{}, fmt.Errorf("%s: want a descriptor number >= 3, got %q", EnvListenFD, fd)
		}
		in.ListenFD = n
	}
	if in.Listen == "" && in.ListenFD == 0 {
		in.Listen = DefaultListen
	}
	if in.Listen != "" {
		if _, _, err := net.SplitHostPort(in.Listen); err != nil {
			return Info{}, fmt.Errorf("%s: %w", EnvListen, err)
		}
	}
	if r := strings.TrimSpace(getenv(EnvRelay)); r != "" {
		path, ok := strings.CutPrefix(r, "unix:")
		if !ok || path == "" {
			return Info{}, fmt.Errorf("%s: want unix:PATH, got %q", EnvRelay, r)
		}
		in.Relay = path
	}
	if sk := strings.TrimSpace(getenv(EnvCurveSecret)); sk != "" {
		secret, err := curve.ParseKey(sk)
		if err != nil {
			return Info{}, fmt.Errorf("%s: %w", EnvCurveSecret, err)
		}
		pub, err := curve.PublicFromSecret(secret)
		if err != nil {
			return Info{}, fmt.Errorf("%s: %w", EnvCurveSecret, err)
		}
		in.Curve = &curve.KeyPair{Public: pub, Secret: secret}
		for _, f := range strings.Split(getenv(EnvCurveClients), ",") {
			if f = strings.TrimSpace(f); f == "" {
				continue
			}
			k, err := curve.ParseKey(f)
			if err != nil {
				return Info{}, fmt.Errorf("%s: %w", EnvCurveClients, err)
			}
			in.CurveClients = append(in.CurveClients, k)
		}
		if len(in.CurveClients) == 0 {
			return Info{}, fmt.Errorf("%s is set but %s lists no key", EnvCurveSecret, EnvCurveClients)
		}
	}
	return in, nil
}

func parseLabels(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if strings.HasPrefix(s, "[") {
		var out []string
		if err := json.Unmarshal([]byte(s), &out); err != nil {
			return nil, fmt.Errorf("want a JSON array of strings: %w", err)
		}
		return out, nil
	}
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out, nil
}

// Container is a container's behaviour: Request runs one operation. The
// clientID is the id of the client session that sent it (the agent's own
// session for requests routed through the network). The result is encoded
// as JSON; an error is answered as a responseError.
type Container interface {
	Request(ctx context.Context, clientID, op string, data json.RawMessage) (any, error)
}

// Starter is implemented by containers that prepare something before they
// are ready; an error ends Serve before READY=1.
type Starter interface {
	Start(ctx context.Context, h *Host) error
}

// Stopper is implemented by containers that have something to finish after
// SIGTERM, within the stop timeout.
type Stopper interface {
	Stop(ctx context.Context) error
}

// ConnectionWatcher is told about client sessions on the direct endpoint.
type ConnectionWatcher interface {
	Connected(clientID string)
	Disconnected(clientID string)
}

// Host is the running container's side of the SDK.
type Host struct {
	info Info
	srv  *backrpc.Server
	log  logrus.FieldLogger
}

// Info is what the agent passed.
func (h *Host) Info() Info { return h.info }

// Addr is the bound address of the direct endpoint.
func (h *Host) Addr() net.Addr { return h.srv.Addr() }

// Log is the container's logger.
func (h *Host) Log() logrus.FieldLogger { return h.log }

// Broadcast sends data as an event to every client connected to the
// direct endpoint (the agent's own session among them, which relays it to
// clients connected through the agent); it returns how many.
func (h *Host) Broadcast(data any) int {
	n, err := h.srv.Broadcast(data)
	if err != nil {
		h.log.WithError(err).Debug("broadcast")
	}
	return n
}

// Send sends data as an event to one client.
func (h *Host) Send(clientID string, data any) error {
	if err := h.srv.SendEvent(clientID, data); err != nil {
		return fmt.Errorf("send event to %s: %w", clientID, err)
	}
	return nil
}

// Options adjust Serve; the zero value is what Serve uses.
type Options struct {
	// Getenv defaults to os.Getenv.
	Getenv func(string) string
	// Logger defaults to logrus on stderr configured by HULY_LOG_LEVEL and
	// HULY_LOG_FORMAT.
	Logger logrus.FieldLogger
	// StopTimeout bounds Stop and the endpoint's drain; default 5 s.
	StopTimeout time.Duration
	// NoSignals: do not stop on SIGTERM/SIGINT, only when ctx ends.
	NoSignals bool
	// OnReady is called with the Host once the endpoint serves, right
	// after READY=1 (tests use it).
	OnReady func(h *Host)
}

// Serve runs impl as a container until SIGTERM, SIGINT or the end of ctx;
// it returns nil after a clean stop.
func Serve(ctx context.Context, impl Container) error {
	return ServeWith(ctx, impl, Options{})
}

// ServeWith is Serve with options.
func ServeWith(ctx context.Context, impl Container, opts Options) error {
	if impl == nil {
		return errors.New("container: nil Container")
	}
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	log := opts.Logger
	if log == nil {
		l, err := logsetup.Configure(getenv(EnvLogLevel), getenv(EnvLogFormat))
		if err != nil {
			return fmt.Errorf("container: %w", err)
		}
		log = l
	}
	stopTimeout := opts.StopTimeout
	if stopTimeout <= 0 {
		stopTimeout = DefaultStopTimeout
	}
	info, err := InfoFromEnv(getenv)
	if err != nil {
		return fmt.Errorf("container: %w", err)
	}
	log = log.WithFields(logrus.Fields{"container": info.UUID, "kind": info.Kind})
	if opts.Getenv == nil {
		// The secret stays with this process, not with programs it starts.
		_ = os.Unsetenv(EnvCurveSecret)
	}

	if !opts.NoSignals {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
		defer stop()
	}

	watcher, _ := impl.(ConnectionWatcher)
	h := &Host{info: info, log: log}
	streams := newStreamServer(impl)
	h.srv = backrpc.NewServer(backrpc.ServerOptions{Logger: log, DrainTimeout: stopTimeout, Capabilities: streams.capabilities(),
		Transport: endpointTransport(info, log)}, backrpc.ServerHandler{
		HandleRequest: func(rctx context.Context, cl backrpc.ClientInfo, method string, params json.RawMessage) (any, error) {
			if res, ok, err := streams.handle(rctx, cl.ID, method, params); ok {
				return res, err
			}
			if streams != nil && method == stream.MethodOpen {
				return plainOpen(rctx, impl, cl.ID, params)
			}
			return impl.Request(rctx, cl.ID, method, params)
		},
		OnClientConnected: func(cl backrpc.ClientInfo) {
			if watcher != nil {
				watcher.Connected(cl.ID)
			}
		},
		OnClientClosed: func(cl backrpc.ClientInfo) {
			if watcher != nil {
				watcher.Disconnected(cl.ID)
			}
		},
		OnClientTimeout: func(cl backrpc.ClientInfo) {
			if watcher != nil {
				watcher.Disconnected(cl.ID)
			}
		},
	})
	if err := listen(h.srv, info); err != nil {
		return fmt.Errorf("container %s: %w", info.UUID, err)
	}
	shutdown := func() {
		sctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		if err := streams.close(sctx); err != nil {
			log.WithError(err).Warn("stop streams")
		}
		if err := h.srv.Shutdown(sctx); err != nil {
			log.WithError(err).Warn("stop direct endpoint")
		}
	}

	var relayWG sync.WaitGroup
	relayCtx, relayCancel := context.WithCancel(context.Background())
	defer func() {
		relayCancel()
		relayWG.Wait()
	}()
	if info.Relay != "" {
		run, err := relay(info.Relay, h.srv.Addr().String(), log)
		if err != nil {
			shutdown()
			return fmt.Errorf("container %s: %w", info.UUID, err)
		}
		relayWG.Add(1)
		go func() {
			defer relayWG.Done()
			if err := run(relayCtx); err != nil {
				log.WithError(err).Warn("relay stopped")
			}
		}()
	}

	if s, ok := impl.(Starter); ok {
		if err := s.Start(ctx, h); err != nil {
			shutdown()
			return fmt.Errorf("container %s: start: %w", info.UUID, err)
		}
	}
	notify(log, "READY=1\nSTATUS=serving on "+h.srv.Addr().String())
	log.WithField("listen", h.srv.Addr().String()).Info("container ready")
	if opts.OnReady != nil {
		opts.OnReady(h)
	}

	<-ctx.Done()
	notify(log, "STOPPING=1")
	log.Info("container stopping")
	var stopErr error
	if s, ok := impl.(Stopper); ok {
		sctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		stopErr = s.Stop(sctx)
		cancel()
	}
	shutdown()
	if stopErr != nil {
		return fmt.Errorf("container %s: stop: %w", info.UUID, stopErr)
	}
	return nil
}

// ErrNotAdmitted refuses a direct connection on a secured network.
var ErrNotAdmitted = errors.New("not authorized")

// endpointTransport: on a secured network the endpoint speaks CURVE with
// the key the agent made for it and admits only the listed client keys
// (the agent's own session); NULL peers are refused by the transport.
func endpointTransport(info Info, log logrus.FieldLogger) transport.Options {
	if info.Curve == nil {
		return transport.Options{}
	}
	admitted := map[curve.Key]struct{}{}
	for _, k := range info.CurveClients {
		admitted[k] = struct{}{}
	}
	kp := *info.Curve
	return transport.Options{
		CurveServer: &kp,
		CurveAuthenticate: func(_ context.Context, k curve.Key, remote net.Addr) error {
			if _, ok := admitted[k]; ok {
				return nil
			}
			log.WithFields(logrus.Fields{"key": k.String(), "peer": remote.String()}).Warn("refused a direct connection: on a secured network this container serves only its agent")
			return fmt.Errorf("%w: container %s serves only its agent on a secured network; connect through the agent", ErrNotAdmitted, info.UUID)
		},
	}
}

func listen(srv *backrpc.Server, info Info) error {
	if info.ListenFD == 0 {
		if err := srv.Listen(info.Listen); err != nil {
			return fmt.Errorf("listen %s: %w", info.Listen, err)
		}
		return nil
	}
	f := os.NewFile(uintptr(info.ListenFD), "huly-listen")
	if f == nil {
		return fmt.Errorf("%s=%d: no such descriptor", EnvListenFD, info.ListenFD)
	}
	ln, err := net.FileListener(f)
	_ = f.Close() // FileListener made its own duplicate
	if err != nil {
		return fmt.Errorf("%s=%d: %w", EnvListenFD, info.ListenFD, err)
	}
	if err := srv.Serve(ln); err != nil {
		_ = ln.Close()
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	}
	return nil
}

// relay is the inner tier of the nspawn runtime's bridge: connections to
// the unix socket path are forwarded to the endpoint. The socket is made
// writable by everyone because the agent on the host side runs as its own
// (unprivileged) user while the container usually runs as root; the
// directory it lives in is the agent's, bound into the machine.
func relay(path, target string, log logrus.FieldLogger) (func(context.Context) error, error) {
	_ = os.Remove(path) // a socket left by an earlier run of this container
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("relay listen unix:%s: %w", path, err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("relay socket %s: %w", path, err)
	}
	b, err := bridge.New(bridge.Options{
		Forwards:     []bridge.Forward{{Name: "relay", Target: "tcp:" + target, DialRetries: 3}},
		Listeners:    map[string][]net.Listener{"relay": {ln}},
		DrainTimeout: -1,
		Log:          log,
	})
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("relay: %w", err)
	}
	return b.Run, nil
}

func notify(log logrus.FieldLogger, state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		log.WithError(err).Warn("notify the agent")
	}
}
