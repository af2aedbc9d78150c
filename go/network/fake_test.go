package network

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/require"
)

// waitLimit bounds every wait of these tests; nothing here should take more
// than microseconds, so hitting it means a deadlock.
const waitLimit = 5 * time.Second

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

type getCall struct {
	To   AgentTarget
	Kind string
	Opts GetOptions
}

type termCall struct {
	To   AgentTarget
	UUID ContainerUUID
}

type reqCall struct {
	To   AgentTarget
	UUID ContainerUUID
	Op   string
	Data json.RawMessage
}

// fakeCaller is the test double of the back-requests: it records every call
// and answers like an agent whose endpoint is 127.0.0.1:3738.
type fakeCaller struct {
	mu    sync.Mutex
	gets  []getCall
	terms []termCall
	reqs  []reqCall
	next  int

	// getStarted, when set, receives every gg back-request as it begins.
	getStarted chan getCall
	// getGate, when set, holds every gg back-request until it is closed or
	// sent a value, or until the request's context ends.
	getGate chan struct{}
	// getFn, when set, answers gg instead of the default.
	getFn   func(ctx context.Context, to AgentTarget, kind string, opts GetOptions) (ContainerUUID, string, error)
	termErr error
	reqFn   func(to AgentTarget, uuid ContainerUUID, op string, data json.RawMessage) (json.RawMessage, error)
}

func agentRefFor(id AgentID) EndpointRef {
	return EndpointRef{Kind: RefDirect, Host: "127.0.0.1", Port: 3738, AgentID: id}
}

func (f *fakeCaller) GetContainer(ctx context.Context, to AgentTarget, kind string, opts GetOptions) (ContainerUUID, string, error) {
	call := getCall{To: to, Kind: kind, Opts: opts}
	f.mu.Lock()
	f.gets = append(f.gets, call)
	f.next++
	n := f.next
	gate, started, fn := f.getGate, f.getStarted, f.getFn
	f.mu.Unlock()
	if started != nil {
		started <- call
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return "", "", fmt.Errorf("back-request gg: %w", ctx.Err())
		}
	}
	if fn != nil {
		return fn(ctx, to, kind, opts)
	}
	uuid := opts.UUID
	if uuid == "" {
		uuid = ContainerUUID(fmt.Sprintf("c-%d", n))
	}
	return uuid, ContainerOnAgentRef(agentRefFor(to.Agent), uuid), nil
}

func (f *fakeCaller) TerminateContainer(_ context.Context, to AgentTarget, uuid ContainerUUID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.terms = append(f.terms, termCall{To: to, UUID: uuid})
	return f.termErr
}

func (f *fakeCaller) ContainerRequest(_ context.Context, to AgentTarget, uuid ContainerUUID, op string, data json.RawMessage) (json.RawMessage, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, reqCall{To: to, UUID: uuid, Op: op, Data: data})
	fn := f.reqFn
	f.mu.Unlock()
	if fn != nil {
		return fn(to, uuid, op, data)
	}
	return data, nil
}

func (f *fakeCaller) getCalls() []getCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]getCall(nil), f.gets...)
}

func (f *fakeCaller) termCalls() []termCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]termCall(nil), f.terms...)
}

type harness struct {
	t      *testing.T
	clock  *FakeClock
	caller *fakeCaller
	net    *Network
	logs   *test.Hook
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	logger, hook := test.NewNullLogger()
	logger.SetLevel(logrus.DebugLevel)
	h := &harness{t: t, clock: NewFakeClock(t0), caller: &fakeCaller{}, logs: hook}
	h.net = New(Options{Clock: h.clock, Caller: h.caller, Logger: logger})
	return h
}

func quietLogger() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// register registers an agent with a direct endpoint and the given kinds and
// containers, and requires success.
func (h *harness) register(client ClientID, id AgentID, kinds []string, containers ...ContainerRecord) []ContainerUUID {
	h.t.Helper()
	term, err := h.net.RegisterAgent(client, AgentRegistration{
		UUID:       id,
		Kinds:      kinds,
		Containers: containers,
		Endpoint:   agentRefFor(id).String(),
	})
	require.NoError(h.t, err)
	return term
}

// record is a container record as an agent lists it in ar.
func record(agentID AgentID, uuid ContainerUUID, kind string) ContainerRecord {
	return ContainerRecord{
		AgentID:   agentID,
		UUID:      uuid,
		Kind:      kind,
		Endpoint:  ContainerOnAgentRef(agentRefFor(agentID), uuid),
		LastVisit: 1795362984130,
	}
}

func (h *harness) get(client ClientID, kind string, opts GetOptions) (ContainerUUID, string) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	uuid, ref, err := h.net.Get(ctx, client, kind, opts)
	require.NoError(h.t, err)
	return uuid, ref
}

func (h *harness) tick() Event {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	return h.net.Tick(ctx)
}

type getResult struct {
	uuid ContainerUUID
	ref  string
	err  error
}

// goGet runs a Get in a goroutine owned by the test; the result arrives on
// the returned channel, and the goroutine ends when ctx does at the latest.
func (h *harness) goGet(ctx context.Context, client ClientID, kind string, opts GetOptions) <-chan getResult {
	out := make(chan getResult, 1)
	go func() {
		uuid, ref, err := h.net.Get(ctx, client, kind, opts)
		out <- getResult{uuid, ref, err}
	}()
	return out
}

func receive[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		require.FailNow(t, "timed out waiting for a value")
		var zero T
		return zero
	}
}

// eventKinds summarises an event as "id:kind" strings, for compact checks.
func eventKinds(e Event) (agents, containers []string) {
	for _, a := range e.Agents {
		agents = append(agents, string(a.ID)+":"+a.Event.String())
	}
	for _, c := range e.Containers {
		containers = append(containers, string(c.Container.UUID)+":"+c.Event.String())
	}
	return agents, containers
}
