package server

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/network"
)

// Hostile peers, as raw ZMTP DEALERs on 127.0.0.1 writing the frames the
// TypeScript client writes. Nothing here measures time: each test waits for
// the state it needs and counts what the server did.

func startHostileServer(t *testing.T) *runningServer {
	t.Helper()
	return runServer(t, "tcp://127.0.0.1:0", Options{
		AliveTimeout:  800 * time.Millisecond,
		PingInterval:  100 * time.Millisecond,
		UnusedTimeout: 300 * time.Millisecond,
	})
}

// hello says hello with the given alive timeout in seconds.
func helloAsking(t *testing.T, c *rawConn, clientID string, aliveSecs int) {
	t.Helper()
	c.send(t, []byte("0"), []byte(clientID), []byte(fmt.Sprintf(`{"aliveTimeout":%d}`, aliveSecs)), []byte{})
	c.recv(t, "hello", func(m backrpc.Message) bool { return m.Op == backrpc.OpHello })
}

func rawRequest(t *testing.T, c *rawConn, id, method string, params any) backrpc.Message {
	t.Helper()
	p, err := backrpc.EncodeRequestPayload(method, params)
	require.NoError(t, err)
	return tsRequest(t, c, id, p)
}

func registration(agent network.AgentID, kind string, containers ...network.ContainerUUID) network.AgentRegistration {
	reg := network.AgentRegistration{UUID: agent, Kinds: []string{kind}, Endpoint: network.AgentNoConnectRef(agent), Containers: []network.ContainerRecord{}}
	for _, uuid := range containers {
		reg.Containers = append(reg.Containers, network.ContainerRecord{AgentID: agent, UUID: uuid, Kind: kind})
	}
	return reg
}

// serveBackRequest answers the next back-request of method on an agent's
// connection with result, and returns its params.
func serveBackRequest(t *testing.T, agent *rawConn, method string, result any) json.RawMessage {
	t.Helper()
	m := agent.recv(t, "back-request "+method, func(m backrpc.Message) bool { return m.Op == backrpc.OpRequest })
	got, params, err := backrpc.DecodeRequestPayload(m.Payload)
	require.NoError(t, err)
	require.Equal(t, method, got)
	raw, err := json.Marshal(result)
	require.NoError(t, err)
	agent.send(t, []byte("2"), []byte(m.ID), raw)
	return params
}

// Table row 1: ghosts that registered an agent and left get no work.
func TestHostileGhostAgentsGetNoWork(t *testing.T) {
	rs := startHostileServer(t)
	addr := "tcp://" + rs.s.Addr().String()
	for i := 0; i < 10; i++ {
		g := dialRawConn(t, fmt.Sprintf("ghost%d", i), addr)
		id := fmt.Sprintf("00000000-0000-4000-8000-0000000000%02d", i)
		helloAsking(t, g, id, 600)
		m := rawRequest(t, g, id+"-0", "ar", registration(network.AgentID(fmt.Sprintf("ghost-agent-%d", i)), "K"))
		require.Equal(t, backrpc.OpResponse, m.Op, "%s", m.Payload)
		g.close()
	}
	require.Eventually(t, func() bool { return rs.s.Stats().Network.UnreachableAgents == 10 },
		answerWait, 5*time.Millisecond, "the server did not notice the ghosts left")

	agent := dialRawConn(t, "agent", addr)
	const agentClient = "a0000000-0000-4000-8000-000000000001"
	helloAsking(t, agent, agentClient, 3)
	m := rawRequest(t, agent, agentClient+"-0", "ar", registration("good-agent", "K"))
	require.Equal(t, backrpc.OpResponse, m.Op, "%s", m.Payload)

	client := dialRawConn(t, "client", addr)
	const clientID = "c0000000-0000-4000-8000-000000000001"
	helloAsking(t, client, clientID, 3)
	callsBefore := rs.s.Stats().RPC.Calls
	const gets = 5
	for i := 0; i < gets; i++ {
		id := fmt.Sprintf("%s-%d", clientID, i)
		client.send(t, []byte("1"), []byte(id), []byte(`["gg",{"kind":"K","request":{}}]`))
		serveBackRequest(t, agent, "gg", []string{fmt.Sprintf("k-%d", i), ""})
		m := client.recv(t, "gg answer", func(m backrpc.Message) bool { return m.ID == id })
		assert.Equal(t, backrpc.OpResponse, m.Op, "get %d: %s", i, m.Payload)
	}
	st := rs.s.Stats()
	assert.EqualValues(t, gets, st.RPC.Calls-callsBefore, "every back-request went to the live agent: none to the ghosts")
	assert.Equal(t, 10, st.Network.UnreachableAgents)
}

