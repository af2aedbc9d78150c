package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/huly-net/huly-net/go/internal/jsonsplit"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/network"
)

// ErrContainerNotFound matches (errors.Is) requests to a container the
// agent does not serve.
var ErrContainerNotFound = errors.New("container not found")

type notFoundError struct{ uuid string }

// Error is the reference's wording.
func (e *notFoundError) Error() string        { return "Container " + e.uuid + " not found" }
func (e *notFoundError) Is(target error) bool { return target == ErrContainerNotFound }

// HandleAgentRequest answers the network's back-requests (PROTOCOL.md §5);
// args is the second element of [agentId, args].
func (a *Agent) HandleAgentRequest(ctx context.Context, method string, args json.RawMessage) (any, error) {
	if res, err, ok := a.handleVouch(method, args); ok {
		return res, err
	}
	if res, ok, err := a.handleStream(ctx, "", method, args); ok {
		return res, err
	}
	p, err := jsonsplit.Array(args)
	if err != nil {
		return nil, fmt.Errorf("%s: args must be an array: %w", method, err)
	}
	switch method {
	case "gg":
		if len(p) < 1 {
			return nil, errors.New("gg: args must be [kind, options]")
		}
		var kind string
		if err := json.Unmarshal(p[0], &kind); err != nil {
			return nil, fmt.Errorf("gg: kind must be a string: %w", err)
		}
		var opts network.GetOptions
		if len(p) > 1 && string(p[1]) != "null" {
			if err := json.Unmarshal(p[1], &opts); err != nil {
				return nil, fmt.Errorf("gg: %w", err)
			}
		}
		u, ref, err := a.get(ctx, kind, opts)
		if err != nil {
			return nil, err
		}
		return []string{u, ref}, nil
	case "cl":
		var kind *string
		if len(p) > 0 {
			_ = json.Unmarshal(p[0], &kind) // null or absent lists all
		}
		k := ""
		if kind != nil {
			k = *kind
		}
		return a.records(k), nil
	case "cs":
		u, op, data, err := routeArgs(p)
		if err != nil {
			return nil, err
		}
		return a.request(ctx, u, "", op, data)
	case "ct":
		if len(p) < 1 {
			return nil, errors.New("ct: args must be [uuid]")
		}
		var u string
		if err := json.Unmarshal(p[0], &u); err != nil {
			return nil, fmt.Errorf("ct: uuid must be a string: %w", err)
		}
		if err := a.terminate(ctx, u); err != nil {
			return nil, err
		}
		return "", nil
	}
	return nil, fmt.Errorf("unknown agent method %s", method)
}

// get is back-request gg: reuse the container of that uuid, or (without a
// uuid) one of that kind whose labels include the requested ones, running
// or starting; otherwise start one.
func (a *Agent) get(ctx context.Context, kind string, opts network.GetOptions) (string, string, error) {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return "", "", errors.New("agent " + a.id + " is closing")
	}
	var e *entry
	if opts.UUID != "" {
		e = a.entries[string(opts.UUID)]
		if e != nil && e.state == stateStandby {
			// The network asks us for it: nobody else has it.
			a.beginStartLocked(e)
			gen := e.generation
			a.mu.Unlock()
			a.start(ctx, e, gen)
			return a.await(ctx, e)
		}
	} else {
		e = a.findLocked(kind, opts.Labels)
	}
	if e != nil {
		a.mu.Unlock()
		return a.await(ctx, e)
	}
	f := a.factories[kind]
	if f == nil {
		a.mu.Unlock()
		return "", "", fmt.Errorf("kind %s is not served by agent %s", kind, a.id)
	}
	u := string(opts.UUID)
	if u == "" {
		u = uuid.NewString()
	}
	e = &entry{
		uuid: u, kind: kind, labels: mergeLabels(opts.Labels, a.opts.Labels), extra: opts.Extra,
		factory: f, clients: map[string]struct{}{}, lastVisit: time.Now().UnixMilli(),
	}
	e.endpoint = a.containerRef(u, nil)
	a.beginStartLocked(e)
	gen := e.generation
	a.entries[u] = e
	// The network records the container from our answer with the labels
	// asked for; ours differ when the agent adds labels, so say so.
	if len(a.opts.Labels) > 0 {
		a.kickLocked(a.opts.ReclaimDelay, kickPublish)
	}
	a.mu.Unlock()
	a.start(ctx, e, gen)
	return a.await(ctx, e)
}

