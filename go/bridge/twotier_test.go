package bridge

import (
	"net"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	hutil "github.com/huly-net/huly-net/go/internal/testutil"
)

func TestTwoTierForwards(t *testing.T) {
	inner, outer, err := TwoTier{Name: "web", ContainerAddress: "10.231.0.2", RelayPort: 18080, ServicePort: 8080, HostListen: "8081"}.Forwards()
	require.NoError(t, err)
	assert.Equal(t, Forward{Name: "web-relay", Listen: "tcp:0.0.0.0:18080", Target: "tcp:127.0.0.1:8080"}, inner)
	assert.Equal(t, Forward{Name: "web", Listen: "tcp:127.0.0.1:8081", Target: "tcp:10.231.0.2:18080"}, outer)

	_, outer, err = TwoTier{Name: "v6", ContainerAddress: "fd00::2", RelayPort: 1, ServicePort: 2, HostListen: "tcp:[::1]:3"}.Forwards()
	require.NoError(t, err)
	assert.Equal(t, "tcp:[fd00::2]:1", outer.Target)
	assert.Equal(t, "tcp:[::1]:3", outer.Listen)

	_, outer, err = TwoTier{Name: "hp", ContainerAddress: "c1", RelayPort: 1, ServicePort: 2, HostListen: "0.0.0.0:80"}.Forwards()
	require.NoError(t, err)
	assert.Equal(t, "tcp:0.0.0.0:80", outer.Listen)

	_, _, err = TwoTier{Name: "bad", ContainerAddress: "[::1]", RelayPort: 0, ServicePort: 70000, HostListen: "x"}.Forwards()
	require.Error(t, err)
	for _, want := range []string{"container address", "relay port 0", "service port 70000", "host listen"} {
		assert.Contains(t, err.Error(), want)
	}
}

// TestTwoTierEndToEnd runs both tiers on loopback: the "container" address
// is 127.0.0.1, and the relay listens on every interface as it would inside
// the container.
func TestTwoTierEndToEnd(t *testing.T) {
	svc := startServer(t, "tcp", "127.0.0.1:0", echo)
	_, svcPort, err := net.SplitHostPort(svc.ln.Addr().String())
	require.NoError(t, err)
	servicePort, _ := strconv.Atoi(svcPort)

	inner, outer, err := TwoTier{
		Name: "svc", ContainerAddress: "127.0.0.1",
		RelayPort: hutil.FreePort(t), ServicePort: servicePort, HostListen: "127.0.0.1:0",
	}.Forwards()
	require.NoError(t, err)
	relay := startBridge(t, Options{Forwards: []Forward{inner}})
	host := startBridge(t, Options{Forwards: []Forward{outer}})

	c := dial(t, "tcp", host.addr(t, "svc"))
	roundTrip(t, c, "through two tiers")
	assert.Equal(t, uint64(1), relay.stats("svc-relay").TotalConnections)
	assert.Equal(t, uint64(1), host.stats("svc").TotalConnections)
}
