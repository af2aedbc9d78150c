package network

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newLimitedHarness(t *testing.T, limits KindLimits) *harness {
	t.Helper()
	h := newHarness(t)
	logger := quietLogger()
	logger.AddHook(h.logs)
	h.net = New(Options{Clock: h.clock, Caller: h.caller, Logger: logger, Limits: limits})
	return h
}

func TestKindContainerLimitRefusesAtOnce(t *testing.T) {
	h := newLimitedHarness(t, KindLimits{Default: KindLimit{MaxContainers: 2}, PerKind: map[string]KindLimit{"kv": {}}})
	h.register(clientA, agentA, []string{"echo", "kv"}, record(agentA, "c1", "echo"))
	h.get(clientX, "echo", GetOptions{})
	_, _, err := h.net.Get(context.Background(), clientX, "echo", GetOptions{})
	require.ErrorIs(t, err, ErrKindAtLimit)
	assert.Equal(t, "kind echo is at its limit: 2 containers", err.Error())
	assert.Len(t, h.caller.getCalls(), 1, "no back-request for the refused get")
	// An existing container is still got; kv has no limit.
	uuid, _ := h.get(clientY, "echo", GetOptions{UUID: "c1"})
	assert.Equal(t, ContainerUUID("c1"), uuid)
	for range 3 {
		h.get(clientX, "kv", GetOptions{})
	}
	var warned bool
	for _, e := range h.logs.AllEntries() {
		if e.Level == logrus.WarnLevel && e.Data["kind"] == "echo" && e.Data["limit"] == 2 {
			warned = true
		}
	}
	assert.True(t, warned, "the refusal is logged with the kind and the limit")
	st := statOf(t, h.net, "echo")
	assert.Equal(t, 2, st.Containers)
	assert.Equal(t, 2, st.MaxContainers)
	assert.Equal(t, uint64(1), st.RejectedGets)
}

func statOf(t *testing.T, n *Network, kind string) KindStat {
	t.Helper()
	for _, s := range n.KindStats() {
		if s.Kind == kind {
			return s
		}
	}
	t.Fatalf("kind %s not in KindStats", kind)
	return KindStat{}
}

func TestKindRequestLimitRefusesBeyondConcurrentRequests(t *testing.T) {
	h := newLimitedHarness(t, KindLimits{Default: KindLimit{MaxRequests: 2}})
	h.register(clientA, agentA, []string{"echo"}, record(agentA, "c1", "echo"), record(agentA, "c2", "echo"))
	gate := make(chan struct{})
	entered := make(chan struct{}, 2)
	h.caller.reqFn = func(_ AgentTarget, _ ContainerUUID, _ string, data json.RawMessage) (json.RawMessage, error) {
		entered <- struct{}{}
		<-gate
		return data, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	results := make(chan error, 2)
	for _, u := range []ContainerUUID{"c1", "c2"} {
		go func() {
			_, err := h.net.Route(ctx, u, "op", json.RawMessage(`1`))
			results <- err
		}()
	}
	receive(t, entered)
	receive(t, entered)
	_, err := h.net.Route(ctx, "c1", "op", json.RawMessage(`1`))
	require.ErrorIs(t, err, ErrKindAtLimit)
	assert.Equal(t, "kind echo is at its limit: 2 concurrent requests", err.Error())
	st := statOf(t, h.net, "echo")
	assert.Equal(t, int64(2), st.Requests)
	assert.Equal(t, uint64(1), st.RejectedRequests)
	close(gate)
	require.NoError(t, receive(t, results))
	require.NoError(t, receive(t, results))
	_, err = h.net.Route(ctx, "c1", "op", json.RawMessage(`1`))
	require.NoError(t, err, "room again once the requests ended")
	assert.Equal(t, int64(0), statOf(t, h.net, "echo").Requests)
}

func TestParseKindLimit(t *testing.T) {
	k, l, err := ParseKindLimit("echo=10/5")
	require.NoError(t, err)
	assert.Equal(t, "echo", k)
	assert.Equal(t, KindLimit{MaxContainers: 10, MaxRequests: 5}, l)
	_, l, err = ParseKindLimit("kv=/7")
	require.NoError(t, err)
	assert.Equal(t, KindLimit{MaxRequests: 7}, l)
	for _, bad := range []string{"echo", "=3/4", "echo=x", "echo=1/-2"} {
		_, _, err := ParseKindLimit(bad)
		assert.Error(t, err, bad)
	}
}
