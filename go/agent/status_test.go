package agent_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/client/clienttest"
	"github.com/huly-net/huly-net/go/network"
)

// reporting is an echo whose status the test sets.
type reporting struct {
	agent.Echo
	mu sync.Mutex
	st agent.ContainerStatus
}

func (r *reporting) ContainerStatus() agent.ContainerStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st
}

func (r *reporting) set(st agent.ContainerStatus) {
	r.mu.Lock()
	r.st = st
	r.mu.Unlock()
}

func TestStatusReporterFieldsAndDown(t *testing.T) {
	s := clienttest.StartServer(t)
	made := make(chan *reporting, 1)
	a, _ := clienttest.StartAgent(t, s.Addr(), clienttest.AgentSetup{
		Kinds: map[string]agent.Factory{"st": func(ctx context.Context, uuid string, o network.GetOptions) (agent.Container, error) {
			r := &reporting{st: agent.ContainerStatus{Fields: map[string]any{"state": "running", "runtime": "test"}}}
			made <- r
			return r, nil
		}},
	})
	c := clienttest.Dial(t, s.Addr())
	ctx := clienttest.Ctx(t)
	ref, err := c.Get(ctx, "st", client.GetOptions{Extra: json.RawMessage(`{"size":1,"state":"x"}`)})
	require.NoError(t, err)
	r := <-made

	extraOf := func() map[string]any {
		recs, err := c.List(ctx, "st")
		if err != nil || len(recs) != 1 {
			return nil
		}
		var m map[string]any
		_ = json.Unmarshal(recs[0].Extra, &m)
		return m
	}
	// The start itself triggers a registration that publishes the status.
	require.Eventually(t, func() bool { return extraOf()["runtime"] == "test" }, clienttest.WaitFor, 10*time.Millisecond)
	m := extraOf()
	assert.Equal(t, "running", m["state"], "the container's fields win over the get's")
	assert.EqualValues(t, 1, m["size"], "the get's extra is kept")

	r.set(agent.ContainerStatus{Down: true, Fields: map[string]any{"state": "crashed"}})
	a.Refresh()
	require.Eventually(t, func() bool {
		recs, err := c.List(ctx, "st")
		return err == nil && len(recs) == 0
	}, clienttest.WaitFor, 10*time.Millisecond, "a Down container is unregistered")

	r.set(agent.ContainerStatus{Fields: map[string]any{"state": "running", "restarts": 1}})
	a.Refresh()
	require.Eventually(t, func() bool { return extraOf()["restarts"] != nil }, clienttest.WaitFor, 10*time.Millisecond)
	res, err := ref.Request(ctx, "ping", nil)
	require.NoError(t, err)
	assert.Contains(t, string(res), `"operation":"ping"`)
}
