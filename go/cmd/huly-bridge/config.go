package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/huly-net/huly-net/go/bridge"
	"github.com/huly-net/huly-net/go/internal/logsetup"
)

// settings is the resolved configuration: defaults, then the --config file,
// then flags, then HULY_* environment variables. Per-forward values in the
// file are more specific than the global defaults (whatever set those) and
// win for their forward.
type settings struct {
	Forwards      []bridge.Forward
	MetricsListen string
	DrainTimeout  time.Duration
	LogLevel      string
	LogFormat     string
}

// defaults are what a forward gets when nothing sets a value.
type defaults struct {
	MaxConnections int
	IdleTimeout    time.Duration
	DialTimeout    time.Duration
	DialRetries    int
	DialBackoff    time.Duration
}

// forwardFile is one forward in the file; nil pointers mean "not set".
type forwardFile struct {
	Listen, Target string
	MaxConnections *int
	IdleTimeout    *time.Duration
	DialTimeout    *time.Duration
	DialRetries    *int
	DialBackoff    *time.Duration
}

// usageError is a configuration problem: the daemon exits with status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// forwardFlag collects repeated --forward NAME=LISTEN,TARGET values.
type forwardFlag []string

func (f *forwardFlag) String() string     { return strings.Join(*f, " ") }
func (f *forwardFlag) Set(v string) error { *f = append(*f, v); return nil }

const usageHeader = `huly-bridge forwards TCP or unix-socket connections to targets.

Usage: huly-bridge [flags]

Addresses are tcp:HOST:PORT or unix:PATH. A forward whose listener is passed
by systemd (FileDescriptorName=NAME in its .socket unit) needs no LISTEN:
--forward NAME=,TARGET.

Precedence: defaults < --config file < flags < HULY_* environment variables
(HULY_CONFIG, HULY_FORWARDS as NAME=LISTEN,TARGET entries separated by ";",
HULY_METRICS_LISTEN, HULY_DRAIN_TIMEOUT, HULY_MAX_CONNECTIONS,
HULY_IDLE_TIMEOUT, HULY_DIAL_TIMEOUT, HULY_DIAL_RETRIES, HULY_DIAL_BACKOFF,
HULY_LOG_LEVEL, HULY_LOG_FORMAT). The connection settings are defaults for
every forward; a value set on one forward in the config file wins for it.

Flags:
`

