package networkd

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func noEnv(string) string { return "" }

// The daemon starts in-process from a Config, serves, and stops cleanly.
func TestDaemonInProcess(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Listen = "tcp://127.0.0.1:0"
	require.NoError(t, cfg.Validate())
	d, err := New(cfg, nil, noEnv, logrus.New())
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, d.Start(ctx))
	conn, err := net.Dial("tcp", d.Server().Addr().String())
	require.NoError(t, err, "bound once Start returned")
	require.NoError(t, conn.Close())
	assert.Equal(t, "0 clients, 0 agents, 0 containers", d.Status())
	assert.NotEmpty(t, d.Collectors())
	require.NoError(t, d.Stop(ctx))
	select {
	case err := <-d.Failed():
		t.Fatalf("a requested stop is no failure: %v", err)
	default:
	}
}

// A listen address in use fails Start (exit status 1), not New.
func TestDaemonBindFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	cfg := DefaultConfig()
	cfg.Listen = "tcp://" + ln.Addr().String()
	d, err := New(cfg, nil, noEnv, logrus.New())
	require.NoError(t, err)
	assert.ErrorContains(t, d.Start(context.Background()), "address already in use")
}

// The socket passed by systemd is served instead of binding listen.
func TestDaemonServesActivatedListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	cfg := DefaultConfig()
	cfg.Listen = "tcp://127.0.0.1:1"
	d, err := New(cfg, ln, noEnv, logrus.New())
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, d.Start(ctx))
	assert.Equal(t, ln.Addr().String(), d.Server().Addr().String())
	require.NoError(t, d.Stop(ctx))
}
