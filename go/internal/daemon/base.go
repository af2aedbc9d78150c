package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/internal/logsetup"
)

// Config is a daemon's configuration: a struct embedding Base, with json
// and usage tags (see internal/config), that validates itself.
type Config interface {
	// Validate checks the configuration; every error names its key.
	Validate() error
	// Daemon is the part the runner reads.
	Daemon() *Base
}

// Base holds the settings every daemon has. Embed it in a Config.
type Base struct {
	MetricsListen string `json:"metrics_listen" usage:"serve Prometheus metrics on HOST:PORT at /metrics (off when empty)"`
	PprofListen   string `json:"pprof_listen" usage:"serve Go profiles on HOST:PORT at /debug/pprof/ (off when empty; keep it on loopback)"`
	LogLevel      string `json:"log_level" usage:"log level: trace, debug, info, warn, error"`
	LogFormat     string `json:"log_format" usage:"log format: auto, text, json, journal (auto: journal when stderr is the journal)"`
}

// DefaultBase is Base with its defaults.
func DefaultBase() Base { return Base{LogLevel: "info", LogFormat: "auto"} }

// Daemon implements Config for the structs that embed Base.
func (b *Base) Daemon() *Base { return b }

// Validate checks the settings of Base.
func (b *Base) Validate() error {
	var errs []error
	if _, err := logsetup.ParseLevel(b.LogLevel); err != nil {
		errs = append(errs, fmt.Errorf("log_level: %w", err))
	}
	if _, err := logsetup.Formatter(b.LogFormat); err != nil {
		errs = append(errs, fmt.Errorf("log_format: %w", err))
	}
	for _, a := range []struct{ key, v string }{{"metrics_listen", b.MetricsListen}, {"pprof_listen", b.PprofListen}} {
		if a.v == "" {
			continue
		}
		if _, err := ListenAddr(a.v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a.key, err))
		}
	}
	return errors.Join(errs...)
}

// ListenAddr checks a TCP listen address, HOST:PORT (or tcp:HOST:PORT), and
// returns it as HOST:PORT. The host may be empty (every interface).
func ListenAddr(s string) (string, error) {
	a := strings.TrimPrefix(s, "tcp:")
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return "", fmt.Errorf("%q: want HOST:PORT", s)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return "", fmt.Errorf("%q: bad port %q", s, port)
	}
	if strings.ContainsAny(host, " /") {
		return "", fmt.Errorf("%q: bad host %q", s, host)
	}
	return a, nil
}

func applyLogging(log *logrus.Logger, cur, next *Base) error {
	if next.LogLevel == cur.LogLevel && next.LogFormat == cur.LogFormat {
		return nil
	}
	lvl, err := logsetup.ParseLevel(next.LogLevel)
	if err != nil {
		return err
	}
	f, err := logsetup.Formatter(next.LogFormat)
	if err != nil {
		return err
	}
	log.SetLevel(lvl)
	log.SetFormatter(f)
	cur.LogLevel, cur.LogFormat = next.LogLevel, next.LogFormat
	log.WithFields(logrus.Fields{"log_level": next.LogLevel, "log_format": next.LogFormat}).Info("reloaded logging settings")
	return nil
}

// sameBeyondLogging compares two configurations by what they would write
// as JSON, ignoring the logging settings.
func sameBeyondLogging(a, b Config) bool {
	strip := func(c Config) (map[string]any, bool) {
		raw, err := json.Marshal(c)
		var m map[string]any
		if err != nil || json.Unmarshal(raw, &m) != nil {
			return nil, false
		}
		delete(m, "log_level")
		delete(m, "log_format")
		return m, true
	}
	am, okA := strip(a)
	bm, okB := strip(b)
	return okA && okB && reflect.DeepEqual(am, bm)
}

// side is the HTTP listeners beside the service: metrics and profiles.
type side struct{ servers []*sideServer }

type sideServer struct {
	srv  *http.Server
	done chan struct{}
}

func startSide(svc Service, b *Base, log logrus.FieldLogger) (*side, error) {
	s := &side{}
	if b.MetricsListen != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		if c, ok := svc.(Collector); ok {
			reg.MustRegister(c.Collectors()...)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: log}))
		if err := s.start("metrics", b.MetricsListen, mux, log); err != nil {
			return nil, err
		}
	}
	if b.PprofListen != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		if err := s.start("pprof", b.PprofListen, mux, log); err != nil {
			s.stop()
			return nil, err
		}
	}
	return s, nil
}

func (s *side) start(name, addr string, h http.Handler, log logrus.FieldLogger) error {
	a, err := ListenAddr(addr)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", a)
	if err != nil {
		return fmt.Errorf("%s listen on %s: %w", name, a, err)
	}
	ss := &sideServer{
		srv:  &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second},
		done: make(chan struct{}),
	}
	go func() {
		defer close(ss.done)
		if err := ss.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.WithError(err).Errorf("%s server stopped", name)
		}
	}()
	log.WithField(name, ln.Addr().String()).Infof("serving %s", name)
	s.servers = append(s.servers, ss)
	return nil
}

// stop ends the listeners; a profile still being taken is cut after a
// second rather than holding up the daemon's exit.
func (s *side) stop() {
	for _, ss := range s.servers {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if ss.srv.Shutdown(ctx) != nil {
			_ = ss.srv.Close()
		}
		cancel()
		<-ss.done
	}
	s.servers = nil
}
