package agentd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/huly-net/huly-net/go/agent/runtime"
	"github.com/huly-net/huly-net/go/agent/runtime/builtin"
	"github.com/huly-net/huly-net/go/agent/runtime/transient"
	"github.com/huly-net/huly-net/go/internal/config"
	"github.com/huly-net/huly-net/go/internal/daemon"
)

// Config is huly-agent's configuration: JSON keys, flags and HULY_*
// variables come from the json tags (see internal/config); kinds is
// file-only.
type Config struct {
	Network       string   `json:"network" usage:"the network server, HOST:PORT"`
	AgentID       string   `json:"agent_id" usage:"agent id (default: generated once and kept in $STATE_DIRECTORY/agent-id)"`
	Listen        string   `json:"listen" usage:"where the agent's endpoint binds, HOST:PORT (the host is honoured; process containers bind there too)"`
	AdvertiseHost string   `json:"advertise_host" usage:"host clients use to reach this agent and its containers (default: the listen host, or the host name when it binds every interface)"`
	Labels        []string `json:"labels" flag:"label" usage:"a label of the agent, added to its containers (repeatable)"`
	Kinds         Kinds    `json:"kinds"`
	// Security (docs/security.md); security.go.
	CurveSecretKeyFile string `json:"curve_secret_key_file" usage:"the agent's CURVE secret key file for a secured network (credential:NAME reads a systemd credential; empty uses the credential curve.key when present)"`
	CurveServerKey     string `json:"curve_server_key" usage:"the network's CURVE public key (Z85) for a secured network"`
	daemon.Base
}

// Kinds are the kinds the agent offers, by name (kinds.NAME).
type Kinds = config.Named[Kind]

// Kind is the configuration of one kind (kinds.NAME).
type Kind struct {
	Runtime        string            `json:"runtime"`
	Builtin        string            `json:"builtin"`
	Command        string            `json:"command"`
	Args           []string          `json:"args"`
	Environment    map[string]string `json:"environment"`
	Labels         []string          `json:"labels"`
	MaxInstances   int               `json:"max_instances"`
	Restart        string            `json:"restart"`
	RestartBackoff config.Duration   `json:"restart_backoff"`
	UnusedTimeout  config.Duration   `json:"unused_timeout"`
	StartTimeout   config.Duration   `json:"start_timeout"`
	StopTimeout    config.Duration   `json:"stop_timeout"`
	Pinned         []Pinned          `json:"pinned"`
	UnitProperties map[string]any    `json:"unit_properties"`
	Nspawn         *Nspawn           `json:"nspawn"`
}

// Pinned is a container the agent keeps running and registered.
type Pinned struct {
	UUID      string   `json:"uuid"`
	Labels    []string `json:"labels"`
	Stateless bool     `json:"stateless"`
}

// Nspawn holds the nspawn runtime's options of a kind.
type Nspawn struct {
	Directory      string   `json:"directory"`
	Image          string   `json:"image"`
	PrivateNetwork bool     `json:"private_network"`
	Bind           []string `json:"bind"`
	Port           int      `json:"port"`
}

// DefaultConfig returns the configuration's defaults.
func DefaultConfig() *Config {
	return &Config{
		Network: "127.0.0.1:3737",
		Listen:  "0.0.0.0:3738",
		Labels:  []string{},
		Base:    daemon.DefaultBase(),
	}
}

var runtimes = []string{runtime.Builtin, runtime.Process, runtime.Transient, runtime.Nspawn}

// Validate checks the configuration; every error names its key. A
// command given by name is resolved to its absolute path.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if _, _, err := net.SplitHostPort(c.Network); err != nil {
		add("network: want HOST:PORT: %v", err)
	}
	if host, port, err := net.SplitHostPort(c.Listen); err != nil {
		add("listen: want HOST:PORT: %v", err)
	} else {
		if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			add("listen: bad port %q", port)
		}
		if host != "" && net.ParseIP(host) == nil {
			add("listen: want an IP address to bind, got %q", host)
		}
	}
	if strings.ContainsAny(c.AdvertiseHost, " /[]") {
		add("advertise_host: want a host name or IP address, got %q", c.AdvertiseHost)
	}
	if c.AgentID != "" && strings.TrimSpace(c.AgentID) != c.AgentID {
		add("agent_id: leading or trailing space in %q", c.AgentID)
	}
	pinnedAt := map[string]string{}
	for _, name := range c.Kinds.Names() {
		errs = append(errs, c.Kinds.Get(name).validate(name, pinnedAt)...)
	}
	return errors.Join(errs...)
}

