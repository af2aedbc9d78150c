package server

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/backrpc"
)

// A stream opened on a container whose agent does not stream (a TypeScript
// agent, which announces nothing) is a plain cs to it, answered as one
// chunk and the end.
func TestStreamFromAnAgentThatDoesNotStream(t *testing.T) {
	rs := startRawPeerServer(t)
	addr := rs.s.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var mu sync.Mutex
	var got []string
	tsAgent, err := backrpc.Dial(addr, backrpc.ClientOptions{}, backrpc.ClientHandler{
		HandleRequest: func(_ context.Context, method string, params json.RawMessage) (any, error) {
			mu.Lock()
			got = append(got, method+" "+string(params))
			mu.Unlock()
			return map[string]string{"answer": "whole"}, nil
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = tsAgent.Close(context.Background()) })
	_, err = tsAgent.Request(ctx, "ar", json.RawMessage(`{"uuid":"ts-agent","containers":[{"agentId":"ts-agent","uuid":"c1","kind":"k","endpoint":"","lastVisit":1}],"kinds":["k"],"endpoint":null}`))
	require.NoError(t, err)

	goClient, err := backrpc.Dial(addr, backrpc.ClientOptions{Capabilities: []string{backrpc.CapStream}}, backrpc.ClientHandler{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = goClient.Close(context.Background()) })
	require.NoError(t, goClient.WaitConnected(ctx))
	assert.True(t, goClient.ServerHello().Has(backrpc.CapStream))
	res, err := goClient.Request(ctx, "x.so", []any{"c1", "op", map[string]int{"n": 1}, 16})
	require.NoError(t, err)
	assert.JSONEq(t, `{"chunks":[{"answer":"whole"}],"end":true}`, string(res))
	mu.Lock()
	assert.Equal(t, []string{`cs ["ts-agent",["c1","op",{"n":1}]]`}, got, "the TS agent saw the reference's cs")
	mu.Unlock()

	_, err = goClient.Request(ctx, "x.so", []any{"nobody", "op", nil})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Container nobody not found")
}
