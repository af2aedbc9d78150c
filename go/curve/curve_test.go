package curve

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The test vector of ZeroMQ RFC 32.
func TestZ85RFCVector(t *testing.T) {
	raw := []byte{0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B}
	s, err := Z85Encode(raw)
	require.NoError(t, err)
	assert.Equal(t, "HelloWorld", s)
	b, err := Z85Decode("HelloWorld")
	require.NoError(t, err)
	assert.Equal(t, raw, b)
}

// The key pair from libzmq's test suite (tests/testutil_security.cpp):
// the public key must follow from the secret one.
func TestPublicFromSecretMatchesLibzmq(t *testing.T) {
	sec, err := ParseKey("D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs")
	require.NoError(t, err)
	pub, err := PublicFromSecret(sec)
	require.NoError(t, err)
	assert.Equal(t, "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID", pub.String())
}

func TestParseKeyErrors(t *testing.T) {
	_, err := ParseKey("short")
	assert.ErrorContains(t, err, "40 Z85 characters")
	_, err = ParseKey("Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hI\"")
	assert.ErrorIs(t, err, ErrZ85)
	_, err = Z85Decode("#####")
	assert.ErrorContains(t, err, "overflows")
}

func TestKeyFiles(t *testing.T) {
	kp, err := GenerateKeyPair()
	require.NoError(t, err)
	prefix := filepath.Join(t.TempDir(), "node")
	require.NoError(t, WriteKeyPair(prefix, kp))
	st, err := os.Stat(prefix + ".key")
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	got, err := LoadSecretKeyFile(prefix + ".key")
	require.NoError(t, err)
	assert.Equal(t, kp, got)
	pub, err := ReadKeyFile(prefix + ".pub")
	require.NoError(t, err)
	assert.Equal(t, kp.Public, pub)
	assert.Error(t, WriteKeyPair(prefix, kp), "an existing secret key is never overwritten")
	require.NoError(t, os.WriteFile(prefix+".empty", []byte("# nothing\n"), 0o600))
	_, err = ReadKeyFile(prefix + ".empty")
	assert.ErrorIs(t, err, ErrNoKey)
}

func FuzzZ85(f *testing.F) {
	f.Add([]byte("0123"), "HelloWorld")
	f.Fuzz(func(t *testing.T, raw []byte, text string) {
		raw = raw[:len(raw)/4*4]
		s, err := Z85Encode(raw)
		require.NoError(t, err)
		back, err := Z85Decode(s)
		require.NoError(t, err)
		assert.Equal(t, hex.EncodeToString(raw), hex.EncodeToString(back))
		if b, err := Z85Decode(text); err == nil {
			s2, err := Z85Encode(b)
			require.NoError(t, err)
			assert.Equal(t, text, s2)
		}
	})
}
