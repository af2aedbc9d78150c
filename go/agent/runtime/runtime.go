// Package runtime holds what huly-agent's container runtimes share: the
// container life cycle (starting, running, stopping, stopped, crashed), the
// restart policy and its backoff, the configuration of a kind, the
// environment a container program is given (the container SDK reads it),
// and the proxy through which the agent talks to a container program's
// direct endpoint.
//
// The runtimes themselves are subpackages: builtin (Go kinds compiled in),
// process (a child process per container), transient (a systemd transient
// unit per container) and nspawn (a systemd-nspawn machine per container).
// Each provides an agent.Factory per kind.
//
// A runtime's containers publish their state through agent.StatusReporter:
// the record's extra gets "state", "runtime" and, for pinned containers,
// "desired" ("running"). A crashed container reports Down, so the agent
// registers without it and the network announces it removed; with restart
// on-failure it comes back, and is registered again, after a backoff.
package runtime

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// State is a container's life-cycle state.
type State string

// States.
const (
	Starting State = "starting"
	Running  State = "running"
	Stopping State = "stopping"
	Stopped  State = "stopped"
	Crashed  State = "crashed"
)

// AllStates in the order STATUS= lists them.
var AllStates = []State{Running, Starting, Stopping, Crashed, Stopped}

// Runtime names, as in the configuration.
const (
	Builtin   = "builtin"
	Process   = "process"
	Transient = "transient"
	Nspawn    = "nspawn"
)

// Restart policies.
const (
	RestartNever     = "never"
	RestartOnFailure = "on-failure"
)

// Defaults of Spec.
const (
	DefaultRestartBackoff = time.Second
	// MaxRestartBackoff caps the doubling of the restart backoff.
	MaxRestartBackoff   = time.Minute
	DefaultStartTimeout = 30 * time.Second
	DefaultStopTimeout  = 10 * time.Second
)

// Spec is the configuration of one kind, as the runtimes need it.
type Spec struct {
	Kind           string
	Command        string
	Args           []string
	Environment    map[string]string
	Labels         []string
	MaxInstances   int // 0: no limit
	Restart        string
	RestartBackoff time.Duration
	// StartTimeout bounds the wait for READY=1.
	StartTimeout time.Duration
	// StopTimeout is how long SIGTERM has before SIGKILL.
	StopTimeout time.Duration
	// UnusedTimeout is how long a unit or machine found at start may wait
	// for a get to claim it before it is stopped (transient, nspawn).
	UnusedTimeout time.Duration
	// Pinned are the uuids of the kind's pinned containers.
	Pinned []string
}

// WithDefaults fills zero fields.
func (s Spec) WithDefaults() Spec {
	if s.Restart == "" {
		s.Restart = RestartNever
	}
	if s.RestartBackoff <= 0 {
		s.RestartBackoff = DefaultRestartBackoff
	}
	if s.StartTimeout <= 0 {
		s.StartTimeout = DefaultStartTimeout
	}
	if s.StopTimeout <= 0 {
		s.StopTimeout = DefaultStopTimeout
	}
	if s.UnusedTimeout <= 0 {
		s.UnusedTimeout = 5 * time.Second
	}
	return s
}

// IsPinned reports whether uuid is one of the kind's pinned containers.
func (s Spec) IsPinned(uuid string) bool {
	for _, p := range s.Pinned {
		if p == uuid {
			return true
		}
	}
	return false
}

// Backoff is the wait before restart number attempt (0 for the first):
// base doubled per attempt, capped at MaxRestartBackoff.
func Backoff(base time.Duration, attempt int) time.Duration {
	if base <= 0 {
		base = DefaultRestartBackoff
	}
	d := base
	for i := 0; i < attempt && d < MaxRestartBackoff; i++ {
		d *= 2
	}
	return min(d, MaxRestartBackoff)
}

// EnvCurveSecret and EnvCurveClients secure a child's endpoint on a secured
// network (read by package container).
const (
	EnvCurveSecret  = "HULY_CURVE_SECRET_KEY"
	EnvCurveClients = "HULY_CURVE_CLIENT_KEYS"
)

// Container environment variable names (read by package container).
const (
	EnvUUID     = "HULY_CONTAINER_UUID"
	EnvKind     = "HULY_CONTAINER_KIND"
	EnvLabels   = "HULY_CONTAINER_LABELS"
	EnvExtra    = "HULY_CONTAINER_EXTRA"
	EnvListen   = "HULY_LISTEN"
	EnvListenFD = "HULY_LISTEN_FD"
	EnvRelay    = "HULY_RELAY_LISTEN"
)

