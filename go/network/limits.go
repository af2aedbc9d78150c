package network

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// KindLimit bounds one kind across the network; 0 means no limit.
type KindLimit struct {
	// MaxContainers: containers of the kind (starting ones included). A
	// get that would start one more fails at once.
	MaxContainers int
	// MaxRequests: routed requests (cs) to containers of the kind in
	// flight at once. One more fails at once instead of queueing.
	MaxRequests int
}

// KindLimits are the network's limits per kind: Default for every kind,
// unless PerKind names it (then that entry replaces Default entirely).
type KindLimits struct {
	Default KindLimit
	PerKind map[string]KindLimit
}

// For returns the limit of kind.
func (l KindLimits) For(kind string) KindLimit {
	if k, ok := l.PerKind[kind]; ok {
		return k
	}
	return l.Default
}

func (l KindLimits) requestsLimited() bool {
	if l.Default.MaxRequests > 0 {
		return true
	}
	for _, k := range l.PerKind {
		if k.MaxRequests > 0 {
			return true
		}
	}
	return false
}

// ParseKindLimit reads "KIND=CONTAINERS/REQUESTS" (either number may be
// empty or 0: no limit), the form of the kind_limits setting.
func ParseKindLimit(s string) (string, KindLimit, error) {
	kind, spec, ok := strings.Cut(strings.TrimSpace(s), "=")
	if !ok || kind == "" {
		return "", KindLimit{}, fmt.Errorf("kind limit %q: want KIND=CONTAINERS/REQUESTS", s)
	}
	cs, rs, _ := strings.Cut(spec, "/")
	var l KindLimit
	for _, f := range []struct {
		text string
		dst  *int
		name string
	}{{cs, &l.MaxContainers, "containers"}, {rs, &l.MaxRequests, "requests"}} {
		if f.text == "" {
			continue
		}
		v, err := strconv.Atoi(f.text)
		if err != nil || v < 0 {
			return "", KindLimit{}, fmt.Errorf("kind limit %q: %s must be a number ≥ 0", s, f.name)
		}
		*f.dst = v
	}
	return kind, l, nil
}

// ErrKindAtLimit matches (errors.Is) a get or a request refused because
// its kind is at one of its limits.
var ErrKindAtLimit = errors.New("kind at its limit")

type kindLimitError struct {
	kind  string
	what  string
	limit int
}

func (e *kindLimitError) Error() string {
	return fmt.Sprintf("kind %s is at its limit: %d %s", e.kind, e.limit, e.what)
}
func (e *kindLimitError) Is(target error) bool { return target == ErrKindAtLimit }

// kindLimiter enforces KindLimits. Requests in flight are counted outside
// the network's lock, and only when some request limit is set.
type kindLimiter struct {
	limits      KindLimits
	requestsOn  bool
	log         logrus.FieldLogger
	mu          sync.Mutex
	kinds       map[string]*kindCounters
	lastWarning map[string]time.Time
}

type kindCounters struct {
	inflight         atomic.Int64
	rejectedGets     atomic.Uint64
	rejectedRequests atomic.Uint64
}

func (l *kindLimiter) init(limits KindLimits, log logrus.FieldLogger) {
	l.limits = limits
	l.requestsOn = limits.requestsLimited()
	l.log = log
	l.kinds = map[string]*kindCounters{}
	l.lastWarning = map[string]time.Time{}
}

// counters returns the counters of kind, creating them. Kinds come from
// agents' registrations and containers, not from callers, so the map is
// bounded by what agents offer.
func (l *kindLimiter) counters(kind string) *kindCounters {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := l.kinds[kind]
	if k == nil {
		k = &kindCounters{}
		l.kinds[kind] = k
	}
	return k
}

// warn logs a refusal at most once per kind and limit every 10 s, so that a
// flood of refused calls does not flood the log.
func (l *kindLimiter) warn(err *kindLimitError, fields logrus.Fields) {
	key := err.kind + "\x00" + err.what
	now := time.Now()
	l.mu.Lock()
	if t, ok := l.lastWarning[key]; ok && now.Sub(t) < 10*time.Second {
		l.mu.Unlock()
		return
	}
	l.lastWarning[key] = now
	l.mu.Unlock()
	fields["kind"] = err.kind
	fields["limit"] = err.limit
	l.log.WithFields(fields).Warnf("kind at its limit of %s; refusing (logged at most every 10 s per kind)", err.what)
}