// validate checks kind name; pinnedAt records the pinned uuids seen so far
// (uuid → key), which must be unique across kinds.
func (k *Kind) validate(name string, pinnedAt map[string]string) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	key := "kinds." + name
	if name == "" || strings.ContainsAny(name, " \t\n/") {
		add("kinds: bad kind name %q", name)
	}
	switch k.Runtime {
	case "":
		add("%s.runtime: required (one of %s)", key, strings.Join(runtimes, ", "))
	case runtime.Builtin:
		if k.Builtin == "" {
			add("%s.builtin: required for runtime builtin (one of %s)", key, strings.Join(builtin.Names, ", "))
		} else if _, ok := builtin.Lookup(k.Builtin); !ok {
			add("%s.builtin: unknown builtin %q (one of %s)", key, k.Builtin, strings.Join(builtin.Names, ", "))
		}
	case runtime.Process, runtime.Transient, runtime.Nspawn:
		if k.Command == "" {
			add("%s.command: required for runtime %s", key, k.Runtime)
		} else if k.Runtime != runtime.Nspawn && !filepath.IsAbs(k.Command) {
			// systemd wants an absolute ExecStart, and a process
			// child should not depend on the agent's working directory.
			abs, err := exec.LookPath(k.Command)
			if err != nil || !filepath.IsAbs(abs) {
				add("%s.command: %q is not an absolute path and was not found in PATH", key, k.Command)
			} else {
				k.Command = abs
			}
		}
	default:
		add("%s.runtime: unknown runtime %q (one of %s)", key, k.Runtime, strings.Join(runtimes, ", "))
	}
	switch k.Restart {
	case "", runtime.RestartNever, runtime.RestartOnFailure:
	default:
		add("%s.restart: want %q or %q, got %q", key, runtime.RestartNever, runtime.RestartOnFailure, k.Restart)
	}
	if k.MaxInstances < 0 {
		add("%s.max_instances: must not be negative", key)
	}
	for _, d := range []struct {
		k string
		v config.Duration
	}{{"restart_backoff", k.RestartBackoff}, {"unused_timeout", k.UnusedTimeout}, {"start_timeout", k.StartTimeout}, {"stop_timeout", k.StopTimeout}} {
		if d.v < 0 {
			add("%s.%s: must not be negative", key, d.k)
		}
	}
	for i, p := range k.Pinned {
		pk := fmt.Sprintf("%s.pinned[%d].uuid", key, i)
		switch {
		case p.UUID == "":
			add("%s: required", pk)
		case pinnedAt[p.UUID] != "":
			add("%s: duplicate pinned uuid %q (also %s)", pk, p.UUID, pinnedAt[p.UUID])
		default:
			pinnedAt[p.UUID] = pk
		}
	}
	for prop, v := range k.UnitProperties {
		str, err := unitPropertyString(v)
		if err == nil {
			_, err = transient.ParseProperty(prop, str)
		}
		if err != nil {
			add("%s.unit_properties.%s: %v", key, prop, err)
		}
	}
	if len(k.UnitProperties) > 0 && k.Runtime != runtime.Transient && k.Runtime != runtime.Nspawn {
		add("%s.unit_properties: only for runtime transient or nspawn", key)
	}
	if k.Runtime == runtime.Nspawn {
		n := k.Nspawn
		if n == nil {
			add("%s.nspawn: required for runtime nspawn", key)
			return errs
		}
		if (n.Directory == "") == (n.Image == "") {
			add("%s.nspawn: give exactly one of directory and image", key)
		}
		if n.Port < 1 || n.Port > 65535 {
			add("%s.nspawn.port: want the container's port, 1-65535, got %d", key, n.Port)
		}
		for i, b := range n.Bind {
			if b == "" || !strings.HasPrefix(b, "/") {
				add("%s.nspawn.bind[%d]: want /HOST[:/CONTAINER], got %q", key, i, b)
			}
		}
	} else if k.Nspawn != nil {
		add("%s.nspawn: only for runtime nspawn", key)
	}
	return errs
}

// unitPropertyString turns a unit property value given in JSON (string,
// number or boolean) into systemd's text form.
func unitPropertyString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		if x {
			return "yes", nil
		}
		return "no", nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	}
	return "", fmt.Errorf("want a string, number or boolean, got %T", v)
}

// spec is the runtime.Spec of kind name.
func (k *Kind) spec(name string) runtime.Spec {
	s := runtime.Spec{
		Kind:           name,
		Command:        k.Command,
		Args:           k.Args,
		Environment:    k.Environment,
		Labels:         k.Labels,
		MaxInstances:   k.MaxInstances,
		Restart:        k.Restart,
		RestartBackoff: k.RestartBackoff.D(),
		StartTimeout:   k.StartTimeout.D(),
		StopTimeout:    k.StopTimeout.D(),
		UnusedTimeout:  k.UnusedTimeout.D(),
	}
	for _, p := range k.Pinned {
		s.Pinned = append(s.Pinned, p.UUID)
	}
	return s.WithDefaults()
}

// agentID returns the configured id, or the one kept in the state
// directory (made on first use). Without a state directory the id lives
// only as long as the process, which the log says.
func agentID(cfg *Config, getenv func(string) string) (id string, persisted string, err error) {
	if cfg.AgentID != "" {
		return cfg.AgentID, "", nil
	}
	dir := getenv("STATE_DIRECTORY")
	if i := strings.IndexByte(dir, ':'); i >= 0 {
		dir = dir[:i]
	}
	if dir == "" {
		return uuid.NewString(), "", nil
	}
	path := filepath.Join(dir, "agent-id")
	b, err := os.ReadFile(path)
	if err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, path, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", "", fmt.Errorf("read agent id: %w", err)
	}
	id = uuid.NewString()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("keep agent id in %s: %w", dir, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", "", fmt.Errorf("keep agent id in %s: %w", dir, err)
	}
	return id, path, nil
}

// advertised is the host clients reach the agent at.
func advertised(cfg *Config) string {
	if cfg.AdvertiseHost != "" {
		return cfg.AdvertiseHost
	}
	host, _, _ := net.SplitHostPort(cfg.Listen)
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		return host
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "127.0.0.1"
}