// ContainerEnv is the environment of a container program, sorted: the
// kind's environment, then what the SDK reads (which wins).
func ContainerEnv(spec Spec, uuid string, labels []string, extra json.RawMessage, listen string) []string {
	m := map[string]string{}
	for k, v := range spec.Environment {
		m[k] = v
	}
	if labels == nil {
		labels = []string{}
	}
	lb, _ := json.Marshal(labels) // a []string always marshals
	m[EnvUUID] = uuid
	m[EnvKind] = spec.Kind
	m[EnvLabels] = string(lb)
	if len(extra) > 0 && string(extra) != "null" {
		m[EnvExtra] = string(extra)
	}
	if listen != "" {
		m[EnvListen] = listen
	}
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// InheritedEnv is the agent's own environment minus what belongs to the
// agent alone: its HULY_* configuration and systemd's per-process
// variables (a child must not answer the agent's notify socket).
func InheritedEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "HULY_"),
			k == "NOTIFY_SOCKET", k == "WATCHDOG_USEC", k == "WATCHDOG_PID",
			strings.HasPrefix(k, "LISTEN_"):
			continue
		}
		out = append(out, kv)
	}
	return out
}

// ShortUUID is the part of a uuid used in unit and machine names: its
// first 8 characters that are letters or digits.
func ShortUUID(uuid string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(uuid) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			if b.Len() == 8 {
				break
			}
		}
	}
	if b.Len() == 0 {
		return "x"
	}
	return b.String()
}

// NameSafe reduces s to characters valid in a unit or machine name.
func NameSafe(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Registry counts a runtime's live containers by kind and state (for
// max_instances and the daemon's STATUS=).
type Registry struct {
	mu sync.Mutex
	m  map[string]*Status // uuid → status
}

// Status is a container's state as a runtime tracks it.
type Status struct {
	mu       sync.Mutex
	uuid     string
	kind     string
	runtime  string
	pinned   bool
	state    State
	restarts int
	exit     string // the last exit, for operators
	onChange func()
}

// NewStatus tracks a container in state Starting.
func NewStatus(uuid, kind, runtime string, pinned bool) *Status {
	return &Status{uuid: uuid, kind: kind, runtime: runtime, pinned: pinned, state: Starting}
}

// OnChange sets a function called after every state change (outside locks).
func (s *Status) OnChange(f func()) {
	s.mu.Lock()
	s.onChange = f
	s.mu.Unlock()
}

// Set moves the container to state st.
func (s *Status) Set(st State) {
	s.mu.Lock()
	changed := s.state != st
	s.state = st
	f := s.onChange
	s.mu.Unlock()
	if changed && f != nil {
		f()
	}
}

// Crashed records an exit and moves to Crashed.
func (s *Status) Crashed(exit string) {
	s.mu.Lock()
	s.exit = exit
	s.mu.Unlock()
	s.Set(Crashed)
}

// Restarted counts a restart.
func (s *Status) Restarted() {
	s.mu.Lock()
	s.restarts++
	s.mu.Unlock()
}

// State is the current state.
func (s *Status) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// Kind is the container's kind.
func (s *Status) Kind() string { return s.kind }

// UUID is the container's uuid.
func (s *Status) UUID() string { return s.uuid }

// Report is the agent.ContainerStatus fields: state, runtime, desired
// (pinned containers), restarts and the last exit when there were any.
func (s *Status) Report() (fields map[string]any, down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fields = map[string]any{"state": string(s.state), "runtime": s.runtime}
	if s.pinned {
		fields["desired"] = string(Running)
	}
	if s.restarts > 0 {
		fields["restarts"] = s.restarts
	}
	if s.exit != "" {
		fields["last_exit"] = s.exit
	}
	return fields, s.state != Running
}

// Add tracks s; it fails when the kind already has max live containers
// (max 0: no limit).
func (r *Registry) Add(s *Status, max int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]*Status{}
	}
	if old := r.m[s.uuid]; old != nil && old != s {
		return fmt.Errorf("container %s is already running", s.uuid)
	}
	if max > 0 {
		n := 0
		for _, o := range r.m {
			if o.kind == s.kind {
				n++
			}
		}
		if n >= max {
			return fmt.Errorf("kind %s already has its max_instances (%d) containers", s.kind, max)
		}
	}
	r.m[s.uuid] = s
	return nil
}

// Remove forgets s.
func (r *Registry) Remove(s *Status) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m[s.uuid] == s {
		delete(r.m, s.uuid)
	}
}

// Get returns the tracked status of uuid.
func (r *Registry) Get(uuid string) *Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[uuid]
}

// Counts returns how many containers are in each state.
func (r *Registry) Counts() map[State]int {
	r.mu.Lock()
	list := make([]*Status, 0, len(r.m))
	for _, s := range r.m {
		list = append(list, s)
	}
	r.mu.Unlock()
	out := map[State]int{}
	for _, s := range list {
		out[s.State()]++
	}
	return out
}

// All lists the tracked statuses.
func (r *Registry) All() []*Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Status, 0, len(r.m))
	for _, s := range r.m {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].uuid < out[j].uuid })
	return out
}
