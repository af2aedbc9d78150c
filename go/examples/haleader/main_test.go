package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/client/clienttest"
)

func TestHALeaderFailover(t *testing.T) {
	srv := clienttest.StartServer(t)
	var out bytes.Buffer
	require.NoError(t, run(clienttest.Ctx(t), srv.Addr(), &out))
	assert.Equal(t, `leader runs on node-a
node-a stops
leader runs on node-b, same uuid: true
`, out.String())
}