// Table row 2: absurd client ids are refused and leave nothing behind.
func TestHostileHugeClientIDsRefused(t *testing.T) {
	rs := startHostileServer(t)
	addr := "tcp://" + rs.s.Addr().String()
	huge := []byte(strings.Repeat("z", 30<<20))
	for i := 0; i < 3; i++ {
		c := dialRawConn(t, fmt.Sprintf("huge%d", i), addr)
		c.send(t, []byte("0"), huge, []byte(`{"aliveTimeout":31536000}`), []byte{})
		m := c.recv(t, "refusal", func(m backrpc.Message) bool { return m.Op == backrpc.OpResponseError })
		assert.Contains(t, backrpc.DecodeErrorPayload(m.Payload).Error(), "client id too long")
		require.Eventually(t, func() bool { return c.connects.Load() > 1 }, answerWait, 5*time.Millisecond,
			"the refused connection was not closed")
		c.close()
	}
	st := rs.s.Stats()
	assert.Equal(t, 0, st.RPC.Clients, "no session kept")
	assert.Equal(t, 0, st.RPC.DetachedSessions)
	assert.EqualValues(t, 3, st.RPC.RefusedHellos)

	good := dialRawConn(t, "good", addr)
	tsHello(t, good, rs.s, "45753fc2-520b-4558-b51f-8bbfcfd73448")
	stillServes(t, good, "45753fc2-520b-4558-b51f-8bbfcfd73448-0")
}

// Table row 5: another session cannot take a live agent.
func TestHostileAgentTakeoverRefused(t *testing.T) {
	rs := startHostileServer(t)
	addr := "tcp://" + rs.s.Addr().String()
	victim := dialRawConn(t, "victim", addr)
	const victimID = "b0000000-0000-4000-8000-000000000001"
	helloAsking(t, victim, victimID, 3)
	m := rawRequest(t, victim, victimID+"-0", "ar", registration("victim-agent", "K", "vc-1"))
	require.Equal(t, backrpc.OpResponse, m.Op, "%s", m.Payload)

	impostor := dialRawConn(t, "impostor", addr)
	const impostorID = "e0000000-0000-4000-8000-000000000001"
	helloAsking(t, impostor, impostorID, 3)
	m = rawRequest(t, impostor, impostorID+"-0", "ar", registration("victim-agent", "K"))
	assert.Equal(t, backrpc.OpResponseError, m.Op, "ar of another session's agent: %s", m.Payload)
	assert.Contains(t, backrpc.DecodeErrorPayload(m.Payload).Error(), "registered by another session")
	m = rawRequest(t, impostor, impostorID+"-1", "au", map[string]string{"uuid": "victim-agent"})
	assert.Equal(t, backrpc.OpResponseError, m.Op, "au of another session's agent: %s", m.Payload)
	assert.EqualValues(t, 2, rs.s.Stats().Network.RefusedClaims)

	rec, ok := rs.s.Network().Container("vc-1")
	require.True(t, ok, "the victim keeps its container")
	assert.Equal(t, network.AgentID("victim-agent"), rec.AgentID)

	// Requests still reach the victim, not the impostor.
	client := dialRawConn(t, "client", addr)
	const clientID = "c0000000-0000-4000-8000-000000000002"
	helloAsking(t, client, clientID, 3)
	client.send(t, []byte("1"), []byte(clientID+"-0"), []byte(`["cs",["vc-1","op",{"secret":1}]]`))
	params := serveBackRequest(t, victim, "cs", map[string]int{"ok": 1})
	assert.Contains(t, string(params), "secret")
	m = client.recv(t, "cs answer", func(m backrpc.Message) bool { return m.ID == clientID+"-0" })
	assert.Equal(t, backrpc.OpResponse, m.Op)
	assert.JSONEq(t, `{"ok":1}`, string(m.Payload))
	assert.Empty(t, impostor.barrier(t), "nothing reached the impostor")
}

