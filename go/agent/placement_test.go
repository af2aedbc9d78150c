package agent_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/client/clienttest"
	"github.com/huly-net/huly-net/go/network"
)

// The capacity an agent reports reaches the network, which then places the
// containers it cannot hold on another agent.
func TestAgentCapacityIsReportedAndRespected(t *testing.T) {
	s := clienttest.StartServer(t)
	small, _ := clienttest.StartAgent(t, s.Addr(), clienttest.AgentSetup{
		Options: agent.Options{Capacity: map[string]int{"echo": 1}},
		Kinds:   clienttest.EchoKinds(),
	})
	big, _ := clienttest.StartAgent(t, s.Addr(), clienttest.AgentSetup{Kinds: clienttest.EchoKinds()})
	c := clienttest.Dial(t, s.Addr())
	ctx := clienttest.Ctx(t)
	byAgent := map[network.AgentID]int{}
	for i := range 4 {
		r, err := c.Get(ctx, "echo", client.GetOptions{Labels: []string{string(rune('a' + i))}})
		require.NoError(t, err)
		rec, ok := s.Network().Container(network.ContainerUUID(r.UUID()))
		require.True(t, ok)
		byAgent[rec.AgentID]++
	}
	assert.Equal(t, map[network.AgentID]int{network.AgentID(small.ID()): 1, network.AgentID(big.ID()): 3}, byAgent)
}
