package network

// eventBatch merges events as they are queued, so that the batch sent once
// per check period holds at most one entry per agent and per container, at
// the position of the first event about it. The rules (PROTOCOL.md §7):
//
//   - a removal wins over later updates (and over a repeated removal);
//   - an addition swallows later updates, taking their newer data;
//   - otherwise the later entry replaces the earlier one.
//
// One case the reference gets wrong is refined here: a removal followed by
// an addition (a container failing over to another agent, an agent coming
// back) must not be reported as a removal only, or observers would believe
// the object gone. A container becomes "updated" with its new record, which
// makes 0.7 clients holding a reference follow it to its new endpoint; an
// agent becomes "added", which makes 0.7 clients retry a pending get at
// once.
type eventBatch struct {
	agents       []AgentEvent
	agentIdx     map[AgentID]int
	containers   []ContainerEvent
	containerIdx map[ContainerUUID]int
}

func (b *eventBatch) addAgent(e AgentEvent) {
	if i, ok := b.agentIdx[e.ID]; ok {
		cur := &b.agents[i]
		kind, replace := mergeKind(cur.Event, e.Event, EventAdded)
		cur.Event = kind
		if replace {
			cur.Kinds = e.Kinds
		}
		return
	}
	if b.agentIdx == nil {
		b.agentIdx = make(map[AgentID]int)
	}
	b.agentIdx[e.ID] = len(b.agents)
	b.agents = append(b.agents, e)
}

func (b *eventBatch) addContainer(e ContainerEvent) {
	if i, ok := b.containerIdx[e.Container.UUID]; ok {
		cur := &b.containers[i]
		kind, replace := mergeKind(cur.Event, e.Event, EventUpdated)
		cur.Event = kind
		if replace {
			cur.Container = e.Container
		}
		return
	}
	if b.containerIdx == nil {
		b.containerIdx = make(map[ContainerUUID]int)
	}
	b.containerIdx[e.Container.UUID] = len(b.containers)
	b.containers = append(b.containers, e)
}

// mergeKind returns the kind of the merged entry and whether it takes the
// data of the later one. readded is the kind a removal followed by an
// addition becomes.
func mergeKind(cur, next, readded EventKind) (EventKind, bool) {
	switch {
	case cur == EventRemoved && next == EventAdded:
		return readded, true
	case cur == EventRemoved:
		return EventRemoved, false
	case cur == EventAdded && next == EventUpdated:
		return EventAdded, true
	default:
		return next, true
	}
}

func (b *eventBatch) add(e Event) {
	for _, a := range e.Agents {
		b.addAgent(a)
	}
	for _, c := range e.Containers {
		b.addContainer(c)
	}
}

func (b *eventBatch) empty() bool { return len(b.agents) == 0 && len(b.containers) == 0 }

// take returns the merged batch and starts a new one.
func (b *eventBatch) take() Event {
	e := Event{Agents: b.agents, Containers: b.containers}
	*b = eventBatch{}
	return e
}

// MergeEvents merges events, oldest first, by the rules the network applies
// to its own batches (see the package documentation). Observers that buffer
// events can use it to coalesce them the same way.
func MergeEvents(events ...Event) Event {
	var b eventBatch
	for _, e := range events {
		b.add(e)
	}
	return b.take()
}
