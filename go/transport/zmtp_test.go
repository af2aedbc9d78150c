package transport

import (
	"testing"

	"github.com/go-zeromq/zmq4"
	"github.com/go-zeromq/zmq4/security/null"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/curve"
)

// nullSecurity is zmq4's NULL mechanism, the reference our handshake is
// checked against.
func nullSecurity() zmq4.Security { return null.Security() }

func mustKeyPair(t testing.TB) curve.KeyPair {
	t.Helper()
	kp, err := curve.GenerateKeyPair()
	require.NoError(t, err)
	return kp
}
