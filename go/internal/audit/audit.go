// Package audit records security events (a refused handshake, a denied
// operation, a reload of the authorized keys, an agent id bound to a key or
// refused) as structured journald entries with a stable set of fields, and
// counts them for Prometheus.
//
// Under systemd the entries go to the journal directly, so
//
//	journalctl -u huly-network SECURITY_EVENT=denied
//
// finds every refusal; elsewhere they are logrus warnings carrying the same
// fields. The field names and event names are an interface: add, never
// rename.
package audit

import (
	"strings"
	"unicode/utf8"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/auth"
	"github.com/huly-net/huly-net/go/curve"
)

// Event is the kind of a security event: the SECURITY_EVENT field.
type Event string

// The events.
const (
	// HandshakeRefused: a peer's key (or a NULL peer's address) was refused
	// in the handshake.
	HandshakeRefused Event = "handshake_refused"
	// Denied: an operation was refused by the policy.
	Denied Event = "denied"
	// KeysReloaded: the authorized keys were read again (REASON says what
	// changed).
	KeysReloaded Event = "keys_reloaded"
	// KeysReloadFailed: the authorized-keys file could not be read; the
	// previous keys stay in force.
	KeysReloadFailed Event = "keys_reload_failed"
	// SessionClosed: a session was closed because its key was removed.
	SessionClosed Event = "session_closed"
	// AgentBound: an agent id was bound to the key that registered it.
	AgentBound Event = "agent_bound"
	// AgentRefused: another key tried to register an agent id bound to a
	// different key.
	AgentRefused Event = "agent_refused"
)

// Events lists every event, for metrics and documentation.
var Events = []Event{HandshakeRefused, Denied, KeysReloaded, KeysReloadFailed, SessionClosed, AgentBound, AgentRefused}

// The journal fields of an entry. Empty fields are left out.
const (
	FieldEvent    = "SECURITY_EVENT"
	FieldKey      = "KEY"      // the Z85 public key, or NULL
	FieldKeyName  = "KEY_NAME" // its name from the authorized keys
	FieldPeerAddr = "PEER_ADDR"
	FieldAction   = "ACTION"
	FieldKind     = "KIND"
	FieldAgentID  = "AGENT_ID"
	FieldReason   = "REASON"
)

// maxFieldLen bounds every field: kinds and reasons may come from a peer.
const maxFieldLen = 512

// Record is one security event.
type Record struct {
	Event Event
	// Key is the peer's public key; auth.NullKey for a NULL peer. HasKey
	// false leaves KEY and KEY_NAME out (a reload, for instance).
	Key     curve.Key
	HasKey  bool
	KeyName string
	Peer    string // the peer's address
	Action  string
	Kind    string
	AgentID string
	Reason  string
}

// ForKey fills the key fields of r.
func (r Record) ForKey(k curve.Key, name string) Record {
	r.Key, r.HasKey, r.KeyName = k, true, name
	return r
}

// FromDenied fills a Denied record from a refusal of the policy.
func FromDenied(err *auth.DeniedError, peer string) Record {
	return Record{
		Event: Denied, Key: err.Key, HasKey: true, KeyName: err.Name,
		Peer: peer, Action: string(err.Action), Kind: err.Kind, Reason: err.Reason,
	}
}

// Fields are the record's journal fields (empty ones left out).
func (r Record) Fields() map[string]string {
	f := map[string]string{FieldEvent: string(r.Event)}
	add := func(k, v string) {
		if v != "" {
			f[k] = clip(v)
		}
	}
	if r.HasKey {
		if r.Key == auth.NullKey {
			add(FieldKey, "NULL")
		} else {
			add(FieldKey, r.Key.String())
		}
		add(FieldKeyName, r.KeyName)
	}
	add(FieldPeerAddr, r.Peer)
	add(FieldAction, r.Action)
	add(FieldKind, r.Kind)
	add(FieldAgentID, r.AgentID)
	add(FieldReason, r.Reason)
	return f
}

