package auth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/huly-net/huly-net/go/curve"
)

// Action is what a peer asks to do.
type Action string

// The actions the policy decides on. The kind of each is the container kind
// concerned ("" where none is: an unfiltered list or watch, an operator
// command).
const (
	// ActionRegister: an agent registers (or updates) its containers and
	// kinds; asked once per kind it offers and per container it reports.
	ActionRegister Action = "register"
	// ActionGet: a client gets a container (and may start it).
	ActionGet Action = "get"
	// ActionRequest: a client sends a request to a container.
	ActionRequest Action = "request"
	// ActionConnect: a client connects to an agent's or a container's own
	// endpoint directly.
	ActionConnect Action = "connect"
	// ActionList: list agents, kinds or containers. With a kind it asks
	// about one entry (the server leaves out refused entries); with ""
	// about the whole, unfiltered list.
	ActionList Action = "list"
	// ActionWatch: receive network events; per kind as for ActionList.
	ActionWatch Action = "watch"
	// ActionOperate: an operator command.
	ActionOperate Action = "operate"
)

// roleFor is the role that grants an action on a kind.
var roleFor = map[Action]Role{
	ActionRegister: RoleAgent,
	ActionGet:      RoleClient,
	ActionRequest:  RoleClient,
	ActionConnect:  RoleClient,
	ActionList:     RoleAgent | RoleClient,
	ActionWatch:    RoleAgent | RoleClient,
	ActionOperate:  RoleAdmin,
}

// ErrDenied is wrapped by every refusal of the policy.
var ErrDenied = errors.New("not authorized")

// DeniedError is a refusal: who, what, and why, in words fit for the peer
// and the log.
type DeniedError struct {
	Key    curve.Key
	Name   string // the key's name ("" when the key is not listed)
	Action Action
	Kind   string
	Reason string
}

func (e *DeniedError) Error() string {
	who := "key " + e.Name
	if e.Key == NullKey {
		who = "a peer without a key"
	}
	what := string(e.Action)
	if e.Kind != "" {
		what += fmt.Sprintf(" kind %q", e.Kind)
	}
	return fmt.Sprintf("%s: %s may not %s: %s", ErrDenied, who, what, e.Reason)
}

func (e *DeniedError) Unwrap() error { return ErrDenied }

// Policy is a parsed authorized-keys file. It is immutable; a reload makes
// a new one.
type Policy struct {
	byKey map[curve.Key]Entry
	null  Entry
}

// Lookup returns the entry of a key (for NullKey, the rights of admitted
// NULL peers).
func (p *Policy) Lookup(k curve.Key) (Entry, bool) {
	if k == NullKey {
		return p.null, true
	}
	e, ok := p.byKey[k]
	return e, ok
}

// Name is the name of a key for logs, metrics and answers.
func (p *Policy) Name(k curve.Key) string {
	if e, ok := p.Lookup(k); ok {
		return e.Name
	}
	return KeyName(k)
}