func (a *Agent) findLocked(kind string, labels []string) *entry {
	var best *entry
	for _, e := range a.entries {
		if e.stateless || e.kind != kind || e.state == stateStandby {
			continue
		}
		if !containsAll(e.labels, labels) {
			continue
		}
		if best == nil || e.uuid < best.uuid { // stable choice
			best = e
		}
	}
	return best
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// await waits for e's start and returns its uuid and reference.
func (a *Agent) await(ctx context.Context, e *entry) (string, string, error) {
	a.mu.Lock()
	ready := e.ready
	a.mu.Unlock()
	select {
	case <-ready:
	case <-ctx.Done():
		return "", "", fmt.Errorf("container %s still starting: %w", e.uuid, ctx.Err())
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if e.state != stateRunning || e.c == nil {
		if e.err != nil {
			return "", "", e.err
		}
		return "", "", &notFoundError{e.uuid}
	}
	return e.uuid, e.endpoint, nil
}

// running returns the container of uuid once it has started.
func (a *Agent) running(ctx context.Context, uuid string) (*entry, Container, error) {
	a.mu.Lock()
	e := a.entries[uuid]
	a.mu.Unlock()
	if e == nil {
		return nil, nil, &notFoundError{uuid}
	}
	if _, _, err := a.await(ctx, e); err != nil {
		return nil, nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if e.c == nil {
		return nil, nil, &notFoundError{uuid}
	}
	e.lastVisit = time.Now().UnixMilli()
	return e, e.c, nil
}

func (a *Agent) request(ctx context.Context, uuid, clientID, op string, data json.RawMessage) (any, error) {
	a.reqs.begin()
	defer a.reqs.end()
	_, c, err := a.running(ctx, uuid)
	if err != nil {
		return nil, err
	}
	if s, ok := c.(Streamer); ok && s.StreamOp(op) {
		return collectStream(ctx, s, clientID, op, data)
	}
	return c.Request(ctx, clientID, op, data)
}

func (a *Agent) records(kind string) []network.ContainerRecord {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]network.ContainerRecord, 0, len(a.entries))
	for _, e := range a.entries {
		if e.state == stateStandby || (kind != "" && e.kind != kind) {
			continue
		}
		extra, listed := recordLocked(e)
		if !listed {
			continue
		}
		out = append(out, network.ContainerRecord{
			AgentID: network.AgentID(a.id), UUID: network.ContainerUUID(e.uuid), Kind: e.kind,
			Endpoint: e.endpoint, LastVisit: e.lastVisit, Labels: e.labels, Extra: extra,
		})
	}
	return out
}

// terminate is back-request ct. A stateless container stays declared: it
// becomes a standby and is claimed again at the next registration.
func (a *Agent) terminate(ctx context.Context, uuid string) error {
	a.mu.Lock()
	e := a.entries[uuid]
	if e == nil {
		a.mu.Unlock()
		return nil
	}
	c := e.c
	if e.stateless {
		if e.state == stateRunning && a.c != nil && a.publishes(a.c) {
			// A pinned container is to be kept running: the network
			// terminates it as an unused orphan, but it is ours to keep.
			// Register it again instead of restarting it elsewhere; if
			// another agent owns it by now, the answer puts it on standby.
			// (A server that takes one registration per session has
			// dropped it for good: stop it, and claim it again when we
			// can.)
			a.kickLocked(a.opts.ReclaimDelay, kickPublish)
			a.mu.Unlock()
			return nil
		}
		a.toStandbyLocked(e)
		a.kickLocked(a.opts.ReclaimDelay, kickClaim)
	} else {
		a.forgetLocked(e)
	}
	a.mu.Unlock()
	if c == nil {
		return nil
	}
	tctx, cancel := context.WithTimeout(ctx, a.opts.TerminateTimeout)
	defer cancel()
	if err := c.Terminate(tctx); err != nil {
		return fmt.Errorf("terminate %s: %w", uuid, err)
	}
	return nil
}

// ---- the agent's endpoint server (PROTOCOL.md §6) ----

func (a *Agent) handleEndpoint(ctx context.Context, cl backrpc.ClientInfo, method string, params json.RawMessage) (any, error) {
	if err := a.endpointAllowed(cl, method, params); err != nil {
		return nil, err
	}
	if res, ok, err := a.handleStream(ctx, cl.ID, method, params); ok {
		return res, err
	}
	switch method {
	case "cc":
		uuids, err := decodeUUIDs(params)
		if err != nil {
			return nil, fmt.Errorf("cc: %w", err)
		}
		for _, u := range uuids {
			if err := a.connect(ctx, cl.ID, u); err != nil {
				return nil, err
			}
		}
		return 0, nil
	case "cd":
		uuids, err := decodeUUIDs(params)
		if err != nil {
			return nil, fmt.Errorf("cd: %w", err)
		}
		for _, u := range uuids {
			a.disconnect(cl.ID, u)
		}
		return "ok", nil
	case "cs":
		p, err := jsonsplit.Array(params)
		if err != nil {
			return nil, fmt.Errorf("cs: %w", err)
		}
		u, op, data, err := routeArgs(p)
		if err != nil {
			return nil, err
		}
		return a.request(ctx, u, cl.ID, op, data)
	}
	return nil, fmt.Errorf("Unknown method %s", method) //nolint:staticcheck // the reference's wording
}

// routeArgs reads [uuid, operation, data] (data may be absent: null).
func routeArgs(p []json.RawMessage) (uuid, op string, data json.RawMessage, err error) {
	if len(p) < 2 {
		return "", "", nil, errors.New("cs: want [uuid, operation, data]")
	}
	if uuid, err = jsonsplit.String(p[0]); err != nil || uuid == "" {
		return "", "", nil, errors.New("cs: container uuid must be a non-empty string")
	}
	if op, err = jsonsplit.String(p[1]); err != nil {
		return "", "", nil, errors.New("cs: operation must be a string")
	}
	data = json.RawMessage("null")
	if len(p) > 2 {
		data = p[2]
	}
	return uuid, op, data, nil
}

// decodeUUIDs reads {"uuid": uuid or [uuid]}.
func decodeUUIDs(params json.RawMessage) ([]string, error) {
	var p struct {
		UUID json.RawMessage `json:"uuid"`
	}
	if err := json.Unmarshal(params, &p); err != nil {
		return nil, fmt.Errorf("params must be {\"uuid\": uuid or [uuid]}: %w", err)
	}
	var one string
	if err := json.Unmarshal(p.UUID, &one); err == nil && one != "" {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(p.UUID, &many); err == nil {
		return many, nil
	}
	return nil, errors.New(`params must be {"uuid": uuid or [uuid]}`)
}

func (a *Agent) connect(ctx context.Context, clientID, uuid string) error {
	e, c, err := a.running(ctx, uuid)
	if err != nil {
		return err
	}
	a.mu.Lock()
	if _, already := e.clients[clientID]; already || e.c != c {
		a.mu.Unlock()
		return nil
	}
	e.clients[clientID] = struct{}{}
	s := a.subs[clientID]
	if s == nil {
		s = map[string]struct{}{}
		a.subs[clientID] = s
	}
	s[uuid] = struct{}{}
	a.mu.Unlock()
	c.Connect(clientID, func(data any) {
		if err := a.srv.SendEvent(clientID, []any{uuid, data}); err != nil {
			a.log.WithError(err).WithFields(logrus.Fields{"client": clientID, "container": uuid}).Debug("container event not sent")
		}
	})
	return nil
}

func (a *Agent) disconnect(clientID, uuid string) {
	a.mu.Lock()
	e := a.entries[uuid]
	if e == nil {
		a.mu.Unlock()
		return
	}
	if _, ok := e.clients[clientID]; !ok {
		a.mu.Unlock()
		return
	}
	delete(e.clients, clientID)
	if s := a.subs[clientID]; s != nil {
		delete(s, uuid)
		if len(s) == 0 {
			delete(a.subs, clientID)
		}
	}
	c := e.c
	a.mu.Unlock()
	if c != nil {
		c.Disconnect(clientID)
	}
}

// endpointClientGone disconnects a client that closed or timed out from
// every container it was connected to.
func (a *Agent) endpointClientGone(cl backrpc.ClientInfo) {
	a.mu.Lock()
	uuids := make([]string, 0, len(a.subs[cl.ID]))
	for u := range a.subs[cl.ID] {
		uuids = append(uuids, u)
	}
	a.mu.Unlock()
	for _, u := range uuids {
		a.disconnect(cl.ID, u)
	}
}
