package agentd

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/client/clienttest"
	"github.com/huly-net/huly-net/go/internal/config"
)

// TestDaemonInProcess starts the daemon from a Config, as a test or an
// embedding program would, without the binary or systemd.
func TestDaemonInProcess(t *testing.T) {
	srv := clienttest.StartServer(t)
	cfg := DefaultConfig()
	cfg.Network, cfg.Listen, cfg.AgentID = srv.Addr(), "127.0.0.1:0", "in-process"
	cfg.Kinds.Put("echo", &Kind{Runtime: "builtin", Builtin: "echo", StopTimeout: config.Duration(time.Second)})
	require.NoError(t, cfg.Validate())
	log := logrus.New()
	log.SetOutput(io.Discard)

	d := New(cfg, log, func(string) string { return "" })
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, d.Start(ctx))
	assert.Contains(t, d.Status(), "waiting for the network at "+srv.Addr())
	select {
	case <-d.Ready():
	case err := <-d.Failed():
		require.NoError(t, err)
	case <-ctx.Done():
		require.FailNow(t, "not registered in time")
	}
	assert.Equal(t, "registered; 0 running, 0 starting, 0 crashed", d.Status())

	c := clienttest.Dial(t, srv.Addr())
	ref, err := c.Get(ctx, "echo", client.GetOptions{})
	require.NoError(t, err)
	res, err := ref.Request(ctx, "hi", map[string]string{"a": "b"})
	require.NoError(t, err)
	assert.Contains(t, string(res), "hi")
	assert.Len(t, d.Collectors(), 1)

	require.NoError(t, d.Stop(ctx))
	assert.Contains(t, d.Status(), "stopping")
	agents, err := c.Agents(ctx)
	require.NoError(t, err)
	assert.Empty(t, agents, "the agent unregistered")
}