// Entries returns the listed keys in file order (the NULL line included
// when the file has one).
func (p *Policy) Entries() []Entry {
	out := make([]Entry, 0, len(p.byKey))
	for _, e := range p.byKey {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return out
}

// Len is the number of listed keys.
func (p *Policy) Len() int { return len(p.byKey) }

// HasAdmin reports whether a real key (not NULL) has the admin role.
func (p *Policy) HasAdmin() bool {
	for k, e := range p.byKey {
		if k != NullKey && e.Roles.Has(RoleAdmin) {
			return true
		}
	}
	return false
}

// Authorized reports whether a key may connect at all: it is listed.
// NullKey is always "listed" here; whether a NULL peer is admitted is the
// NullAllowList's decision.
func (p *Policy) Authorized(k curve.Key) error {
	if _, ok := p.Lookup(k); !ok {
		return &DeniedError{Key: k, Name: KeyName(k), Action: "connect to the network", Reason: "the key is not in the authorized keys"}
	}
	return nil
}

// Allow decides whether key may do action on kind; nil means yes, else a
// *DeniedError (wrapping ErrDenied) that says why.
func (p *Policy) Allow(k curve.Key, action Action, kind string) error {
	e, ok := p.Lookup(k)
	if !ok {
		return &DeniedError{Key: k, Name: KeyName(k), Action: action, Kind: kind, Reason: "the key is not in the authorized keys"}
	}
	return e.Allow(action, kind)
}

// Allow decides for one entry; see Policy.Allow.
func (e Entry) Allow(action Action, kind string) error {
	deny := func(reason string) error {
		return &DeniedError{Key: e.Key, Name: e.Name, Action: action, Kind: kind, Reason: reason}
	}
	need, known := roleFor[action]
	if !known {
		return deny("unknown action")
	}
	if e.Roles.Has(RoleAdmin) {
		return nil
	}
	if e.Roles&need == 0 {
		return deny(fmt.Sprintf("role %s does not allow it (needs %s)", e.Roles, need|RoleAdmin))
	}
	if kind == "" {
		return deny(fmt.Sprintf("only admin may %s the whole network; role %s sees its kinds only", action, e.Roles))
	}
	if !e.CoversKind(kind) {
		return deny(fmt.Sprintf("the key's kinds are %s", e.KindsString()))
	}
	return nil
}

// Diff is what a reload changed.
type Diff struct {
	Added   []Entry
	Removed []Entry // their sessions must be closed
	Changed []Entry // the new entries of keys whose roles or kinds changed
}

// Empty reports whether nothing changed.
func (d Diff) Empty() bool { return len(d.Added)+len(d.Removed)+len(d.Changed) == 0 }

func (d Diff) String() string {
	return fmt.Sprintf("%d added, %d removed, %d changed", len(d.Added), len(d.Removed), len(d.Changed))
}

// diff compares two policies (NULL rights included).
func diff(old, new *Policy) Diff {
	var d Diff
	for _, e := range new.Entries() {
		o, ok := old.byKey[e.Key]
		switch {
		case !ok && e.Key == NullKey:
			if !old.null.same(e) {
				d.Changed = append(d.Changed, e)
			}
		case !ok:
			d.Added = append(d.Added, e)
		case !o.same(e):
			d.Changed = append(d.Changed, e)
		}
	}
	for _, o := range old.Entries() {
		if _, ok := new.byKey[o.Key]; ok {
			continue
		}
		if o.Key == NullKey {
			if !new.null.same(o) {
				d.Changed = append(d.Changed, new.null)
			}
			continue
		}
		d.Removed = append(d.Removed, o)
	}
	return d
}

// Holder holds the current policy and swaps it atomically on reload:
// readers never lock, and a failed reload keeps the old policy.
type Holder struct {
	path string
	cur  atomic.Pointer[Policy]
	mu   sync.Mutex // serialises reloads
}

// NewHolder holds p; path is the file Reload reads ("" for none).
func NewHolder(path string, p *Policy) *Holder {
	h := &Holder{path: path}
	h.cur.Store(p)
	return h
}

// LoadHolder reads the file at path and holds it.
func LoadHolder(path string) (*Holder, error) {
	p, err := ParseFile(path)
	if err != nil {
		return nil, err
	}
	return NewHolder(path, p), nil
}

// Path is the file the holder reloads from.
func (h *Holder) Path() string { return h.path }

// Policy is the current policy.
func (h *Holder) Policy() *Policy { return h.cur.Load() }

// Allow asks the current policy.
func (h *Holder) Allow(k curve.Key, action Action, kind string) error {
	return h.Policy().Allow(k, action, kind)
}

// Name asks the current policy for a key's name.
func (h *Holder) Name(k curve.Key) string { return h.Policy().Name(k) }

// Authenticate is the transport's CURVE authenticator: a client key is
// admitted to the handshake when it is listed. remote is unused here (a
// listed key is admitted from anywhere).
func (h *Holder) Authenticate(_ context.Context, clientPublic curve.Key, _ net.Addr) error {
	if clientPublic == NullKey {
		return &DeniedError{Key: clientPublic, Name: "NULL", Action: "connect to the network", Reason: "the all-zero key is not a key"}
	}
	return h.Policy().Authorized(clientPublic)
}

// Reload reads the file again and swaps it in. On error the old policy
// stays and the error says which lines are wrong.
func (h *Holder) Reload() (Diff, error) {
	if h.path == "" {
		return Diff{}, errors.New("authorized keys: no file to reload")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	p, err := ParseFile(h.path)
	if err != nil {
		return Diff{}, err
	}
	return diff(h.cur.Swap(p), p), nil
}

// Swap replaces the policy and returns what changed.
func (h *Holder) Swap(p *Policy) Diff {
	h.mu.Lock()
	defer h.mu.Unlock()
	return diff(h.cur.Swap(p), p)
}
