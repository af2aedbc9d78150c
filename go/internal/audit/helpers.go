package audit

import (
	"errors"
	"fmt"
	"strings"

	"github.com/huly-net/huly-net/go/auth"
	"github.com/huly-net/huly-net/go/curve"
)

// Refused records a refusal from the auth package: an *auth.BindError
// becomes agent_refused, any other *auth.DeniedError becomes denied, or
// handshake_refused when handshake is true. Errors that are not refusals
// are ignored; it reports whether it recorded one.
func (a *Auditor) Refused(err error, peer string, handshake bool) bool {
	var be *auth.BindError
	if errors.As(err, &be) {
		a.Record(Record{Event: AgentRefused, Peer: peer, Action: string(auth.ActionRegister), AgentID: be.AgentID, Reason: be.Error()}.ForKey(be.Key, auth.KeyName(be.Key)))
		return true
	}
	var de *auth.DeniedError
	if !errors.As(err, &de) {
		return false
	}
	r := FromDenied(de, peer)
	if handshake {
		r.Event = HandshakeRefused
	}
	a.Record(r)
	return true
}

// Reloaded records a reload of the authorized keys from path: one
// keys_reloaded entry whose REASON counts the changes and names the
// removed keys.
func (a *Auditor) Reloaded(path string, d auth.Diff) {
	reason := d.String()
	if len(d.Removed) > 0 {
		names := make([]string, len(d.Removed))
		for i, e := range d.Removed {
			names[i] = e.Name
		}
		reason += "; removed: " + strings.Join(names, ", ")
	}
	a.Record(Record{Event: KeysReloaded, Action: "reload " + path, Reason: reason})
}

// ReloadFailed records a reload that kept the previous keys.
func (a *Auditor) ReloadFailed(path string, err error) {
	a.Record(Record{Event: KeysReloadFailed, Action: "reload " + path, Reason: fmt.Sprintf("previous keys stay in force: %v", err)})
}

// SessionClosed records the end of a session whose key was removed.
func (a *Auditor) SessionClosed(k curve.Key, name, peer string) {
	a.Record(Record{Event: SessionClosed, Peer: peer, Reason: "the key was removed from the authorized keys"}.ForKey(k, name))
}

// AgentBound records a new binding of an agent id to a key.
func (a *Auditor) AgentBound(agentID string, k curve.Key, name, peer string) {
	a.Record(Record{Event: AgentBound, Peer: peer, Action: string(auth.ActionRegister), AgentID: agentID}.ForKey(k, name))
}
