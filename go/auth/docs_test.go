package auth

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The example in docs/security.md is a valid file and means what the text
// around it says.
func TestDocumentedExampleParses(t *testing.T) {
	doc, err := os.ReadFile("../../docs/security.md")
	if errors.Is(err, fs.ErrNotExist) {
		t.Skip("docs/security.md is not beside the Go module (a Go-only source tree)")
	}
	require.NoError(t, err)
	_, after, ok := strings.Cut(string(doc), "## The authorized-keys file")
	require.True(t, ok)
	_, block, ok := strings.Cut(after, "```\n")
	require.True(t, ok)
	block, _, ok = strings.Cut(block, "```")
	require.True(t, ok)

	p, err := Parse(strings.NewReader(block), "docs/security.md")
	require.NoError(t, err)
	assert.Equal(t, 4, p.Len())
	assert.Equal(t, "alice-laptop", p.Name(mustKey(t, keyB)))
	assert.NoError(t, p.Allow(mustKey(t, keyB), ActionRequest, "db"))
	assert.ErrorIs(t, p.Allow(mustKey(t, keyA), ActionRegister, "db"), ErrDenied)
	assert.NoError(t, p.Allow(NullKey, ActionRegister, "legacy-ts"))
	assert.ErrorIs(t, p.Allow(NullKey, ActionRegister, "echo"), ErrDenied)
	assert.True(t, p.HasAdmin())
}
