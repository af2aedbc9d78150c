package networkd

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/network"
	"github.com/huly-net/huly-net/go/server"
)

func TestKindMetrics(t *testing.T) {
	srv := server.New(server.Options{KindLimits: network.KindLimits{Default: network.KindLimit{MaxContainers: 3, MaxRequests: 9}}})
	defer srv.Close()
	_, err := srv.Network().RegisterAgent("client", network.AgentRegistration{
		UUID: "agent", Kinds: []string{"echo"},
		Containers: []network.ContainerRecord{{UUID: "c1", Kind: "echo"}, {UUID: "c2", Kind: "echo"}},
	})
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	reg.MustRegister(newKindCollector(srv))
	want := `
# HELP huly_network_kind_containers Containers of the kind.
# TYPE huly_network_kind_containers gauge
huly_network_kind_containers{kind="echo"} 2
# HELP huly_network_kind_max_containers Limit of containers of the kind (0: none).
# TYPE huly_network_kind_max_containers gauge
huly_network_kind_max_containers{kind="echo"} 3
# HELP huly_network_kind_max_requests Limit of routed requests in flight to the kind (0: none).
# TYPE huly_network_kind_max_requests gauge
huly_network_kind_max_requests{kind="echo"} 9
`
	require.NoError(t, promtest.GatherAndCompare(reg, strings.NewReader(want),
		"huly_network_kind_containers", "huly_network_kind_max_containers", "huly_network_kind_max_requests"))
}
