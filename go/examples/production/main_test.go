package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/client/clienttest"
)

func TestProduction(t *testing.T) {
	srv := clienttest.StartServer(t)
	var out bytes.Buffer
	require.NoError(t, run(clienttest.Ctx(t), srv.Addr(), &out))
	assert.Equal(t, `3 agents offer worker: agent-node-1, agent-node-2, agent-node-3
jobs per node: node-1 2, node-2 2, node-3 2
job-1 routed and over a connection: same node: true
released 6 jobs
`, out.String())
	// The agents unregistered and their containers went with them.
	require.Eventually(t, func() bool {
		st := srv.Stats().Network
		return st.Agents == 0 && st.Containers == 0
	}, clienttest.WaitFor, clienttest.PingInterval)
}
