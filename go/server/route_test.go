package server

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
