package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/client/clienttest"
)

func TestRequestStreamPrintsOneLinePerChunk(t *testing.T) {
	n := startEchoNetwork(t)
	c := clienttest.Dial(t, n.addr)
	_, err := c.Get(clienttest.Ctx(t), "echo", client.GetOptions{UUID: "st-1"})
	require.NoError(t, err)

	want := "{\"i\":0}\n{\"i\":1}\n{\"i\":2}\n{\"i\":3}\n{\"i\":4}\n"
	assert.Equal(t, want, ok(t, "--network", n.addr, "request", "--stream", "st-1", "stream", `{"n":5}`), "routed")
	assert.Equal(t, want, ok(t, "--network", n.addr, "request", "--stream", "--direct", "st-1", "stream", `{"n":5}`), "direct")

	// Without --stream the chunks come as one array.
	out := ok(t, "--network", n.addr, "--json", "request", "st-1", "stream", `{"n":2}`)
	assert.Equal(t, "[{\"i\":0},{\"i\":1}]\n", out)

	// A stream that fails prints what came and exits 1.
	r := ctl(t, "--network", n.addr, "request", "--stream", "st-1", "stream", `{"n":-1}`)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "n must be")
	assert.Equal(t, 1, strings.Count(r.stderr, "\n"))
}
