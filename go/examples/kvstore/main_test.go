package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/client/clienttest"
)

func TestKVStore(t *testing.T) {
	srv := clienttest.StartServer(t)
	var out bytes.Buffer
	require.NoError(t, run(clienttest.Ctx(t), srv.Addr(), &out))
	assert.Equal(t, `put greeting
put answer
put config
get greeting: hello
get answer: 42
list: [answer config greeting]
delete answer: true
get answer: error "no key \"answer\""
list: [config greeting]
`, out.String())
	// Everything was released and unregistered on the way out.
	require.Eventually(t, func() bool { return srv.Stats().Network.Agents == 0 }, clienttest.WaitFor, clienttest.PingInterval)
	assert.Equal(t, 0, srv.Stats().Network.References)
}
