package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/auth"
	"github.com/huly-net/huly-net/go/client/clienttest"
	"github.com/huly-net/huly-net/go/curve"
	"github.com/huly-net/huly-net/go/server"
)

// TestSecuredNetwork: hulyctl reads its key from a flag, an environment
// variable or a systemd credential, and a refused key is a clear error.
func TestSecuredNetwork(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	creds := t.TempDir()
	srv, err := curve.GenerateKeyPair()
	require.NoError(t, err)
	require.NoError(t, curve.WriteKeyPair(filepath.Join(dir, "network"), srv))
	ops, err := curve.GenerateKeyPair()
	require.NoError(t, err)
	require.NoError(t, curve.WriteKeyPair(filepath.Join(dir, "ops"), ops))
	require.NoError(t, curve.WriteKeyPair(filepath.Join(creds, "ops"), ops))
	require.NoError(t, os.Rename(filepath.Join(creds, "ops.key"), filepath.Join(creds, "curve.key")))
	stranger, err := curve.GenerateKeyPair()
	require.NoError(t, err)
	require.NoError(t, curve.WriteKeyPair(filepath.Join(dir, "stranger"), stranger))
	keys := filepath.Join(dir, "authorized_keys")
	require.NoError(t, os.WriteFile(keys, []byte("admin "+ops.Public.String()+" # ops\n"), 0o600))

	sec, err := auth.LoadServer(filepath.Join(dir, "network.key"), keys, nil, 10, func(string) string { return "" })
	require.NoError(t, err)
	s := server.New(server.Options{PingInterval: clienttest.PingInterval, AliveTimeout: clienttest.AliveTimeout, Logger: clienttest.Quiet(), Security: &server.Security{Auth: sec}})
	require.NoError(t, s.Listen("tcp://127.0.0.1:0"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, time.Second) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	addr := s.Addr().String()

	r := ctl(t, "--network", addr, "--curve-server-key", srv.Public.String(), "--curve-secret-key-file", filepath.Join(dir, "ops.key"), "agents")
	assert.Equal(t, 0, r.code, r.stderr)
	r = ctlWith(t, []string{"HULY_CURVE_SERVER_KEY=" + srv.Public.String(), "CREDENTIALS_DIRECTORY=" + creds}, "", "--network", addr, "kinds")
	assert.Equal(t, 0, r.code, r.stderr)

	r = ctl(t, "--network", addr, "--curve-server-key", srv.Public.String(), "--curve-secret-key-file", filepath.Join(dir, "stranger.key"), "agents")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "network refused our key: ")
	assert.Contains(t, r.stderr, "not in the authorized keys")
	r = ctl(t, "--network", addr, "agents")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "network refused us: ")
	r = ctl(t, "--network", addr, "--curve-server-key", srv.Public.String(), "agents")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "curve_secret_key_file")
}
