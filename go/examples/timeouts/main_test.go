package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/client/clienttest"
)

func TestTimeouts(t *testing.T) {
	srv := clienttest.StartServer(t)
	var out bytes.Buffer
	require.NoError(t, run(clienttest.Ctx(t), srv.Addr(), &out))
	assert.Equal(t, `development agent registered with a 1h alive timeout
sleep 500ms with a 100ms timeout: deadline exceeded
sleep 50ms with a 5s timeout: slept
client closed
`, out.String())
}
