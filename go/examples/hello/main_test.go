package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/client/clienttest"
)

func TestHello(t *testing.T) {
	srv := clienttest.StartServer(t)
	clienttest.StartAgent(t, srv.Addr(), clienttest.AgentSetup{Kinds: clienttest.EchoKinds()})

	var out bytes.Buffer
	require.NoError(t, run(clienttest.Ctx(t), srv.Addr(), &out))
	assert.Equal(t, `{"uuid":"hello","operation":"greet","data":{"to":"world"},"clientId":null}`+"\n", out.String())
}
