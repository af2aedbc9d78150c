package auth

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/curve"
)

func noEnv(string) string { return "" }

func TestLoadServer(t *testing.T) {
	dir := t.TempDir()
	kp, err := curve.GenerateKeyPair()
	require.NoError(t, err)
	require.NoError(t, curve.WriteKeyPair(filepath.Join(dir, "network"), kp))
	keys := filepath.Join(dir, "authorized_keys")
	require.NoError(t, os.WriteFile(keys, []byte(policyText), 0o644))

	s, err := LoadServer("", "", nil, 0, noEnv)
	require.NoError(t, err)
	assert.Nil(t, s, "no secret key: security off")

	_, err = LoadServer("", keys, []string{"127.0.0.1/32"}, 0, noEnv)
	assert.ErrorContains(t, err, "authorized_keys and allow_null_from given without curve_secret_key_file")

	_, err = LoadServer(filepath.Join(dir, "network.key"), "", nil, 0, noEnv)
	assert.ErrorContains(t, err, "needs authorized_keys")

	s, err = LoadServer(filepath.Join(dir, "network.key"), keys, []string{"127.0.0.1/32"}, 10, noEnv)
	require.NoError(t, err)
	require.NotNil(t, s)
	assert.Equal(t, kp, s.KeyPair)
	assert.NoError(t, s.Keys.Allow(mustKey(t, keyC), ActionOperate, ""))
	assert.Equal(t, "127.0.0.1/32", s.Null.String())
	assert.NotNil(t, s.Bindings)
	assert.Empty(t, s.Warnings)

	// From systemd credentials, with warnings for a loose key and no admin.
	creds := t.TempDir()
	require.NoError(t, curve.WriteKeyPair(filepath.Join(creds, "curve"), kp))
	require.NoError(t, os.Chmod(filepath.Join(creds, "curve.key"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(creds, "keys"), []byte("client "+keyB+" kinds=echo\n"), 0o644))
	env := func(k string) string {
		if k == "CREDENTIALS_DIRECTORY" {
			return creds
		}
		return ""
	}
	s, err = LoadServer("", "credential:keys", []string{"0.0.0.0/0"}, 0, env)
	require.NoError(t, err)
	require.NotNil(t, s, "the credential curve.key turns security on")
	assert.Equal(t, kp.Public, s.KeyPair.Public)
	require.Len(t, s.Warnings, 3)
	assert.Contains(t, s.Warnings[0], "has mode 0644")
	assert.Contains(t, s.Warnings[1], "admits peers without a key from anywhere")
	assert.Contains(t, s.Warnings[2], "lists no admin key")

	_, err = LoadServer("credential:missing", keys, nil, 0, env)
	assert.ErrorContains(t, err, "curve_secret_key_file: credential:missing: no such credential")
	_, err = LoadServer(filepath.Join(dir, "network.key"), keys, []string{"nonsense"}, 0, noEnv)
	assert.ErrorContains(t, err, `allow-null-from "nonsense"`)
	require.NoError(t, os.WriteFile(keys, []byte("admin x\n"), 0o644))
	_, err = LoadServer(filepath.Join(dir, "network.key"), keys, nil, 0, noEnv)
	assert.ErrorContains(t, err, keys+":1: bad key")
}

func TestLoadClient(t *testing.T) {
	dir := t.TempDir()
	kp, err := curve.GenerateKeyPair()
	require.NoError(t, err)
	require.NoError(t, curve.WriteKeyPair(filepath.Join(dir, "alice"), kp))
	key := filepath.Join(dir, "alice.key")

	c, err := LoadClient("", "", noEnv)
	require.NoError(t, err)
	assert.Nil(t, c)

	c, err = LoadClient(key, " "+keyC+"\n", noEnv)
	require.NoError(t, err)
	require.NotNil(t, c)
	assert.Equal(t, kp, c.KeyPair)
	assert.Equal(t, mustKey(t, keyC), c.ServerKey)
	assert.Empty(t, c.Warnings)

	_, err = LoadClient(key, "", noEnv)
	assert.ErrorContains(t, err, "needs the network's public key")
	_, err = LoadClient("", keyC, noEnv)
	assert.ErrorContains(t, err, "needs its own secret key too")
	_, err = LoadClient(key, "short", noEnv)
	assert.ErrorContains(t, err, "curve_server_key: curve key: want 40 Z85 characters")
	_, err = LoadClient(filepath.Join(dir, "nope.key"), keyC, noEnv)
	assert.ErrorContains(t, err, "curve_secret_key_file: read key file")
}