// admitContainerLocked refuses a new container of kind when the kind has
// its maximum of containers, counting starts in flight.
func (l *kindLimiter) admitContainerLocked(n *Network, clientID ClientID, kind string) error {
	max := l.limits.For(kind).MaxContainers
	if max <= 0 {
		return nil
	}
	if len(n.byKind[kind])+len(n.pendingByKind[kind]) < max {
		return nil
	}
	l.counters(kind).rejectedGets.Add(1)
	err := &kindLimitError{kind: kind, what: "containers", limit: max}
	l.warn(err, logrus.Fields{"client": clientID})
	return err
}

// admitRequest counts a routed request to a container of kind; done must
// be called when it ends.
func (l *kindLimiter) admitRequest(kind string, uuid ContainerUUID) (done func(), err error) {
	k := l.counters(kind)
	max := l.limits.For(kind).MaxRequests
	if max <= 0 {
		k.inflight.Add(1)
		return func() { k.inflight.Add(-1) }, nil
	}
	if k.inflight.Add(1) > int64(max) {
		k.inflight.Add(-1)
		k.rejectedRequests.Add(1)
		e := &kindLimitError{kind: kind, what: "concurrent requests", limit: max}
		l.warn(e, logrus.Fields{"container": uuid})
		return nil, e
	}
	return func() { k.inflight.Add(-1) }, nil
}

// admitRoute applies the request limit of the container's kind to one
// routed request; a container that is not known passes (Route answers).
func (n *Network) admitRoute(uuid ContainerUUID) (func(), error) {
	n.mu.RLock()
	c := n.containers[uuid]
	kind := ""
	if c != nil {
		kind = c.rec.Kind
	}
	n.mu.RUnlock()
	if c == nil {
		return func() {}, nil
	}
	return n.limits.admitRequest(kind, uuid)
}

// KindStat describes one kind: who offers it, what it holds and its limits.
type KindStat struct {
	Kind       string `json:"kind"`
	Agents     int    `json:"agents"`
	Containers int    `json:"containers"`
	// Starting: gets in flight that start a container of the kind.
	Starting      int `json:"starting"`
	MaxContainers int `json:"maxContainers"` // 0: no limit
	// Requests: routed requests in flight (counted only while some
	// request limit is set).
	Requests         int64  `json:"requests"`
	MaxRequests      int    `json:"maxRequests"` // 0: no limit
	RejectedGets     uint64 `json:"rejectedGets"`
	RejectedRequests uint64 `json:"rejectedRequests"`
}

// KindStats lists every kind offered by an agent or held by a container,
// sorted, with its counts and limits.
func (n *Network) KindStats() []KindStat {
	n.mu.RLock()
	byKind := map[string]*KindStat{}
	get := func(k string) *KindStat {
		s := byKind[k]
		if s == nil {
			lim := n.limits.limits.For(k)
			s = &KindStat{Kind: k, MaxContainers: lim.MaxContainers, MaxRequests: lim.MaxRequests}
			byKind[k] = s
		}
		return s
	}
	for k, as := range n.kindAgents {
		get(k).Agents = len(as)
	}
	for k, cs := range n.byKind {
		get(k).Containers = len(cs)
	}
	for k, ps := range n.pendingByKind {
		get(k).Starting = len(ps)
	}
	n.mu.RUnlock()
	n.limits.mu.Lock()
	for k, c := range n.limits.kinds {
		s, ok := byKind[k]
		if !ok {
			continue // a kind nobody offers or holds any more
		}
		s.Requests = c.inflight.Load()
		s.RejectedGets = c.rejectedGets.Load()
		s.RejectedRequests = c.rejectedRequests.Load()
	}
	n.limits.mu.Unlock()
	out := make([]KindStat, 0, len(byKind))
	for _, s := range byKind {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Kind < out[j].Kind })
	return out
}

// AdmitRequest applies the request limit of the container's kind to a
// routed call other than cs (a stream's open or next); done must be called
// when it ends. Without request limits it costs nothing.
func (n *Network) AdmitRequest(uuid ContainerUUID) (done func(), err error) {
	if !n.limits.requestsOn {
		return func() {}, nil
	}
	return n.admitRoute(uuid)
}
