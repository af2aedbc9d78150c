package transcript

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.jsonl")
	require.NoError(t, os.WriteFile(p, []byte(
		`{"t":1.5,"proc":"network","sock":"router bind tcp://127.0.0.1:3737","sid":0,"dir":"in","frames":[{"hex":"006b8b4567"},{"utf8":"5"},{"utf8":""},{"utf8":""}]}`+"\n\n"+
			`{"t":0.5,"proc":"client","sock":"dealer connect tcp://127.0.0.1:3737","sid":1,"dir":"out","frames":[{"utf8":"5"},{"utf8":""},{"utf8":""},{"utf8":""}],"redacted":true}`+"\n"), 0o600))
	lines, err := Load(p)
	require.NoError(t, err)
	require.Len(t, lines, 2)
	assert.True(t, lines[0].Router())
	assert.Equal(t, []byte{0, 0x6b, 0x8b, 0x45, 0x67}, lines[0].Frames[0])
	assert.Len(t, lines[0].Body(), 3)
	assert.Equal(t, "tcp://127.0.0.1:3737", lines[0].Endpoint())
	assert.Equal(t, 3, lines[1].Num)
	assert.True(t, lines[1].Redacted)
	assert.Len(t, lines[1].Body(), 4)
	assert.Equal(t, "client/1 dealer connect tcp://127.0.0.1:3737", lines[1].Session())

	sorted := SortByTime(lines)
	assert.Equal(t, "client", sorted[0].Proc)
	names, by := Sessions(lines)
	assert.Len(t, names, 2)
	assert.Len(t, by[names[0]], 1)
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"badjson": `{"t":`,
		"baddir":  `{"dir":"sideways","frames":[]}`,
		"badhex":  `{"dir":"in","frames":[{"hex":"zz"}]}`,
		"nofield": `{"dir":"in","frames":[{}]}`,
	} {
		p := filepath.Join(dir, name+".jsonl")
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		_, err := Load(p)
		assert.Error(t, err, name)
	}
	_, err := Load(filepath.Join(dir, "missing.jsonl"))
	assert.Error(t, err)
	_, err = LoadDir(t.TempDir())
	assert.Error(t, err, "an empty directory is an error")
}

func TestLoadDirRealTranscripts(t *testing.T) {
	files, err := LoadDir("../../backrpc/testdata/transcripts")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	assert.Equal(t, "01-hello-ping", files[0].Name)
	for _, f := range files {
		assert.NotEmpty(t, f.Lines, f.Name)
	}
}