// parseSettings resolves the configuration from args and the environment
// (getenv). Errors are usageErrors naming the flag, key or variable.
func parseSettings(args []string, getenv func(string) string, out io.Writer) (*settings, error) {
	fs := flag.NewFlagSet("huly-bridge", flag.ContinueOnError)
	fs.SetOutput(out)
	var (
		forwards   forwardFlag
		configFile = fs.String("config", "", "JSON configuration `file`")
		metrics    = fs.String("metrics-listen", "", "serve Prometheus metrics on `HOST:PORT` (/metrics); empty: off")
		drain      = fs.Duration("drain-timeout", bridge.DefaultDrainTimeout, "after SIGTERM, how long active connections may finish")
		maxConns   = fs.Int("max-connections", 4096, "per-forward limit of concurrent connections (0: none)")
		idle       = fs.Duration("idle-timeout", 0, "close connections idle this long (0: never)")
		dialTO     = fs.Duration("dial-timeout", bridge.DefaultDialTimeout, "timeout of each connection attempt to a target")
		retries    = fs.Int("dial-retries", 5, "attempts after a failed dial before the client is closed")
		backoff    = fs.Duration("dial-backoff", bridge.DefaultDialBackoff, "wait before the first dial retry, doubled after each (at most 2s)")
		logLevel   = fs.String("log-level", "info", "log level: "+strings.Join(logsetup.Levels, ", "))
		logFormat  = fs.String("log-format", "auto", "log format: "+strings.Join(logsetup.Formats, ", "))
		version    = fs.Bool("version", false, "print the version and exit")
	)
	fs.Var(&forwards, "forward", "forward `NAME=LISTEN,TARGET` (repeatable)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageHeader)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{err}
	}
	if fs.NArg() > 0 {
		return nil, usagef("unexpected argument %q (forwards are given with --forward NAME=LISTEN,TARGET)", fs.Arg(0))
	}
	if *version {
		return nil, errVersion
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	s := &settings{DrainTimeout: bridge.DefaultDrainTimeout, LogLevel: "info", LogFormat: "auto"}
	d := defaults{MaxConnections: 4096, DialTimeout: bridge.DefaultDialTimeout, DialRetries: 5, DialBackoff: bridge.DefaultDialBackoff}

	// The file.
	path := *configFile
	if env := getenv("HULY_CONFIG"); env != "" {
		path = env
	}
	fileForwards := map[string]*forwardFile{}
	var order []string
	if path != "" {
		var err error
		order, err = loadFile(path, s, &d, fileForwards)
		if err != nil {
			return nil, err
		}
	}

	// Flags over the file.
	if set["metrics-listen"] {
		s.MetricsListen = *metrics
	}
	if set["drain-timeout"] {
		s.DrainTimeout = *drain
	}
	if set["log-level"] {
		s.LogLevel = *logLevel
	}
	if set["log-format"] {
		s.LogFormat = *logFormat
	}
	if set["max-connections"] {
		d.MaxConnections = *maxConns
	}
	if set["idle-timeout"] {
		d.IdleTimeout = *idle
	}
	if set["dial-timeout"] {
		d.DialTimeout = *dialTO
	}
	if set["dial-retries"] {
		d.DialRetries = *retries
	}
	if set["dial-backoff"] {
		d.DialBackoff = *backoff
	}
	for _, spec := range forwards {
		name, ff, err := parseForwardSpec(spec)
		if err != nil {
			return nil, usagef("--forward %q: %v", spec, err)
		}
		if fileForwards[name] == nil {
			order = append(order, name)
		}
		fileForwards[name] = ff
	}

	// The environment over both.
	var errs []error
	envStr := func(key string, dst *string) {
		if v := getenv(key); v != "" {
			*dst = v
		}
	}
	envDur := func(key string, dst *time.Duration) {
		if v := getenv(key); v != "" {
			dv, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: not a duration such as \"5s\"", key, v))
				return
			}
			*dst = dv
		}
	}
	envInt := func(key string, dst *int) {
		if v := getenv(key); v != "" {
			iv, err := strconv.Atoi(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: not an integer", key, v))
				return
			}
			*dst = iv
		}
	}
	envStr("HULY_METRICS_LISTEN", &s.MetricsListen)
	envDur("HULY_DRAIN_TIMEOUT", &s.DrainTimeout)
	envStr("HULY_LOG_LEVEL", &s.LogLevel)
	envStr("HULY_LOG_FORMAT", &s.LogFormat)
	envInt("HULY_MAX_CONNECTIONS", &d.MaxConnections)
	envDur("HULY_IDLE_TIMEOUT", &d.IdleTimeout)
	envDur("HULY_DIAL_TIMEOUT", &d.DialTimeout)
	envInt("HULY_DIAL_RETRIES", &d.DialRetries)
	envDur("HULY_DIAL_BACKOFF", &d.DialBackoff)
	if v := getenv("HULY_FORWARDS"); v != "" {
		for _, spec := range strings.Split(v, ";") {
			if spec = strings.TrimSpace(spec); spec == "" {
				continue
			}
			name, ff, err := parseForwardSpec(spec)
			if err != nil {
				errs = append(errs, fmt.Errorf("HULY_FORWARDS entry %q: %v", spec, err))
				continue
			}
			if fileForwards[name] == nil {
				order = append(order, name)
			}
			fileForwards[name] = ff
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, usageError{err}
	}

	// Checks of the global values, naming where they are set.
	if _, err := logsetup.ParseLevel(s.LogLevel); err != nil {
		errs = append(errs, fmt.Errorf("log_level: %w", err))
	}
	if _, err := logsetup.Formatter(s.LogFormat); err != nil {
		errs = append(errs, fmt.Errorf("log_format: %w", err))
	}
	if s.DrainTimeout < 0 {
		errs = append(errs, fmt.Errorf("drain_timeout %s is negative", s.DrainTimeout))
	}
	if s.MetricsListen != "" {
		if _, err := metricsAddr(s.MetricsListen); err != nil {
			errs = append(errs, fmt.Errorf("metrics_listen: %w", err))
		}
	}
	if len(order) == 0 {
		errs = append(errs, errors.New("no forwards: give --forward NAME=LISTEN,TARGET or a config file with \"forwards\""))
	}
	for _, name := range order {
		ff := fileForwards[name]
		fw := bridge.Forward{
			Name: name, Listen: ff.Listen, Target: ff.Target,
			MaxConnections: pick(ff.MaxConnections, d.MaxConnections),
			IdleTimeout:    pick(ff.IdleTimeout, d.IdleTimeout),
			DialTimeout:    pick(ff.DialTimeout, d.DialTimeout),
			DialRetries:    pick(ff.DialRetries, d.DialRetries),
			DialBackoff:    pick(ff.DialBackoff, d.DialBackoff),
		}
		// Listen may be empty here: whether a socket-activated listener
		// stands in for it is known only at start-up.
		if err := fw.Validate(true); err != nil {
			errs = append(errs, err)
		}
		s.Forwards = append(s.Forwards, fw)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, usageError{err}
	}
	return s, nil
}

