package process_test

import (
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/client/clienttest"
)

func countChunks(t *testing.T, rd *client.StreamReader) int {
	t.Helper()
	ctx := clienttest.Ctx(t)
	n := 0
	for {
		c, err := rd.Next(ctx)
		if errors.Is(err, io.EOF) {
			return n
		}
		require.NoError(t, err)
		var v struct{ I int }
		require.NoError(t, json.Unmarshal(c, &v))
		require.Equal(t, n, v.I)
		n++
	}
}

// A container program built on the SDK streams routed (relayed by its
// agent) and direct (from its own endpoint).
func TestProgramStreamsRoutedAndDirect(t *testing.T) {
	r := startRig(t, nil)
	c := clienttest.Dial(t, r.srv.Addr())
	ctx := clienttest.Ctx(t)
	ref, err := c.Get(ctx, "echo", client.GetOptions{})
	require.NoError(t, err)

	rd, err := ref.Stream(ctx, "stream", map[string]int{"n": 300})
	require.NoError(t, err)
	assert.Equal(t, 300, countChunks(t, rd), "routed through the agent")

	conn, err := ref.Connect(ctx)
	require.NoError(t, err)
	rd, err = conn.Stream(ctx, "stream", map[string]int{"n": 200})
	require.NoError(t, err)
	assert.Equal(t, 200, countChunks(t, rd), "direct to the program")

	res, err := ref.Request(ctx, "stream", map[string]int{"n": 2})
	require.NoError(t, err)
	assert.JSONEq(t, `[{"i":0},{"i":1}]`, string(res), "a plain request gets one array")
}
