package server

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/network"
)

// helloInterest says hello as a Go client that receives events by
// interest.
func helloInterest(t *testing.T, c *rawConn, clientID string) {
	t.Helper()
	c.send(t, []byte("0"), []byte(clientID), []byte(`{"aliveTimeout":3,"capabilities":["interest"]}`), []byte{})
	c.recv(t, "hello", func(m backrpc.Message) bool { return m.Op == backrpc.OpHello })
}

// seen lists, of the events c received, the container entries as
// "uuid:event".
func seen(t *testing.T, c *rawConn) []string {
	t.Helper()
	var out []string
	for _, p := range c.ourEvents() {
		var ev network.Event
		if err := json.Unmarshal(p, &ev); err != nil {
			out = append(out, "undecodable: "+err.Error())
			continue
		}
		for _, ce := range ev.Containers {
			out = append(out, string(ce.Container.UUID)+":"+ce.Event.String())
		}
	}
	return out
}

func hasEntry(t *testing.T, c *rawConn, uuid string) bool {
	for _, e := range seen(t, c) {
		if strings.HasPrefix(e, uuid+":") {
			return true
		}
	}
	return false
}

func withLabel(reg network.AgentRegistration, label string) network.AgentRegistration {
	for i := range reg.Containers {
		reg.Containers[i].Labels = []string{label}
	}
	return reg
}