// Message is the entry's human-readable text.
func (r Record) Message() string {
	var b strings.Builder
	b.WriteString("security: ")
	b.WriteString(string(r.Event))
	if r.HasKey {
		b.WriteString(" key=")
		if r.KeyName != "" {
			b.WriteString(clip(r.KeyName))
		} else {
			b.WriteString(auth.KeyName(r.Key))
		}
	}
	for _, kv := range [][2]string{{"peer", r.Peer}, {"action", r.Action}, {"kind", r.Kind}, {"agent", r.AgentID}} {
		if kv[1] != "" {
			b.WriteString(" " + kv[0] + "=" + clip(kv[1]))
		}
	}
	if r.Reason != "" {
		b.WriteString(": " + clip(r.Reason))
	}
	return b.String()
}

// priority: refusals are warnings, the rest notices.
func (r Record) priority() journal.Priority {
	switch r.Event {
	case KeysReloaded, AgentBound:
		return journal.PriNotice
	}
	return journal.PriWarning
}

func clip(s string) string {
	if len(s) <= maxFieldLen {
		return s
	}
	s = s[:maxFieldLen]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// SendFunc writes one journal entry (journal.Send's signature).
type SendFunc func(message string, priority journal.Priority, vars map[string]string) error

// Auditor records security events. It is safe for concurrent use and is a
// prometheus.Collector of <prefix>_security_events_total{event}.
type Auditor struct {
	log     logrus.FieldLogger
	send    SendFunc // nil: log only
	counter *prometheus.CounterVec
}

// Option adjusts an Auditor.
type Option func(*Auditor)

// WithJournal sends entries with send instead of logging them (tests pass
// a recorder; New picks journal.Send under systemd).
func WithJournal(send SendFunc) Option { return func(a *Auditor) { a.send = send } }

// WithoutJournal logs entries even when journald is there.
func WithoutJournal() Option { return func(a *Auditor) { a.send = nil } }

// New makes an Auditor; metricPrefix names the daemon ("huly_network"
// gives huly_network_security_events_total). Entries go to the journal
// when the daemon's stderr is the journal (it runs under systemd) and
// journald accepts them; otherwise, or when a send fails, they are
// warnings on log.
func New(log logrus.FieldLogger, metricPrefix string, opts ...Option) *Auditor {
	a := &Auditor{
		log: log,
		counter: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricPrefix + "_security_events_total",
			Help: "Security events by type: handshake_refused, denied, keys_reloaded, keys_reload_failed, session_closed, agent_bound, agent_refused.",
		}, []string{"event"}),
	}
	if underJournal() && journal.Enabled() {
		a.send = journal.Send
	}
	for _, o := range opts {
		o(a)
	}
	for _, e := range Events {
		a.counter.WithLabelValues(string(e))
	}
	return a
}

// underJournal is systemd.UnderJournal, without the import cycle risk and
// without printing: a malformed JOURNAL_STREAM means "no".
func underJournal() bool {
	ok, err := journal.StderrIsJournalStream()
	return err == nil && ok
}

// Record writes r to the journal (or the log) and counts it.
func (a *Auditor) Record(r Record) {
	a.counter.WithLabelValues(string(r.Event)).Inc()
	fields := r.Fields()
	if a.send != nil {
		err := a.send(r.Message(), r.priority(), fields)
		if err == nil {
			return
		}
		a.log.WithError(err).Debug("journal refused a security event; logging it instead")
	}
	lf := make(logrus.Fields, len(fields))
	for k, v := range fields {
		lf[k] = v
	}
	entry := a.log.WithFields(lf)
	if r.priority() == journal.PriWarning {
		entry.Warn(r.Message())
	} else {
		entry.Info(r.Message())
	}
}

// Describe implements prometheus.Collector.
func (a *Auditor) Describe(ch chan<- *prometheus.Desc) { a.counter.Describe(ch) }

// Collect implements prometheus.Collector.
func (a *Auditor) Collect(ch chan<- prometheus.Metric) { a.counter.Collect(ch) }
