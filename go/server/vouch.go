package server

import (
	"context"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/auth"
	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/curve"
	"github.com/huly-net/huly-net/go/network"
)

// Direct connections on a secured network (docs/security.md, "Direct
// connections"). An agent that connects to the network with a CURVE key
// serves its own endpoint with that key and admits only the client keys
// the network vouched for. When the network hands a keyed client a
// reference (gg) after its policy allowed it, it first tells the hosting
// agent, over the agent's authenticated session, that the client's key may
// connect to that container (back-request vouchMethod), and answers the
// client [uuid, ref, agentKey] so that the client can check it talks to
// that agent. A reload that removes a key or changes its rights withdraws
// every vouch for it (withdrawMethod).
const (
	// vouchMethod: [agentId, [clientKey, containerUuid]].
	vouchMethod = "vk"
	// withdrawMethod: [agentId, [clientKey]]: every vouch for the key.
	withdrawMethod = "vw"
	// vouchTimeout bounds a withdrawal sent after a reload.
	vouchTimeout = 5 * time.Second
)

// vouch tells the agent hosting uuid that the client's key may connect to
// it, and returns the agent's key; ok is false when the agent has no key
// (its endpoint speaks NULL: nothing to vouch) or the client has none.
func (sc *security) vouch(ctx context.Context, c backrpc.ClientInfo, uuid network.ContainerUUID) (agentKey curve.Key, ok bool) {
	if c.Key == auth.NullKey {
		return curve.Key{}, false
	}
	to, found := sc.s.net.RouteTarget(uuid)
	if !found {
		return curve.Key{}, false
	}
	host, found := sc.s.rpc.Client(string(to.Client))
	if !found || host.Key == auth.NullKey {
		return curve.Key{}, false
	}
	if _, err := (caller{sc.s}).call(ctx, to, vouchMethod, []string{c.Key.String(), string(uuid)}); err != nil {
		// An agent that does not know the method (another build) keeps
		// its endpoint as it is; the reference stays usable routed.
		sc.s.log.WithError(err).WithFields(logrus.Fields{"agent": to.Agent, "key": sc.name(c.Key)}).Warn("the agent did not take the network's vouch for a client key")
		return curve.Key{}, false
	}
	return host.Key, true
}

// withdraw tells every keyed agent to forget the vouches for keys, in the
// background (a reload must not wait for agents).
func (sc *security) withdraw(keys []curve.Key) {
	if len(keys) == 0 {
		return
	}
	s := sc.s
	var targets []network.AgentTarget
	for _, c := range s.rpc.Clients() {
		if c.Key == auth.NullKey {
			continue
		}
		for _, a := range s.net.HostedAgents(network.ClientID(c.ID)) {
			targets = append(targets, network.AgentTarget{Client: network.ClientID(c.ID), Agent: a.ID})
		}
	}
	if len(targets) == 0 {
		return
	}
	s.termWG.Add(1)
	go func() {
		defer s.termWG.Done()
		for _, to := range targets {
			for _, k := range keys {
				ctx, cancel := context.WithTimeout(s.termCtx, vouchTimeout)
				_, err := (caller{s}).call(ctx, to, withdrawMethod, []string{k.String()})
				cancel()
				if err != nil {
					s.log.WithError(err).WithFields(logrus.Fields{"agent": to.Agent, "key": auth.KeyName(k)}).Warn("withdraw a client key's vouches")
				}
			}
		}
	}()
}
