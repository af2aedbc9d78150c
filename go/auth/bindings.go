package auth

import (
	"fmt"
	"sync"

	"github.com/huly-net/huly-net/go/curve"
)

// Bindings remembers which key registered each agent id: with security on
// an agent id belongs to the first key that registers it, so no other key
// (NULL peers included, as NullKey) can take the agent over or stand in
// for it. A binding lasts until Release or ForgetKey (the key was removed
// from the authorized keys), not just while the agent is connected: an
// agent that restarts finds its id still its own.
//
// The ids bound to one key are bounded (maxPerKey), so an authorized agent
// key cannot grow the table without end by inventing ids.
type Bindings struct {
	mu        sync.Mutex
	maxPerKey int
	owner     map[string]curve.Key
	perKey    map[curve.Key]map[string]struct{}
}

// NewBindings makes an empty table; maxPerKey <= 0 means no bound.
func NewBindings(maxPerKey int) *Bindings {
	return &Bindings{maxPerKey: maxPerKey, owner: map[string]curve.Key{}, perKey: map[curve.Key]map[string]struct{}{}}
}

// BindError is a refused binding; it wraps ErrDenied.
type BindError struct {
	AgentID string
	Key     curve.Key
	Owner   curve.Key // the key the id is bound to; zero when the limit refused it
	Limit   int       // > 0 when the key has reached its limit
}

func (e *BindError) Error() string {
	if e.Limit > 0 {
		return fmt.Sprintf("%s: agent id %q: key %s already has %d agent ids bound (max_agent_ids_per_key)", ErrDenied, e.AgentID, KeyName(e.Key), e.Limit)
	}
	return fmt.Sprintf("%s: agent id %q is bound to another key", ErrDenied, e.AgentID)
}

func (e *BindError) Unwrap() error { return ErrDenied }

// Bind binds agentID to key, or confirms it is already bound to key.
// bound is true when the binding is new (worth an audit entry).
func (b *Bindings) Bind(agentID string, key curve.Key) (bound bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if o, ok := b.owner[agentID]; ok {
		if o != key {
			return false, &BindError{AgentID: agentID, Key: key, Owner: o}
		}
		return false, nil
	}
	ids := b.perKey[key]
	if b.maxPerKey > 0 && len(ids) >= b.maxPerKey {
		return false, &BindError{AgentID: agentID, Key: key, Limit: b.maxPerKey}
	}
	if ids == nil {
		ids = map[string]struct{}{}
		b.perKey[key] = ids
	}
	ids[agentID] = struct{}{}
	b.owner[agentID] = key
	return true, nil
}

// Owner is the key an agent id is bound to.
func (b *Bindings) Owner(agentID string) (curve.Key, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k, ok := b.owner[agentID]
	return k, ok
}

// Release unbinds agentID if key holds it (an operator command, or an
// agent that unregistered for good).
func (b *Bindings) Release(agentID string, key curve.Key) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if o, ok := b.owner[agentID]; !ok || o != key {
		return false
	}
	delete(b.owner, agentID)
	delete(b.perKey[key], agentID)
	if len(b.perKey[key]) == 0 {
		delete(b.perKey, key)
	}
	return true
}

// ForgetKey unbinds every agent id of key and returns them (a key removed
// on reload).
func (b *Bindings) ForgetKey(key curve.Key) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	ids := make([]string, 0, len(b.perKey[key]))
	for id := range b.perKey[key] {
		ids = append(ids, id)
		delete(b.owner, id)
	}
	delete(b.perKey, key)
	return ids
}

// Len is the number of bound agent ids.
func (b *Bindings) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.owner)
}
