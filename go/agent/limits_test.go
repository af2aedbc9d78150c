package agent_test

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/go-zeromq/zmq4/security/null"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/client/clienttest"
	"github.com/huly-net/huly-net/go/transport"
)

// The agent's endpoint has the transport's protections by default: a
// connection that completes the handshake and says nothing is closed after
// the first-message timeout (the handshake timeout).
func TestEndpointClosesSilentConnectionsByDefault(t *testing.T) {
	s := clienttest.StartServer(t)
	a, _ := clienttest.StartAgent(t, s.Addr(), clienttest.AgentSetup{Kinds: clienttest.EchoKinds()})

	nc, err := net.DialTimeout("tcp", a.Addr().String(), waitFor)
	require.NoError(t, err)
	defer nc.Close()
	require.NoError(t, nc.SetDeadline(time.Now().Add(3*transport.DefaultHandshakeTimeout)))
	_, err = zmq4.Open(nc, null.Security(), zmq4.Dealer, nil, false, nil)
	require.NoError(t, err)
	_, err = io.Copy(io.Discard, nc)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		require.FailNow(t, "the endpoint kept a silent connection open")
	}
}
