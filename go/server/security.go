package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/huly-net/huly-net/go/auth"
	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/curve"
	"github.com/huly-net/huly-net/go/internal/audit"
	"github.com/huly-net/huly-net/go/network"
	"github.com/huly-net/huly-net/go/transport"
)

// Security turns the network's security on (docs/security.md): the ROUTER
// speaks CURVE with Auth.KeyPair and admits listed keys (and NULL peers
// from Auth.Null's networks only); every method is authorized by the key's
// role and kinds; agent ids are bound to the key that registered them;
// list answers and events show a key only the entries of its kinds; each
// refusal is answered, recorded by Audit and counted.
type Security struct {
	Auth  *auth.Server
	Audit *audit.Auditor
}

// security is a Server's security state.
type security struct {
	s     *Server
	auth  *auth.Server
	aud   *audit.Auditor
	keys  *auth.Holder
	binds *auth.Bindings
	// refusals counts refusals by event and key name.
	refusals *prometheus.CounterVec
}

func newSecurity(s *Server, sec *Security) *security {
	aud := sec.Audit
	if aud == nil {
		aud = audit.New(s.log, "huly_network")
	}
	return &security{
		s: s, auth: sec.Auth, aud: aud, keys: sec.Auth.Keys, binds: sec.Auth.Bindings,
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "huly_network_security_refusals_total",
			Help: "Security refusals by event (handshake_refused, denied, agent_refused) and key name from the authorized keys (NULL for peers without a key, unlisted for keys not in the file).",
		}, []string{"event", "key"}),
	}
}

