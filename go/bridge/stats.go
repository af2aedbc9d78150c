package bridge

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// TargetState is what the bridge last learnt about a forward's target.
type TargetState int

// Target states.
const (
	TargetUnknown     TargetState = iota // never dialled
	TargetReachable                      // the last dial succeeded
	TargetUnreachable                    // the last dial failed
)

func (s TargetState) String() string {
	switch s {
	case TargetReachable:
		return "reachable"
	case TargetUnreachable:
		return "unreachable"
	default:
		return "unknown"
	}
}

// ForwardStats is a snapshot of one forward's counters.
type ForwardStats struct {
	Name   string
	Listen string // the addresses actually listened on
	Target string

	ActiveConnections int64
	TotalConnections  uint64 // accepted and served (not rejected)
	BytesUp           uint64 // client to target
	BytesDown         uint64 // target to client
	DialErrors        uint64 // failed dial attempts, retries included
	DialFailures      uint64 // connections closed because every attempt failed
	Rejected          uint64 // closed at once over MaxConnections
	IdleClosed        uint64 // closed by the idle timeout

	TargetState TargetState
	// TargetSince is when TargetState last changed.
	TargetSince   time.Time
	LastDialError string
}

type forward struct {
	cfg        Forward
	target     Address
	listenAddr Address
	listeners  []net.Listener
	activated  bool

	active       atomic.Int64
	total        atomic.Uint64
	bytesUp      atomic.Uint64
	bytesDown    atomic.Uint64
	dialErrors   atomic.Uint64
	dialFailures atomic.Uint64
	rejected     atomic.Uint64
	idleClosed   atomic.Uint64

	// reachable mirrors state for the lock-free fast path of markReachable,
	// which runs on every connection.
	reachable atomic.Bool
	stateMu   sync.Mutex
	state     TargetState
	since     time.Time
	lastErr   string
}

func (f *forward) markReachable(log logrus.FieldLogger) {
	if f.reachable.Load() {
		return
	}
	f.stateMu.Lock()
	prev, since := f.state, f.since
	if f.state != TargetReachable {
		f.state, f.since = TargetReachable, time.Now()
		f.reachable.Store(true)
	}
	f.stateMu.Unlock()
	if prev == TargetUnreachable {
		log.WithFields(logrus.Fields{"forward": f.cfg.Name, "target": f.target.String(), "down_for": time.Since(since).Round(time.Millisecond)}).Info("target reachable again")
	}
}

func (f *forward) markUnreachable(log logrus.FieldLogger, err error) {
	f.stateMu.Lock()
	prev := f.state
	f.lastErr = err.Error()
	if f.state != TargetUnreachable {
		f.state, f.since = TargetUnreachable, time.Now()
		f.reachable.Store(false)
	}
	f.stateMu.Unlock()
	if prev != TargetUnreachable {
		log.WithError(err).WithFields(logrus.Fields{"forward": f.cfg.Name, "target": f.target.String()}).Warn("target unreachable")
	}
}

func (f *forward) stats() ForwardStats {
	f.stateMu.Lock()
	state, since, lastErr := f.state, f.since, f.lastErr
	f.stateMu.Unlock()
	return ForwardStats{
		Name:              f.cfg.Name,
		Listen:            f.listenString(),
		Target:            f.target.String(),
		ActiveConnections: f.active.Load(),
		TotalConnections:  f.total.Load(),
		BytesUp:           f.bytesUp.Load(),
		BytesDown:         f.bytesDown.Load(),
		DialErrors:        f.dialErrors.Load(),
		DialFailures:      f.dialFailures.Load(),
		Rejected:          f.rejected.Load(),
		IdleClosed:        f.idleClosed.Load(),
		TargetState:       state,
		TargetSince:       since,
		LastDialError:     lastErr,
	}
}

// Stats returns a snapshot per forward, in configuration order.
func (b *Bridge) Stats() []ForwardStats {
	b.listenMu.Lock()
	defer b.listenMu.Unlock()
	out := make([]ForwardStats, 0, len(b.forwards))
	for _, f := range b.forwards {
		out = append(out, f.stats())
	}
	return out
}
