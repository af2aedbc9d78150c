package server

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/network"
)

func TestGetAnswerIsWhatEncodingJSONWrites(t *testing.T) {
	for _, pair := range [][2]string{
		{"echo-1", `{"kind":0,"host":"127.0.0.1","port":3738,"agentId":"a","uuid":"echo-1"}`},
		{"", ""},
		{"ü <tag> & \u2028", "line\nbreak \"quoted\" \\"},
	} {
		want, err := json.Marshal([]string{pair[0], pair[1]})
		require.NoError(t, err)
		got := getAnswer(network.ContainerUUID(pair[0]), pair[1])
		var a, b []string
		require.NoError(t, json.Unmarshal(want, &a))
		require.NoError(t, json.Unmarshal(got, &b), string(got))
		assert.Equal(t, a, b)

		uuid, ref, ok := splitGetAnswer(got)
		require.True(t, ok, string(got))
		assert.Equal(t, pair[0], uuid)
		assert.Equal(t, pair[1], ref)
	}
}

func TestSplitGetAnswerRejectsAnythingButTwoStrings(t *testing.T) {
	for _, bad := range []string{`[]`, `["a"]`, `["a","b","c"]`, `[1,"b"]`, `{"error":"x"}`, `"a"`} {
		_, _, ok := splitGetAnswer(json.RawMessage(bad))
		assert.False(t, ok, bad)
	}
}

// A routed request in flight when its agent's connection ends fails at
// once, and the server keeps serving the client.
func TestRoutedRequestFailsWhenTheAgentGoes(t *testing.T) {
	s := startServer(t)
	_, agentConn := registerEcho(t, s)
	user := dial(t, s, backrpc.ClientHandler{})
	request(t, user, "gg", map[string]any{"kind": "echo", "request": map[string]any{}})

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		_, err := user.Request(ctx, "cs", []any{"echo-1", "hang", nil})
		done <- err
	}()
	require.Eventually(t, func() bool { return s.Stats().RPC.CallsInFlight == 1 }, waitFor, 5*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, agentConn.Close(ctx))
	select {
	case err := <-done:
		require.Error(t, err)
		assert.NotErrorIs(t, err, context.DeadlineExceeded, "failed at once, not timed out")
	case <-time.After(waitFor):
		require.FailNow(t, "the routed request was not failed")
	}
	assert.Equal(t, 0, s.Stats().RPC.CallsInFlight)
	assert.JSONEq(t, `["echo"]`, string(request(t, user, "ak", map[string]any{})), "still serving")
}
