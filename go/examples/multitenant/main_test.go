package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/client/clienttest"
)

func TestMultiTenant(t *testing.T) {
	srv := clienttest.StartServer(t)
	var out bytes.Buffer
	require.NoError(t, run(clienttest.Ctx(t), srv.Addr(), &out))
	assert.Equal(t, `ann (acme) is in the acme workspace, visit 1
bob (globex) is in the globex workspace, visit 1
cid (acme) is in the acme workspace, visit 2
ann and cid share a workspace: true
bob's is another: true
workspaces: tenant=acme tenant=globex
`, out.String())
}