var errVersion = errors.New("version requested")

func pick[T any](p *T, def T) T {
	if p != nil {
		return *p
	}
	return def
}

// parseForwardSpec parses NAME=LISTEN,TARGET (LISTEN may be empty).
func parseForwardSpec(spec string) (string, *forwardFile, error) {
	name, rest, ok := strings.Cut(spec, "=")
	if !ok || name == "" {
		return "", nil, errors.New("want NAME=LISTEN,TARGET")
	}
	listen, target, ok := strings.Cut(rest, ",")
	if !ok || target == "" {
		return "", nil, errors.New("want NAME=LISTEN,TARGET (LISTEN empty for a socket-activated listener)")
	}
	return name, &forwardFile{Listen: listen, Target: target}, nil
}

// metricsAddr accepts HOST:PORT or tcp:HOST:PORT.
func metricsAddr(s string) (string, error) {
	a, err := bridge.ParseAddress(s)
	if err != nil {
		a, err = bridge.ParseAddress("tcp:" + s)
	}
	if err != nil || a.Network != "tcp" {
		return "", fmt.Errorf("%q: want HOST:PORT", s)
	}
	return a.Addr, nil
}

// loadFile reads the JSON configuration into s, d and forwards, returning
// the forward names in file order. Every error names the key.
func loadFile(path string, s *settings, d *defaults, forwards map[string]*forwardFile) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("--config: %v", err)
	}
	fail := func(key string, err error) error {
		return usagef("config %s: %s: %v", path, key, err)
	}
	top, order, err := objectInOrder(data)
	if err != nil {
		return nil, usagef("config %s: %v", path, err)
	}
	var names []string
	for _, key := range order {
		raw := top[key]
		switch key {
		case "forwards":
			fws, fnames, err := objectInOrder(raw)
			if err != nil {
				return nil, fail(key, err)
			}
			for _, name := range fnames {
				ff, err := decodeForward(fws[name])
				if err != nil {
					return nil, fail("forwards."+name+err.(keyError).key, err.(keyError).err)
				}
				forwards[name] = ff
				names = append(names, name)
			}
		case "metrics_listen":
			err = decodeString(raw, &s.MetricsListen)
		case "drain_timeout":
			err = decodeDuration(raw, &s.DrainTimeout)
		case "log_level":
			err = decodeString(raw, &s.LogLevel)
		case "log_format":
			err = decodeString(raw, &s.LogFormat)
		case "max_connections":
			err = decodeInt(raw, &d.MaxConnections)
		case "idle_timeout":
			err = decodeDuration(raw, &d.IdleTimeout)
		case "dial_timeout":
			err = decodeDuration(raw, &d.DialTimeout)
		case "dial_retries":
			err = decodeInt(raw, &d.DialRetries)
		case "dial_backoff":
			err = decodeDuration(raw, &d.DialBackoff)
		default:
			err = fmt.Errorf("unknown key (known: %s)", strings.Join(topKeys, ", "))
		}
		if err != nil {
			return nil, fail(key, err)
		}
	}
	return names, nil
}

