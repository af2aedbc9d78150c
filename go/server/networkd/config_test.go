package networkd

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/internal/config"
	"github.com/huly-net/huly-net/go/network"
	"github.com/huly-net/huly-net/go/transport"
)

// loadConfig reads a configuration as the daemon's command line does,
// without validating it.
func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (*Config, bool, error) {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("huly-network", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := config.New(fs, cfg).Load(args, getenv); err != nil {
		return nil, false, err
	}
	PortHost(cfg, getenv)
	return cfg, false, nil
}

func TestDefaultListenIsPort3737(t *testing.T) {
	assert.Equal(t, "tcp://*:3737", DefaultConfig().Listen)
}

func TestPortAndHostOfAPod(t *testing.T) {
	env := map[string]string{"PORT": "4000", "HOST": "0.0.0.0"}
	cfg, _, err := loadConfig(nil, func(k string) string { return env[k] }, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "tcp://*:4000", cfg.Listen)
	cfg, _, err = loadConfig([]string{"--listen", "tcp://127.0.0.1:5000"}, func(k string) string { return env[k] }, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "tcp://127.0.0.1:5000", cfg.Listen, "an address set otherwise wins")
}

func TestConnectionLimitSettings(t *testing.T) {
	noEnv := func(string) string { return "" }
	cfg, _, err := loadConfig(nil, noEnv, io.Discard)
	require.NoError(t, err)
	require.NoError(t, cfg.Validate())
	assert.Zero(t, cfg.MaxConnections, "derived from the descriptor limit")
	assert.Equal(t, transport.DefaultMaxConnections(), cfg.Connections())
	assert.Equal(t, transport.DefaultHandshakeTimeout, cfg.HelloTimeout.D())
	assert.Equal(t, transport.DefaultFrameProgressTimeout, cfg.FrameProgressTimeout.D())
	assert.EqualValues(t, transport.DefaultMaxBufferedBytes, cfg.MaxBufferedBytes)

	cfg, _, err = loadConfig([]string{"--max-connections", "7", "--hello-timeout", "2s"}, func(k string) string {
		return map[string]string{"HULY_FRAME_PROGRESS_TIMEOUT": "3s"}[k]
	}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, 7, cfg.Connections())
	assert.Equal(t, 2*time.Second, cfg.HelloTimeout.D())
	assert.Equal(t, 3*time.Second, cfg.FrameProgressTimeout.D())

	file := filepath.Join(t.TempDir(), "c.json")
	require.NoError(t, os.WriteFile(file, []byte(`{"max_buffered_bytes": 134217728}`), 0o600))
	cfg, _, err = loadConfig([]string{"--config", file}, noEnv, io.Discard)
	require.NoError(t, err)
	assert.EqualValues(t, 128<<20, cfg.MaxBufferedBytes)

	for _, bad := range [][]string{
		{"--max-connections", "-1"},
		{"--hello-timeout", "0s"},
		{"--frame-progress-timeout", "0s"},
		{"--max-buffered-bytes", "1000000"}, // below max_frame_size
	} {
		cfg, _, err := loadConfig(bad, noEnv, io.Discard)
		require.NoError(t, err, bad)
		assert.Error(t, cfg.Validate(), bad)
	}
}

func TestPeerLimitSettings(t *testing.T) {
	env := map[string]string{"HULY_MAX_CLIENT_ID_LENGTH": "100"}
	dir := t.TempDir()
	conf := dir + "/network.json"
	require.NoError(t, os.WriteFile(conf, []byte(`{"max_detached_sessions":7}`), 0o600))
	cfg, _, err := loadConfig([]string{"--config", conf, "--max-alive-timeout", "10s"}, func(k string) string { return env[k] }, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, 10*time.Second, cfg.MaxAliveTimeout.D())
	assert.Equal(t, 100, cfg.MaxClientIDLen)
	assert.Equal(t, 7, cfg.MaxDetachedSessions)
	require.NoError(t, cfg.Validate())

	d := DefaultConfig()
	assert.Equal(t, 5*time.Minute, d.MaxAliveTimeout.D())
	assert.Equal(t, 256, d.MaxClientIDLen)
	assert.Equal(t, 10000, d.MaxDetachedSessions)

	cfg.MaxAliveTimeout = 0
	cfg.MaxClientIDLen = 3
	cfg.MaxDetachedSessions = 0
	err = cfg.Validate()
	require.Error(t, err)
	for _, key := range []string{"max_alive_timeout", "max_client_id_length", "max_detached_sessions"} {
		assert.Contains(t, err.Error(), key)
	}
}

func TestKindLimitSettings(t *testing.T) {
	env := map[string]string{"HULY_MAX_REQUESTS_PER_KIND": "50"}
	cfg, _, err := loadConfig([]string{"--max-containers-per-kind", "100", "--kind-limits", "echo=10/5,kv=/7"},
		func(k string) string { return env[k] }, io.Discard)
	require.NoError(t, err)
	require.NoError(t, cfg.Validate())
	l, err := cfg.PerKindLimits()
	require.NoError(t, err)
	assert.Equal(t, network.KindLimit{MaxContainers: 100, MaxRequests: 50}, l.For("other"))
	assert.Equal(t, network.KindLimit{MaxContainers: 10, MaxRequests: 5}, l.For("echo"))
	assert.Equal(t, network.KindLimit{MaxRequests: 7}, l.For("kv"))

	for _, bad := range []string{"echo", "echo=1/x", "echo=1,echo=2"} {
		cfg, _, err := loadConfig([]string{"--kind-limits", bad}, func(string) string { return "" }, io.Discard)
		require.NoError(t, err)
		assert.ErrorContains(t, cfg.Validate(), "kind_limits", bad)
	}
}
