package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/curve"
)

// runCtl runs hulyctl in process (keygen needs no network).
func runCtl(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(context.Background(), args, &o, &e, func(string) string { return "" })
	return code, o.String(), e.String()
}

func TestKeygenWritesAPair(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "alice")
	code, out, errOut := runCtl("keygen", "--out", prefix)
	require.Equal(t, 0, code, errOut)

	pub, err := curve.ParseKey(strings.TrimSpace(out))
	require.NoError(t, err, "prints the public key")
	kp, err := curve.LoadSecretKeyFile(prefix + ".key")
	require.NoError(t, err)
	assert.Equal(t, pub, kp.Public, "the secret key file derives the printed public key")
	filePub, err := curve.ReadKeyFile(prefix + ".pub")
	require.NoError(t, err)
	assert.Equal(t, pub, filePub)

	st, err := os.Stat(prefix + ".key")
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	secretBefore, err := os.ReadFile(prefix + ".key")
	require.NoError(t, err)
	code, out, errOut = runCtl("keygen", "--out", prefix)
	assert.Equal(t, 1, code)
	assert.Empty(t, out)
	assert.Contains(t, errOut, prefix+".key exists; keygen never overwrites a key")
	secretAfter, err := os.ReadFile(prefix + ".key")
	require.NoError(t, err)
	assert.Equal(t, secretBefore, secretAfter)
}

func TestKeygenRefusesAnExistingPublicFile(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "bob")
	require.NoError(t, os.WriteFile(prefix+".pub", []byte("mine\n"), 0o644))
	code, _, errOut := runCtl("keygen", "--out", prefix)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, prefix+".pub exists")
	assert.NoFileExists(t, prefix+".key")
}

func TestKeygenJSONAndUsage(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "carol")
	code, out, errOut := runCtl("keygen", "--json", "--out", prefix)
	require.Equal(t, 0, code, errOut)
	var got map[string]string
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	assert.Equal(t, prefix+".key", got["secret_key_file"])
	_, err := curve.ParseKey(got["public_key"])
	assert.NoError(t, err)

	code, _, errOut = runCtl("keygen")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "keygen needs --out PREFIX")

	code, _, errOut = runCtl("keygen", "--out", filepath.Join(t.TempDir(), "missing-dir", "k"))
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "write secret key")
}
