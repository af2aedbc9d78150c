package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/client/clienttest"
)

func TestChat(t *testing.T) {
	srv := clienttest.StartServer(t)
	var out bytes.Buffer
	require.NoError(t, run(clienttest.Ctx(t), srv.Addr(), &out))
	assert.Equal(t, `room-general has 2 members
bob hears alice: hi bob
alice hears bob: hello alice
`, out.String())
}
