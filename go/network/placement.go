package network

import (
	"errors"
	"fmt"
)

// Placement: a get that starts a container chooses, among the agents
// offering the kind, one that is not drained and not full, with the fewest
// containers of that kind (those starting included); ties go round-robin.
// An agent is full for a kind when it reported a capacity for it (the
// extension field "capacity" of ar) and holds that many.

// ErrNoRoom matches (errors.Is) the error of a get for a kind whose agents
// are all drained or full.
var ErrNoRoom = errors.New("no agent has room")

type noRoomError struct {
	kind           string
	drained, full  int
	offeringAgents int
}

func (e *noRoomError) Error() string {
	return fmt.Sprintf("No agent has room for container %s: %d agent(s) offer it, %d drained, %d full",
		e.kind, e.offeringAgents, e.drained, e.full)
}
func (e *noRoomError) Is(target error) bool { return target == ErrNoRoom }

// countKind keeps the agent's count of containers per kind.
func (a *agent) countKind(kind string, delta int) {
	if a.kindCount == nil {
		a.kindCount = make(map[string]int)
	}
	a.kindCount[kind] += delta
	if a.kindCount[kind] <= 0 {
		delete(a.kindCount, kind)
	}
}

// kindCapacity keeps the capacities of the kinds the agent offers (a
// registration may list anything; only these are ever looked up).
func kindCapacity(kinds []string, capacity map[string]int) map[string]int {
	if len(capacity) == 0 {
		return nil
	}
	out := make(map[string]int, len(kinds))
	for _, k := range kinds {
		if c, ok := capacity[k]; ok && c > 0 {
			out[k] = c
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// pickAgentLocked chooses the agent that starts a new container of kind;
// list is n.kindAgents[kind], not empty. It also enforces the network's
// container limit for the kind.
func (n *Network) pickAgentLocked(clientID ClientID, kind string, list []*agent) (*agent, error) {
	if err := n.limits.admitContainerLocked(n, clientID, kind); err != nil {
		return nil, err
	}
	starting := map[AgentID]int{}
	for _, p := range n.pendingByKind[kind] {
		starting[p.agent]++
	}
	start := n.rr[kind]
	n.rr[kind]++
	var best *agent
	bestLoad, drained, full, unreachable := 0, 0, 0, 0
	for i := range list {
		a := list[(start+uint64(i))%uint64(len(list))]
		if !n.reachableLocked(a) {
			// Its host's connection is gone: it gets no work.
			unreachable++
			continue
		}
		if a.drained {
			drained++
			continue
		}
		load := a.kindCount[kind] + starting[a.id]
		if c := a.capacity[kind]; c > 0 && load >= c {
			full++
			continue
		}
		if best == nil || load < bestLoad {
			best, bestLoad = a, load
		}
	}
	if best == nil && unreachable == len(list) {
		return nil, &noAgentsError{kind: kind, unreachable: unreachable}
	}
	if best == nil {
		return nil, &noRoomError{kind: kind, drained: drained, full: full, offeringAgents: len(list)}
	}
	return best, nil
}