// transportOptions makes the ROUTER speak CURVE, with the authenticator
// and the NULL allow-list recording their refusals.
func (sc *security) transportOptions(o transport.Options) transport.Options {
	o.CurveServer = &sc.auth.KeyPair
	o.CurveAuthenticate = func(ctx context.Context, pub curve.Key, remote net.Addr) error {
		err := sc.keys.Authenticate(ctx, pub, remote)
		if err != nil {
			sc.aud.Refused(err, addrString(remote), true)
			sc.refusals.WithLabelValues(string(audit.HandshakeRefused), "unlisted").Inc()
		}
		return err
	}
	// Always set, so that a NULL peer's refusal is recorded too (the
	// transport answers it with an ERROR naming its address).
	o.CurveAllowNull = func(remote net.Addr) bool {
		err := sc.auth.Null.Admit(remote)
		if err != nil {
			sc.aud.Refused(err, addrString(remote), true)
			sc.refusals.WithLabelValues(string(audit.HandshakeRefused), "NULL").Inc()
			return false
		}
		return true
	}
	return o
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// Collectors are the security metrics: the audit's events and the
// refusals by key name.
func (s *Server) SecurityCollectors() []prometheus.Collector {
	if s.sec == nil {
		return nil
	}
	return []prometheus.Collector{s.sec.aud, s.sec.refusals}
}

// name is a key's name for answers, logs and metrics.
func (sc *security) name(k curve.Key) string { return sc.keys.Name(k) }

// deny records a refusal and returns it for the peer.
func (sc *security) deny(c backrpc.ClientInfo, err error) error {
	var be *auth.BindError
	event := audit.Denied
	if errors.As(err, &be) {
		// Named by the key's comment, as every other entry.
		event = audit.AgentRefused
		sc.aud.Record(audit.Record{Event: event, Peer: c.Remote, Action: string(auth.ActionRegister), AgentID: be.AgentID, Reason: be.Error()}.ForKey(be.Key, sc.name(be.Key)))
	} else {
		sc.aud.Refused(err, c.Remote, false)
	}
	sc.refusals.WithLabelValues(string(event), sc.name(c.Key)).Inc()
	return err
}

// allow asks the policy and records a refusal.
func (sc *security) allow(c backrpc.ClientInfo, action auth.Action, kind string) error {
	if err := sc.keys.Allow(c.Key, action, kind); err != nil {
		return sc.deny(c, err)
	}
	return nil
}

// errContainerNotFound is the network's answer for an unknown container,
// given before routing when security is on.
type errContainerNotFound string

func (e errContainerNotFound) Error() string { return "Container " + string(e) + " not found" }
func (e errContainerNotFound) Is(target error) bool {
	return target == network.ErrContainerNotFound
}

// handle authorizes a request. done reports that it answered it (a
// refusal, or a method it serves itself: filtered lists, gets checked
// after the fact, routed requests); otherwise the method table serves it.
func (sc *security) handle(ctx context.Context, c backrpc.ClientInfo, method string, params json.RawMessage) (res any, err error, done bool) {
	s := sc.s
	client := network.ClientID(c.ID)
	switch method {
	case "cs":
		uuid, op, data, err := network.DecodeRouteParams(params)
		if err != nil {
			return nil, err, true
		}
		rec, ok := s.net.Container(uuid)
		if !ok {
			return nil, errContainerNotFound(uuid), true
		}
		if err := sc.allow(c, auth.ActionRequest, rec.Kind); err != nil {
			return nil, err, true
		}
		s.net.ClientSeen(client)
		res, err := s.net.Route(ctx, uuid, op, data)
		return res, err, true
	case "ar":
		reg, err := network.DecodeRegistration(params)
		if err != nil {
			return nil, fmt.Errorf("ar: %w", err), true
		}
		for _, kind := range registrationKinds(reg) {
			if err := sc.allow(c, auth.ActionRegister, kind); err != nil {
				return nil, fmt.Errorf("ar: agent %s: %w", reg.UUID, err), true
			}
		}
		bound, err := sc.binds.Bind(string(reg.UUID), c.Key)
		if err != nil {
			return nil, fmt.Errorf("ar: %w", sc.deny(c, err)), true
		}
		if bound {
			sc.aud.AgentBound(string(reg.UUID), c.Key, sc.name(c.Key), c.Remote)
		}
		return nil, nil, false
	case "au":
		id, err := network.DecodeUUIDParams(params)
		if err != nil {
			return nil, fmt.Errorf("au: %w", err), true
		}
		if owner, ok := sc.binds.Owner(id); ok && owner != c.Key {
			return nil, fmt.Errorf("au: %w", sc.deny(c, &auth.BindError{AgentID: id, Key: c.Key, Owner: owner})), true
		}
		return nil, nil, false
	case "cr":
		return nil, nil, false
	case "gg":
		p, err := network.DecodeGetParams(params)
		if err != nil {
			return nil, fmt.Errorf("gg: %w", err), true
		}
		if err := sc.allow(c, auth.ActionGet, p.Kind); err != nil {
			return nil, err, true
		}
		if p.Request.UUID != "" {
			if rec, ok := s.net.Container(p.Request.UUID); ok && rec.Kind != p.Kind {
				if err := sc.allow(c, auth.ActionGet, rec.Kind); err != nil {
					return nil, err, true
				}
			}
		}
		s.net.ClientSeen(client)
		uuid, ref, err := s.net.Get(ctx, client, p.Kind, p.Request)
		if err != nil {
			return nil, err, true
		}
		// The container may be of another kind than asked (a uuid that
		// was started meanwhile): check what was handed out.
		if rec, ok := s.net.Container(uuid); ok && rec.Kind != p.Kind {
			if err := sc.allow(c, auth.ActionGet, rec.Kind); err != nil {
				s.net.Release(client, uuid)
				return nil, err, true
			}
		}
		if agentKey, ok := sc.vouch(ctx, c, uuid); ok {
			return []string{string(uuid), ref, agentKey.String()}, nil, true
		}
		return []string{string(uuid), ref}, nil, true
	case "al", "ak", "cl":
		return sc.list(c, method, params)
	}
	// Any other method (operator commands) is the admin's.
	if err := sc.allow(c, auth.ActionOperate, ""); err != nil {
		return nil, err, true
	}
	return nil, nil, false
}

// registrationKinds are the kinds an agent's registration offers or holds
// containers of, each once.
func registrationKinds(reg network.AgentRegistration) []string {
	seen := map[string]bool{}
	var out []string
	add := func(k string) {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for _, k := range reg.Kinds {
		add(k)
	}
	for _, c := range reg.Containers {
		add(c.Kind)
	}
	return out
}

// list answers al, ak and cl with the entries the key may see; a key that
// may list the whole network gets the method table's answer.
func (sc *security) list(c backrpc.ClientInfo, method string, params json.RawMessage) (any, error, bool) {
	s := sc.s
	if sc.keys.Allow(c.Key, auth.ActionList, "") == nil {
		return nil, nil, false
	}
	pol := sc.keys.Policy()
	may := func(kind string) bool { return pol.Allow(c.Key, auth.ActionList, kind) == nil }
	s.net.ClientSeen(network.ClientID(c.ID))
	switch method {
	case "al":
		out := []network.AgentInfo{}
		for _, a := range s.net.Agents() {
			if kinds := filterKinds(a.Kinds, may); len(kinds) > 0 {
				a.Kinds = kinds
				out = append(out, a)
			}
		}
		return out, nil, true
	case "ak":
		return filterKinds(s.net.Kinds(), may), nil, true
	}
	kind, err := network.DecodeListParams(params)
	if err != nil {
		return nil, fmt.Errorf("cl: %w", err), true
	}
	if kind != "" {
		if err := sc.allow(c, auth.ActionList, kind); err != nil {
			return nil, err, true
		}
		return nonNil(s.net.Containers(kind)), nil, true
	}
	out := []network.ContainerRecord{}
	for _, r := range s.net.Containers("") {
		if may(r.Kind) {
			out = append(out, r)
		}
	}
	return out, nil, true
}

func filterKinds(kinds []string, may func(string) bool) []string {
	out := []string{}
	for _, k := range kinds {
		if may(k) {
			out = append(out, k)
		}
	}
	return out
}

// broadcast sends each session the entries of ev its key may watch.
func (sc *security) broadcast(ev network.Event) {
	pol := sc.keys.Policy()
	_, err := sc.s.rpc.BroadcastPerKey(func(key curve.Key) any {
		if pol.Allow(key, auth.ActionWatch, "") == nil {
			return ev
		}
		may := func(kind string) bool { return pol.Allow(key, auth.ActionWatch, kind) == nil }
		var out network.Event
		for _, a := range ev.Agents {
			if kinds := filterKinds(a.Kinds, may); len(kinds) > 0 {
				a.Kinds = kinds
				out.Agents = append(out.Agents, a)
			}
		}
		for _, ce := range ev.Containers {
			if may(ce.Container.Kind) {
				out.Containers = append(out.Containers, ce)
			}
		}
		if out.Empty() {
			return nil
		}
		return out
	})
	if err != nil {
		sc.s.log.WithError(err).Warn("broadcast network event")
	}
}

// ReloadKeys reads the authorized-keys file again (SIGHUP). Sessions of
// removed keys are closed and their agent ids unbound; sessions of keys
// whose rights changed are closed when they host an agent the key may no
// longer register; every other session stays. A file with errors keeps
// the previous keys.
func (s *Server) ReloadKeys() (auth.Diff, error) {
	sc := s.sec
	if sc == nil {
		return auth.Diff{}, errors.New("security is off: no authorized keys to reload")
	}
	d, err := sc.keys.Reload()
	if err != nil {
		sc.aud.ReloadFailed(sc.keys.Path(), err)
		return d, err
	}
	sc.aud.Reloaded(sc.keys.Path(), d)
	removed := map[curve.Key]auth.Entry{}
	for _, e := range d.Removed {
		removed[e.Key] = e
	}
	changed := map[curve.Key]bool{}
	for _, e := range d.Changed {
		changed[e.Key] = true
	}
	for _, c := range s.rpc.Clients() {
		if e, gone := removed[c.Key]; gone {
			if s.rpc.CloseClient(c.ID) {
				sc.aud.SessionClosed(c.Key, e.Name, c.Remote)
				sc.refusals.WithLabelValues(string(audit.SessionClosed), e.Name).Inc()
			}
			continue
		}
		if !changed[c.Key] {
			continue
		}
		if reason := sc.recheck(c); reason != "" && s.rpc.CloseClient(c.ID) {
			sc.aud.Record(audit.Record{Event: audit.SessionClosed, Peer: c.Remote, Reason: reason}.ForKey(c.Key, sc.name(c.Key)))
			sc.refusals.WithLabelValues(string(audit.SessionClosed), sc.name(c.Key)).Inc()
		}
	}
	var withdrawn []curve.Key
	for k := range removed {
		sc.binds.ForgetKey(k)
		withdrawn = append(withdrawn, k)
	}
	for k := range changed {
		withdrawn = append(withdrawn, k)
	}
	sc.withdraw(withdrawn)
	return d, nil
}

// recheck says why a session no longer fits its key's rights ("" when it
// does): an agent it hosts offers or holds a kind the key may no longer
// register.
func (sc *security) recheck(c backrpc.ClientInfo) string {
	for _, a := range sc.s.net.HostedAgents(network.ClientID(c.ID)) {
		for _, k := range a.Kinds {
			if err := sc.keys.Allow(c.Key, auth.ActionRegister, k); err != nil {
				return fmt.Sprintf("the key's rights changed: agent %s has kind %q: %v", a.ID, k, err)
			}
		}
	}
	return ""
}