var topKeys = []string{"forwards", "metrics_listen", "drain_timeout", "log_level", "log_format", "max_connections", "idle_timeout", "dial_timeout", "dial_retries", "dial_backoff"}

var forwardKeys = []string{"listen", "target", "max_connections", "idle_timeout", "dial_timeout", "dial_retries", "dial_backoff"}

type keyError struct {
	key string
	err error
}

func (e keyError) Error() string { return e.key + ": " + e.err.Error() }

func decodeForward(raw json.RawMessage) (*forwardFile, error) {
	obj, order, err := objectInOrder(raw)
	if err != nil {
		return nil, keyError{"", err}
	}
	ff := &forwardFile{}
	for _, key := range order {
		raw := obj[key]
		switch key {
		case "listen":
			err = decodeString(raw, &ff.Listen)
		case "target":
			err = decodeString(raw, &ff.Target)
		case "max_connections":
			ff.MaxConnections = new(int)
			err = decodeInt(raw, ff.MaxConnections)
		case "idle_timeout":
			ff.IdleTimeout = new(time.Duration)
			err = decodeDuration(raw, ff.IdleTimeout)
		case "dial_timeout":
			ff.DialTimeout = new(time.Duration)
			err = decodeDuration(raw, ff.DialTimeout)
		case "dial_retries":
			ff.DialRetries = new(int)
			err = decodeInt(raw, ff.DialRetries)
		case "dial_backoff":
			ff.DialBackoff = new(time.Duration)
			err = decodeDuration(raw, ff.DialBackoff)
		default:
			err = fmt.Errorf("unknown key (known: %s)", strings.Join(forwardKeys, ", "))
		}
		if err != nil {
			return nil, keyError{"." + key, err}
		}
	}
	return ff, nil
}

// objectInOrder decodes a JSON object, keeping its keys' order so forwards
// are listed as written. Duplicate keys are an error.
func objectInOrder(raw json.RawMessage) (map[string]json.RawMessage, []string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, nil, fmt.Errorf("want a JSON object, got %s", describe(tok))
	}
	obj := map[string]json.RawMessage{}
	var order []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, fmt.Errorf("invalid JSON: %w", err)
		}
		key := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, fmt.Errorf("%s: invalid JSON: %w", key, err)
		}
		if _, dup := obj[key]; dup {
			return nil, nil, fmt.Errorf("%s: key given twice", key)
		}
		obj[key] = v
		order = append(order, key)
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if dec.More() {
		return nil, nil, errors.New("invalid JSON: data after the object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, errors.New("invalid JSON: data after the object")
	}
	return obj, order, nil
}

func describe(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		return string(v)
	case string:
		return strconv.Quote(v)
	case nil:
		return "null"
	default:
		return fmt.Sprint(v)
	}
}

func decodeString(raw json.RawMessage, dst *string) error {
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("want a string, got %s", raw)
	}
	return nil
}

func decodeInt(raw json.RawMessage, dst *int) error {
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("want an integer, got %s", raw)
	}
	return nil
}

func decodeDuration(raw json.RawMessage, dst *time.Duration) error {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("want a duration string such as \"5s\", got %s", raw)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration string such as \"5s\", got %q", s)
	}
	*dst = v
	return nil
}
