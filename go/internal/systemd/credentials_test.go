package systemd

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func credEnv(dir string) func(string) string {
	return func(k string) string {
		if k == "CREDENTIALS_DIRECTORY" {
			return dir
		}
		return ""
	}
}

func TestCredentialPath(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "curve.key"), []byte("k\n"), 0o400))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "sub"), 0o700))
	env := credEnv(dir)

	p, err := CredentialPath("credential:curve.key", "", env)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "curve.key"), p)

	p, err = CredentialPath("/etc/huly-net/network.key", CredentialCurveKey, env)
	require.NoError(t, err)
	assert.Equal(t, "/etc/huly-net/network.key", p, "a path is a path, even with a credential present")

	p, err = CredentialPath("", CredentialCurveKey, env)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "curve.key"), p, "an empty setting uses the conventional credential")

	p, err = CredentialPath("", "other.key", env)
	require.NoError(t, err)
	assert.Empty(t, p, "no such credential: no file")
	p, err = CredentialPath("", "", env)
	require.NoError(t, err)
	assert.Empty(t, p)
	p, err = CredentialPath("", CredentialCurveKey, credEnv(""))
	require.NoError(t, err)
	assert.Empty(t, p, "outside systemd an empty setting stays empty")

	_, err = CredentialPath("credential:missing.key", "", env)
	assert.ErrorContains(t, err, "credential:missing.key: no such credential in $CREDENTIALS_DIRECTORY (check the unit's LoadCredential=missing.key:...)")
	_, err = CredentialPath("credential:curve.key", "", credEnv(""))
	assert.ErrorIs(t, err, ErrNoCredentials)
	_, err = CredentialPath("credential:sub", "", env)
	assert.ErrorContains(t, err, "not a regular file")
	for _, bad := range []string{"credential:", "credential:../x", "credential:a/b", "credential:.."} {
		_, err = CredentialPath(bad, "", env)
		assert.Error(t, err, bad)
	}
}
