package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/client/clienttest"
	"github.com/huly-net/huly-net/go/network"
)

func TestDrainUndrainTerminateCommands(t *testing.T) {
	n := startEchoNetwork(t)
	id := n.agent.ID()

	assert.Equal(t, "agent "+id+": drained\n", ok(t, "--network", n.addr, "drain", id))
	out := ok(t, "--network", n.addr, "agents")
	assert.Equal(t, "drained", strings.Fields(strings.Split(strings.TrimSpace(out), "\n")[1])[5], out)
	var states []map[string]any
	okJSON(t, &states, "--network", n.addr, "agents")
	require.Len(t, states, 1)
	assert.Equal(t, true, states[0]["drained"])

	r := ctl(t, "--network", n.addr, "--timeout", "300ms", "get", "echo")
	assert.Equal(t, 1, r.code, "no room on a drained agent: %s", r.stderr)

	assert.Equal(t, "agent "+id+": active\n", ok(t, "--network", n.addr, "undrain", id))
	c := clienttest.Dial(t, n.addr)
	ref, err := c.Get(clienttest.Ctx(t), "echo", client.GetOptions{UUID: "to-stop"})
	require.NoError(t, err)

	var res map[string]any
	okJSON(t, &res, "--network", n.addr, "terminate", "to-stop")
	assert.Equal(t, map[string]any{"uuid": "to-stop", "agent": id, "kind": "echo"}, res)
	_, err = ref.Request(clienttest.Ctx(t), "echo", 1)
	require.NoError(t, err, "the holder follows the container")

	r = ctl(t, "--network", n.addr, "terminate", "nothing-here")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "Container nothing-here not found")
	r = ctl(t, "--network", n.addr, "drain", "nobody")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "Agent nobody not found")
}

func TestKindsShowLimits(t *testing.T) {
	n := startEchoNetwork(t)
	var stats []network.KindStat
	okJSON(t, &stats, "--network", n.addr, "kinds", "--detail")
	require.Len(t, stats, 1)
	assert.Equal(t, "echo", stats[0].Kind)
	assert.Equal(t, 1, stats[0].Agents)
	var names []string
	okJSON(t, &names, "--network", n.addr, "kinds")
	assert.Equal(t, []string{"echo"}, names, "--json alone keeps its form")
}
