package network

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"sort"

	"github.com/sirupsen/logrus"
)

// Operator control (extension methods announced as the "ops" capability):
// draining an agent and terminating a container at once.

// ErrAgentNotFound matches (errors.Is) an operator command naming an
// agent the network does not know.
var ErrAgentNotFound = errors.New("agent not found")

type agentNotFoundError struct{ id AgentID }

func (e *agentNotFoundError) Error() string        { return "Agent " + string(e.id) + " not found" }
func (e *agentNotFoundError) Is(target error) bool { return target == ErrAgentNotFound }

// SetDrained drains (true) or undrains an agent: no new container is
// placed on a drained agent; those it has keep serving. The mark lasts as
// long as the agent's record: an agent that is removed and registers again
// (a restart) comes back undrained.
func (n *Network) SetDrained(id AgentID, drained bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	a := n.agents[id]
	if a == nil {
		return &agentNotFoundError{id}
	}
	if a.drained != drained {
		a.drained = drained
		n.log.WithFields(logrus.Fields{"agent": id, "drained": drained, "containers": len(a.containers)}).Info("agent drain state changed")
	}
	return nil
}

// AgentState is an agent as operators see it: the al entry, whether it is
// drained, the containers it holds per kind and the capacities it reported.
type AgentState struct {
	AgentInfo
	Drained  bool           `json:"drained"`
	PerKind  map[string]int `json:"perKind"`
	Capacity map[string]int `json:"capacity,omitempty"`
}

// AgentStates lists the agents with their state, in registration order.
func (n *Network) AgentStates() []AgentState {
	n.mu.RLock()
	as := make([]*agent, 0, len(n.agents))
	for _, a := range n.agents {
		as = append(as, a)
	}
	sort.Slice(as, func(i, j int) bool { return as[i].seq < as[j].seq })
	out := make([]AgentState, len(as))
	for i, a := range as {
		out[i] = AgentState{
			AgentInfo: AgentInfo{AgentID: a.id, Endpoint: a.endpoint, Kinds: slices.Clone(a.kinds), Containers: len(a.containers)},
			Drained:   a.drained,
			PerKind:   maps.Clone(a.kindCount),
			Capacity:  maps.Clone(a.capacity),
		}
		if out[i].PerKind == nil {
			out[i].PerKind = map[string]int{}
		}
	}
	n.mu.RUnlock()
	return out
}

// MarshalJSON keeps AgentInfo's form for the embedded fields.
func (s AgentState) MarshalJSON() ([]byte, error) {
	w := struct {
		AgentID    AgentID        `json:"agentId"`
		Endpoint   *string        `json:"endpoint"`
		Kinds      []string       `json:"kinds"`
		Containers int            `json:"containers"`
		Drained    bool           `json:"drained"`
		PerKind    map[string]int `json:"perKind"`
		Capacity   map[string]int `json:"capacity,omitempty"`
	}{s.AgentID, nil, nonNil(s.Kinds), s.Containers, s.Drained, s.PerKind, s.Capacity}
	if s.Endpoint != "" {
		w.Endpoint = &s.Endpoint
	}
	return json.Marshal(w)
}

// RemoveContainer forgets a container at once, as if its agent had
// dropped it: its references are dropped and its removal is announced with
// the next events (holders following it get it again). It returns where
// the container was, for the caller to tell its agent (ct).
func (n *Network) RemoveContainer(uuid ContainerUUID) (AgentTarget, ContainerRecord, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := n.containers[uuid]
	if c == nil {
		return AgentTarget{}, ContainerRecord{}, &notFoundError{uuid: uuid}
	}
	to := AgentTarget{Client: c.agent.host, Agent: c.agent.id}
	rec := c.rec
	n.removeContainerLocked(c)
	n.log.WithFields(logrus.Fields{"container": uuid, "agent": to.Agent, "kind": rec.Kind}).Info("container terminated by an operator")
	return to, rec, nil
}
