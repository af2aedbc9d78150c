package network

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// ClientID identifies a client session (a UUID string, as sent in hello).
type ClientID string

// AgentID identifies an agent (a UUID string chosen by the agent).
type AgentID string

// ContainerUUID identifies a container.
type ContainerUUID string

// EventKind is the kind of a network event entry.
type EventKind int

// Wire values of EventKind.
const (
	EventAdded   EventKind = 0
	EventUpdated EventKind = 1
	EventRemoved EventKind = 2
)

func (k EventKind) String() string {
	switch k {
	case EventAdded:
		return "added"
	case EventUpdated:
		return "updated"
	case EventRemoved:
		return "removed"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

var jsonNull = []byte("null")

// ContainerRecord describes a container as the network lists it (cl) and
// announces it in events. It marshals as
// {"agentId","uuid","kind","endpoint","lastVisit","labels"?,"extra"?}.
type ContainerRecord struct {
	AgentID AgentID       `json:"agentId"`
	UUID    ContainerUUID `json:"uuid"`
	Kind    string        `json:"kind"`
	// Endpoint is the container's reference string. Unlike the reference
	// server, records built here from a gg answer carry the real reference.
	Endpoint string `json:"endpoint"`
	// LastVisit is in Unix milliseconds.
	LastVisit int64    `json:"lastVisit"`
	Labels    []string `json:"labels,omitempty"`
	// Extra is any JSON value the getter passed (an object in practice);
	// nil when absent or null.
	Extra json.RawMessage `json:"extra,omitempty"`
}

// UnmarshalJSON parses a record by key, accepting what the TypeScript peers
// send: a fractional or null lastVisit (the reference server writes a
// process-relative float), null labels and extra.
func (r *ContainerRecord) UnmarshalJSON(b []byte) error {
	var w struct {
		AgentID   AgentID         `json:"agentId"`
		UUID      ContainerUUID   `json:"uuid"`
		Kind      string          `json:"kind"`
		Endpoint  string          `json:"endpoint"`
		LastVisit *float64        `json:"lastVisit"`
		Labels    []string        `json:"labels"`
		Extra     json.RawMessage `json:"extra"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("decode container record: %w", err)
	}
	*r = ContainerRecord{
		AgentID:  w.AgentID,
		UUID:     w.UUID,
		Kind:     w.Kind,
		Endpoint: w.Endpoint,
		Labels:   w.Labels,
		Extra:    nullToNil(w.Extra),
	}
	if w.LastVisit != nil {
		r.LastVisit = millis(*w.LastVisit)
	}
	return nil
}

// millis truncates a JavaScript millisecond number to int64, clamping
// instead of relying on Go's implementation-defined float conversion.
func millis(f float64) int64 {
	switch {
	case f >= math.MaxInt64:
		return math.MaxInt64
	case f <= math.MinInt64:
		return math.MinInt64
	}
	return int64(f)
}

func nullToNil(m json.RawMessage) json.RawMessage {
	if len(m) == 0 || bytes.Equal(m, jsonNull) {
		return nil
	}
	return m
}

// GetOptions are the options of a get (gg): {"uuid"?, "extra"?, "labels"?}.
type GetOptions struct {
	UUID   ContainerUUID   `json:"uuid,omitempty"`
	Extra  json.RawMessage `json:"extra,omitempty"`
	Labels []string        `json:"labels,omitempty"`
}

// UnmarshalJSON accepts null for every field.
func (o *GetOptions) UnmarshalJSON(b []byte) error {
	var w struct {
		UUID   *ContainerUUID  `json:"uuid"`
		Extra  json.RawMessage `json:"extra"`
		Labels []string        `json:"labels"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("decode get options: %w", err)
	}
	*o = GetOptions{Extra: nullToNil(w.Extra), Labels: w.Labels}
	if w.UUID != nil {
		o.UUID = *w.UUID
	}
	return nil
}

// AgentRegistration is the params object of ar:
// {"uuid","containers":[record],"kinds":[kind],"endpoint": ref or null}.
type AgentRegistration struct {
	UUID       AgentID           `json:"uuid"`
	Containers []ContainerRecord `json:"containers"`
	Kinds      []string          `json:"kinds"`
	// Endpoint is the agent's reference string; "" is written as null (an
	// agent without an endpoint server).
	Endpoint string `json:"endpoint"`
	// Capacity is how many containers of a kind the agent can hold (its
	// max_instances); kinds not listed have no limit. An extension: written
	// only when not empty, and a TypeScript server ignores it.
	Capacity map[string]int `json:"capacity,omitempty"`
}

// MarshalJSON writes empty lists as [] and an empty endpoint as null, as the
// TypeScript agent does.
func (a AgentRegistration) MarshalJSON() ([]byte, error) {
	w := struct {
		UUID       AgentID           `json:"uuid"`
		Containers []ContainerRecord `json:"containers"`
		Kinds      []string          `json:"kinds"`
		Endpoint   *string           `json:"endpoint"`
		Capacity   map[string]int    `json:"capacity,omitempty"`
	}{a.UUID, nonNil(a.Containers), nonNil(a.Kinds), nil, a.Capacity}
	if a.Endpoint != "" {
		w.Endpoint = &a.Endpoint
	}
	return json.Marshal(w)
}

// UnmarshalJSON accepts null for endpoint, containers and kinds.
func (a *AgentRegistration) UnmarshalJSON(b []byte) error {
	var w struct {
		UUID       AgentID           `json:"uuid"`
		Containers []ContainerRecord `json:"containers"`
		Kinds      []string          `json:"kinds"`
		Endpoint   *string           `json:"endpoint"`
		Capacity   map[string]int    `json:"capacity"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("decode agent registration: %w", err)
	}
	*a = AgentRegistration{UUID: w.UUID, Containers: w.Containers, Kinds: w.Kinds, Capacity: w.Capacity}
	if w.Endpoint != nil {
		a.Endpoint = *w.Endpoint
	}
	return nil
}

// ErrInvalidRegistration is wrapped by the errors of DecodeRegistration and
// RegisterAgent for a registration that cannot be accepted.
var ErrInvalidRegistration = errors.New("invalid agent registration")

// DecodeRegistration parses and validates the params of ar.
func DecodeRegistration(data []byte) (AgentRegistration, error) {
	var reg AgentRegistration
	if err := json.Unmarshal(data, &reg); err != nil {
		return AgentRegistration{}, fmt.Errorf("%w: %w", ErrInvalidRegistration, err)
	}
	if err := reg.Validate(); err != nil {
		return AgentRegistration{}, err
	}
	return reg, nil
}

// Validate checks what RegisterAgent needs: an agent id, and a uuid and
// valid extra JSON on every container record.
func (a AgentRegistration) Validate() error {
	if a.UUID == "" {
		return fmt.Errorf("%w: no agent uuid", ErrInvalidRegistration)
	}
	for i, c := range a.Containers {
		if c.UUID == "" {
			return fmt.Errorf("%w: agent %s: container record %d has no uuid", ErrInvalidRegistration, a.UUID, i)
		}
		// Only possible through the Go API (decoding yields valid JSON),
		// but one such record would make every later event batch
		// unmarshalable.
		if c.Extra != nil && !json.Valid(c.Extra) {
			return fmt.Errorf("%w: agent %s: container %s: extra is not valid JSON", ErrInvalidRegistration, a.UUID, c.UUID)
		}
	}
	return nil
}

// AgentInfo is one entry of the answer to al:
// {"agentId","endpoint","kinds","containers": count}.
type AgentInfo struct {
	AgentID AgentID `json:"agentId"`
	// Endpoint is "" (written as null) for an agent without an endpoint.
	Endpoint   string   `json:"endpoint"`
	Kinds      []string `json:"kinds"`
	Containers int      `json:"containers"`
}

// MarshalJSON writes an empty endpoint as null and no kinds as [].
func (a AgentInfo) MarshalJSON() ([]byte, error) {
	w := struct {
		AgentID    AgentID  `json:"agentId"`
		Endpoint   *string  `json:"endpoint"`
		Kinds      []string `json:"kinds"`
		Containers int      `json:"containers"`
	}{a.AgentID, nil, nonNil(a.Kinds), a.Containers}
	if a.Endpoint != "" {
		w.Endpoint = &a.Endpoint
	}
	return json.Marshal(w)
}

// UnmarshalJSON accepts a null endpoint.
func (a *AgentInfo) UnmarshalJSON(b []byte) error {
	var w struct {
		AgentID    AgentID  `json:"agentId"`
		Endpoint   *string  `json:"endpoint"`
		Kinds      []string `json:"kinds"`
		Containers int      `json:"containers"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("decode agent info: %w", err)
	}
	*a = AgentInfo{AgentID: w.AgentID, Kinds: w.Kinds, Containers: w.Containers}
	if w.Endpoint != nil {
		a.Endpoint = *w.Endpoint
	}
	return nil
}

// AgentEvent is an agent entry of a network event: {"id","kinds","event"}.
type AgentEvent struct {
	ID    AgentID   `json:"id"`
	Kinds []string  `json:"kinds"`
	Event EventKind `json:"event"`
}

// MarshalJSON writes no kinds as [].
func (e AgentEvent) MarshalJSON() ([]byte, error) {
	type plain AgentEvent
	p := plain(e)
	p.Kinds = nonNil(p.Kinds)
	return json.Marshal(p)
}

// ContainerEvent is a container entry of a network event:
// {"container": record, "event"}.
type ContainerEvent struct {
	Container ContainerRecord `json:"container"`
	Event     EventKind       `json:"event"`
}

// Event is a network event as broadcast to clients (op event):
// {"agents":[...],"containers":[...]}.
type Event struct {
	Agents     []AgentEvent     `json:"agents"`
	Containers []ContainerEvent `json:"containers"`
}

// Empty reports whether there is nothing to broadcast.
func (e Event) Empty() bool { return len(e.Agents) == 0 && len(e.Containers) == 0 }

// MarshalJSON writes empty lists as [].
func (e Event) MarshalJSON() ([]byte, error) {
	type plain Event
	p := plain(e)
	p.Agents = nonNil(p.Agents)
	p.Containers = nonNil(p.Containers)
	return json.Marshal(p)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
