package agent

import (
	"encoding/json"
	"maps"
)

// StatusReporter is implemented by containers whose life cycle the agent
// publishes (a runtime's process, unit or machine). Its fields are merged
// into the extra of the container's record at every registration, so that
// `cl` (hulyctl containers) shows them to 0.7 peers too, which ignore
// unknown extra keys. A container that reports Down is left out of the
// registration, so the network announces it removed, until it is up again;
// call Agent.Refresh after a change.
type StatusReporter interface {
	ContainerStatus() ContainerStatus
}

// ContainerStatus is what a StatusReporter reports.
type ContainerStatus struct {
	// Down: the container cannot serve now (its process crashed and waits
	// for a restart). It is not registered while Down.
	Down bool
	// Fields are merged into the record's extra (they win over keys of the
	// get's extra); an extra that is not a JSON object is left as it is.
	Fields map[string]any
}

// Refresh registers the agent again soon, so that the network learns the
// current state of its containers (see StatusReporter). It does nothing
// with a network server that takes one registration per session (see
// StatePublishAuto).
func (a *Agent) Refresh() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.kickLocked(0, kickPublish)
}

// recordLocked returns the extra of e's record and whether e is to be
// registered, asking its container when it reports a status.
func recordLocked(e *entry) (json.RawMessage, bool) {
	sr, ok := e.c.(StatusReporter)
	if !ok || e.c == nil {
		return e.extra, true
	}
	st := sr.ContainerStatus()
	if len(st.Fields) == 0 {
		return e.extra, !st.Down
	}
	merged := map[string]any{}
	if len(e.extra) > 0 && string(e.extra) != "null" {
		var obj map[string]any
		if err := json.Unmarshal(e.extra, &obj); err != nil || obj == nil {
			return e.extra, !st.Down
		}
		merged = obj
	}
	maps.Copy(merged, st.Fields)
	b, err := json.Marshal(merged)
	if err != nil {
		return e.extra, !st.Down
	}
	return b, !st.Down
}