// HA: the owner's connection is killed; the standby serves.
func TestHostileOwnerKilledStandbyServes(t *testing.T) {
	rs := startHostileServer(t)
	addr := "tcp://" + rs.s.Addr().String()
	owner := dialRawConn(t, "owner", addr)
	const ownerID = "d0000000-0000-4000-8000-000000000001"
	helloAsking(t, owner, ownerID, 600) // silence alone would keep it for minutes
	m := rawRequest(t, owner, ownerID+"-0", "ar", registration("owner-agent", "leader", "leader-1"))
	require.Equal(t, backrpc.OpResponse, m.Op, "%s", m.Payload)

	standby := dialRawConn(t, "standby", addr)
	const standbyID = "d0000000-0000-4000-8000-000000000002"
	helloAsking(t, standby, standbyID, 3)
	m = rawRequest(t, standby, standbyID+"-0", "ar", registration("standby-agent", "leader", "leader-1"))
	require.Equal(t, backrpc.OpResponse, m.Op)
	assert.JSONEq(t, `["leader-1"]`, string(m.Payload), "the standby is told the container is owned")

	owner.close()
	require.Eventually(t, func() bool { _, ok := rs.s.Network().Container("leader-1"); return !ok },
		answerWait, 5*time.Millisecond, "the container was not released by its disconnected owner")
	// The standby claims it, as an agent does on the removal event.
	m = rawRequest(t, standby, standbyID+"-1", "ar", registration("standby-agent", "leader", "leader-1"))
	require.Equal(t, backrpc.OpResponse, m.Op)
	assert.JSONEq(t, `[]`, string(m.Payload))

	client := dialRawConn(t, "client", addr)
	const clientID = "c0000000-0000-4000-8000-000000000003"
	helloAsking(t, client, clientID, 3)
	client.send(t, []byte("1"), []byte(clientID+"-0"), []byte(`["cs",["leader-1","who",null]]`))
	serveBackRequest(t, standby, "cs", "standby")
	m = client.recv(t, "cs answer", func(m backrpc.Message) bool { return m.ID == clientID+"-0" })
	assert.Equal(t, backrpc.OpResponse, m.Op)
	assert.JSONEq(t, `"standby"`, string(m.Payload))
	assert.EqualValues(t, 1, rs.s.Stats().Network.Failovers)
}

// A request to a container whose agent's connection is gone fails at once
// with an error naming the container, not a transport detail.
func TestHostileRouteToDisconnectedAgentFailsClearly(t *testing.T) {
	rs := startHostileServer(t)
	addr := "tcp://" + rs.s.Addr().String()
	agent := dialRawConn(t, "agent", addr)
	const agentID = "f0000000-0000-4000-8000-000000000001"
	helloAsking(t, agent, agentID, 600)
	m := rawRequest(t, agent, agentID+"-0", "ar", registration("lonely-agent", "K", "lc-1"))
	require.Equal(t, backrpc.OpResponse, m.Op)
	agent.close()
	require.Eventually(t, func() bool { return rs.s.Stats().Network.UnreachableAgents == 1 },
		answerWait, 5*time.Millisecond)

	client := dialRawConn(t, "client", addr)
	const clientID = "c0000000-0000-4000-8000-000000000004"
	helloAsking(t, client, clientID, 3)
	m = rawRequest(t, client, clientID+"-0", "cs", []any{"lc-1", "op", nil})
	require.Equal(t, backrpc.OpResponseError, m.Op)
	msg := backrpc.DecodeErrorPayload(m.Payload).Error()
	assert.Contains(t, msg, "lc-1")
	assert.Contains(t, msg, "agent lonely-agent is unreachable")
	assert.NotContains(t, msg, "transport")
}
