package network

import "slices"

// HostedAgent is an agent a client's session hosts, with every kind it
// offers or holds a container of (the kinds the network's security checks
// against the session's key).
type HostedAgent struct {
	ID    AgentID
	Kinds []string // offered kinds, then the kinds of its containers; unique
}

// HostedAgents lists the agents clientID's session hosts, by agent id.
func (n *Network) HostedAgents(clientID ClientID) []HostedAgent {
	n.mu.RLock()
	defer n.mu.RUnlock()
	h := n.hosted[clientID]
	out := make([]HostedAgent, 0, len(h))
	for _, a := range h {
		if a.host != clientID {
			continue
		}
		kinds := slices.Clone(a.kinds)
		for _, c := range a.containers {
			if !slices.Contains(kinds, c.rec.Kind) {
				kinds = append(kinds, c.rec.Kind)
			}
		}
		out = append(out, HostedAgent{ID: a.id, Kinds: kinds})
	}
	slices.SortFunc(out, func(a, b HostedAgent) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}
