package server

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/backrpc"
)

// A TypeScript 0.7 peer sees none of the extensions: its hello answer is
// empty and the answers to its methods do not change when an operator
// drains its agent; a peer announcing capabilities is told the server's.
func TestExtensionsAreInvisibleToA07Peer(t *testing.T) {
	rs := startRawPeerServer(t)
	addr := "tcp://" + rs.s.Addr().String()
	ts := dialRawConn(t, "ts", addr)
	const tsID = "45753fc2-520b-4558-b51f-8bbfcfd73448"
	tsHello(t, ts, rs.s, tsID) // requires an empty answer
	reg := `["ar",{"uuid":"ts-agent","containers":[{"agentId":"ts-agent","uuid":"c1","kind":"echo","endpoint":"","lastVisit":1}],"kinds":["echo"],"endpoint":null}]`
	m := tsRequest(t, ts, tsID+"-1", []byte(reg))
	require.Equal(t, backrpc.OpResponse, m.Op, string(m.Payload))
	before := tsRequest(t, ts, tsID+"-2", []byte(`["al",{}]`))
	beforeKinds := tsRequest(t, ts, tsID+"-3", []byte(`["ak",{}]`))

	op := dialRawConn(t, "operator", addr)
	const opID = "0b7a3a38-6f0a-4a0e-9d55-3a4f0c1d2e3f"
	op.send(t, []byte("0"), []byte(opID), []byte(`{"aliveTimeout":3,"capabilities":["ops"]}`), []byte{})
	hello := op.recv(t, "hello", func(m backrpc.Message) bool { return m.Op == backrpc.OpHello })
	info := backrpc.ParseHelloInfo(hello.Payload)
	assert.True(t, info.Has(backrpc.CapOps), "announced to a peer with capabilities: %s", hello.Payload)
	m = tsRequest(t, op, opID+"-1", []byte(`["x.drain",{"agent":"ts-agent"}]`))
	require.Equal(t, backrpc.OpResponse, m.Op, string(m.Payload))

	after := tsRequest(t, ts, tsID+"-4", []byte(`["al",{}]`))
	assert.Equal(t, string(before.Payload), string(after.Payload), "al is the reference's answer, drained or not")
	afterKinds := tsRequest(t, ts, tsID+"-5", []byte(`["ak",{}]`))
	assert.Equal(t, string(beforeKinds.Payload), string(afterKinds.Payload))

	m = tsRequest(t, op, opID+"-2", []byte(`["x.agents",{}]`))
	require.Equal(t, backrpc.OpResponse, m.Op, string(m.Payload))
	var states []map[string]any
	require.NoError(t, json.Unmarshal(m.Payload, &states))
	require.Len(t, states, 1)
	assert.Equal(t, true, states[0]["drained"])
	assert.Equal(t, map[string]any{"echo": 1.0}, states[0]["perKind"])

	// Drained: a get for a new container finds no room; an existing one
	// still is got and served.
	m = tsRequest(t, ts, tsID+"-6", []byte(`["gg",{"kind":"echo","request":{"labels":["new"]}}]`))
	assert.Equal(t, backrpc.OpResponseError, m.Op)
	assert.Contains(t, string(m.Payload), "No agent has room for container echo")
	m = tsRequest(t, op, opID+"-3", []byte(`["x.undrain",{"agent":"ts-agent"}]`))
	require.Equal(t, backrpc.OpResponse, m.Op, string(m.Payload))
	m = tsRequest(t, op, opID+"-4", []byte(`["x.drain",{"agent":"nobody"}]`))
	assert.Equal(t, backrpc.OpResponseError, m.Op)
	assert.Contains(t, string(m.Payload), "Agent nobody not found")
}