// A client that announced interest receives no event of a container it
// holds no reference to; a TS 0.7 client (no capabilities) receives every
// event, as from the reference.
func TestInterestClientGetsOnlyItsContainersTSClientGetsAll(t *testing.T) {
	rs := startHostileServer(t)
	addr := rs.s.Addr().String()
	agent := dialRawConn(t, "agent", addr)
	helloAsking(t, agent, "agent-client", 30)
	ic := dialRawConn(t, "interest", addr)
	helloInterest(t, ic, "interest-client")
	ts := dialRawConn(t, "ts", addr)
	tsHello(t, ts, rs.s, "ts-client")

	reg := registration("a1", "k", "c1", "c2")
	require.Equal(t, backrpc.OpResponse, rawRequest(t, agent, "r1", "ar", reg).Op)
	require.Eventually(t, func() bool {
		s := seen(t, ts)
		return contains(s, "c1:added") && contains(s, "c2:added")
	}, answerWait, 10*time.Millisecond, "the TS client gets every event")
	// The interest client holds c1 only.
	m := rawRequest(t, ic, "g1", "gg", map[string]any{"kind": "k", "request": map[string]any{"uuid": "c1"}})
	require.Equal(t, backrpc.OpResponse, m.Op, "%s", m.Payload)

	// Both containers change in one batch.
	require.Equal(t, backrpc.OpResponse, rawRequest(t, agent, "r2", "ar", withLabel(reg, "v2")).Op)
	require.Eventually(t, func() bool {
		s := seen(t, ts)
		return contains(s, "c1:updated") && contains(s, "c2:updated")
	}, answerWait, 10*time.Millisecond, "the TS client gets every event")
	require.Eventually(t, func() bool { return contains(seen(t, ic), "c1:updated") }, answerWait, 10*time.Millisecond,
		"the holder gets its container's events")
	assert.False(t, hasEntry(t, ic, "c2"), "no event of a container it does not hold: %v", seen(t, ic))

	// The removal reaches the holder, whose reference is gone with it.
	require.Equal(t, backrpc.OpResponse, rawRequest(t, agent, "r3", "ar", registration("a1", "k")).Op)
	require.Eventually(t, func() bool { return contains(seen(t, ic), "c1:removed") }, answerWait, 10*time.Millisecond)
	require.Eventually(t, func() bool { return contains(seen(t, ts), "c2:removed") }, answerWait, 10*time.Millisecond)
	assert.False(t, hasEntry(t, ic, "c2"), "%v", seen(t, ic))

	// Agent events go to both.
	for _, c := range []*rawConn{ic, ts} {
		var agents int
		for _, p := range c.ourEvents() {
			var ev network.Event
			require.NoError(t, json.Unmarshal(p, &ev))
			agents += len(ev.Agents)
		}
		assert.Positive(t, agents, c.name)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// go.watch subscribes to kinds, uuids or everything; a subscription over
// the limit is refused with a clear error.
func TestInterestWatchSubscriptions(t *testing.T) {
	rs := runServer(t, "tcp://127.0.0.1:0", Options{
		AliveTimeout: 800 * time.Millisecond, PingInterval: 100 * time.Millisecond,
		UnusedTimeout: 300 * time.Millisecond, MaxSubscriptions: 2,
	})
	addr := rs.s.Addr().String()
	agent := dialRawConn(t, "agent", addr)
	helloAsking(t, agent, "agent-client", 30)
	byKind := dialRawConn(t, "by-kind", addr)
	helloInterest(t, byKind, "by-kind")
	byUUID := dialRawConn(t, "by-uuid", addr)
	helloInterest(t, byUUID, "by-uuid")
	all := dialRawConn(t, "all", addr)
	helloInterest(t, all, "all")

	m := rawRequest(t, byKind, "w0", MethodWatch, map[string]any{"kinds": []string{"a", "b", "c"}})
	require.Equal(t, backrpc.OpResponseError, m.Op, "over the limit")
	assert.Contains(t, string(m.Payload), "too many subscriptions")
	assert.Equal(t, uint64(1), rs.s.Stats().RefusedWatches)
	require.Equal(t, backrpc.OpResponse, rawRequest(t, byKind, "w1", MethodWatch, map[string]any{"kinds": []string{"k2"}}).Op)
	require.Equal(t, backrpc.OpResponse, rawRequest(t, byUUID, "w1", MethodWatch, map[string]any{"uuids": []string{"x1"}}).Op)
	require.Equal(t, backrpc.OpResponse, rawRequest(t, all, "w1", MethodWatch, map[string]any{"all": true}).Op)

	reg := registration("a1", "k1", "x1", "x2")
	reg2 := registration("a2", "k2", "y1")
	require.Equal(t, backrpc.OpResponse, rawRequest(t, agent, "r1", "ar", reg).Op)
	require.Equal(t, backrpc.OpResponse, rawRequest(t, agent, "r2", "ar", reg2).Op)

	require.Eventually(t, func() bool {
		s := seen(t, all)
		return contains(s, "x1:added") && contains(s, "x2:added") && contains(s, "y1:added")
	}, answerWait, 10*time.Millisecond)
	require.Eventually(t, func() bool { return contains(seen(t, byKind), "y1:added") }, answerWait, 10*time.Millisecond)
	require.Eventually(t, func() bool { return contains(seen(t, byUUID), "x1:added") }, answerWait, 10*time.Millisecond)
	// All three were in the same batches: what is missing was not sent.
	assert.Equal(t, []string{"y1:added"}, seen(t, byKind))
	assert.Equal(t, []string{"x1:added"}, seen(t, byUUID))
	sub, ok := rs.s.Network().Subscription("by-uuid")
	require.True(t, ok)
	assert.Equal(t, []network.ContainerUUID{"x1"}, sub.UUIDs)
}

// A get that failed keeps its client interested in the uuid it waits for
// (the agent entries serve the kind), until a get succeeds.
func TestInterestFailedGetWaitsForItsKind(t *testing.T) {
	rs := startHostileServer(t)
	addr := rs.s.Addr().String()
	ic := dialRawConn(t, "interest", addr)
	helloInterest(t, ic, "waiter")
	m := rawRequest(t, ic, "g1", "gg", map[string]any{"kind": "late", "request": map[string]any{"uuid": "l1"}})
	require.Equal(t, backrpc.OpResponseError, m.Op)
	assert.Equal(t, 2, rs.s.Stats().Interest.Waits, "the kind and the uuid")

	agent := dialRawConn(t, "agent", addr)
	helloAsking(t, agent, "agent-client", 30)
	require.Equal(t, backrpc.OpResponse, rawRequest(t, agent, "r1", "ar", registration("a1", "late", "l1", "l2")).Op)
	require.Eventually(t, func() bool { return contains(seen(t, ic), "l1:added") }, answerWait, 10*time.Millisecond)
	assert.Equal(t, []string{"l1:added"}, seen(t, ic), "not the kind's other containers")

	m = rawRequest(t, ic, "g2", "gg", map[string]any{"kind": "late", "request": map[string]any{"uuid": "l1"}})
	require.Equal(t, backrpc.OpResponse, m.Op, "%s", m.Payload)
	assert.Equal(t, 0, rs.s.Stats().Interest.Waits, "a get that succeeds ends the wait")
}

// The whole batch a TS client gets is what encoding the event at once
// gives, byte for byte.
func TestAssembledEventIsTheEncodedEvent(t *testing.T) {
	ev := network.Event{
		Agents: []network.AgentEvent{{ID: "a", Kinds: []string{"k"}}, {ID: "b", Event: network.EventRemoved}},
		Containers: []network.ContainerEvent{
			{Container: network.ContainerRecord{AgentID: "a", UUID: "u<1>", Kind: "k", Extra: json.RawMessage(`{"x": [1, 2]}`), Labels: []string{"l&"}}},
			{Container: network.ContainerRecord{AgentID: "a", UUID: "u2"}, Event: network.EventUpdated},
		},
	}
	want, err := backrpc.MarshalJSON(ev)
	require.NoError(t, err)
	var agents, conts [][]byte
	for _, a := range ev.Agents {
		b, err := json.Marshal(a)
		require.NoError(t, err)
		agents = append(agents, b)
	}
	for _, c := range ev.Containers {
		b, err := json.Marshal(c)
		require.NoError(t, err)
		conts = append(conts, b)
	}
	assert.Equal(t, string(want), string(assembleEvent(agents, conts, nil, true)))
	assert.JSONEq(t, `{"agents":[],"containers":[]}`, string(assembleEvent(nil, nil, nil, true)))
	one := assembleEvent(agents, conts, []int{1}, false)
	var got network.Event
	require.NoError(t, json.Unmarshal(one, &got))
	require.Len(t, got.Containers, 1)
	assert.Equal(t, network.ContainerUUID("u2"), got.Containers[0].Container.UUID)
	assert.Len(t, got.Agents, 2)
}
