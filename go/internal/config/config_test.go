package config

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type sample struct {
	Listen   string            `json:"listen" usage:"address"`
	Timeout  Duration          `json:"alive_timeout" usage:"timeout"`
	MaxFrame int64             `json:"max_frame_size" usage:"bytes"`
	Verbose  bool              `json:"verbose" usage:"chatty"`
	Labels   []string          `json:"labels" usage:"labels"`
	Kinds    map[string]string `json:"kinds" flag:"-"`
}

func defaults() *sample {
	return &sample{Listen: "tcp://*:3737", Timeout: Duration(3 * time.Second), MaxFrame: 64}
}

func load(t *testing.T, args []string, env map[string]string) (*sample, error) {
	t.Helper()
	cfg := defaults()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	err := New(fs, cfg).Load(args, func(k string) string { return env[k] })
	return cfg, err
}

func writeFile(t *testing.T, body string) string {
	p := filepath.Join(t.TempDir(), "c.json")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

func TestDefaults(t *testing.T) {
	cfg, err := load(t, nil, nil)
	require.NoError(t, err)
	assert.Equal(t, defaults(), cfg)
}

func TestPrecedenceFileFlagsEnv(t *testing.T) {
	file := writeFile(t, `{"listen":"tcp://127.0.0.1:1","alive_timeout":"7s","max_frame_size":10,"labels":["a"],"kinds":{"x":"y"}}`)
	_, err := load(t, []string{"--config", file, "--alive-timeout", "9s", "--label-free-check=false"}, nil)
	require.Error(t, err, "unknown flags are errors")

	cfg, err := load(t, []string{"--config", file, "--alive-timeout", "9s", "--labels", "b", "--labels", "c", "--verbose"}, map[string]string{"HULY_MAX_FRAME_SIZE": "20"})
	require.NoError(t, err)
	assert.Equal(t, "tcp://127.0.0.1:1", cfg.Listen, "from the file")
	assert.Equal(t, 9*time.Second, cfg.Timeout.D(), "flag over file")
	assert.Equal(t, int64(20), cfg.MaxFrame, "environment over file")
	assert.Equal(t, []string{"b", "c"}, cfg.Labels, "repeated flag")
	assert.True(t, cfg.Verbose)
	assert.Equal(t, map[string]string{"x": "y"}, cfg.Kinds)

	cfg, err = load(t, []string{"--listen", "tcp://127.0.0.1:2"}, map[string]string{"HULY_LISTEN": "tcp://127.0.0.1:3", "HULY_LABELS": "x, y"})
	require.NoError(t, err)
	assert.Equal(t, "tcp://127.0.0.1:3", cfg.Listen, "environment over flags")
	assert.Equal(t, []string{"x", "y"}, cfg.Labels)
}

func TestErrorsNameTheProblem(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"unknown key":  {args: []string{"--config", writeFile(t, `{"listen":"x","bogus":1}`)}, want: `unknown key "bogus"`},
		"wrong type":   {args: []string{"--config", writeFile(t, `{"max_frame_size":"big"}`)}, want: `max_frame_size`},
		"bad duration": {args: []string{"--config", writeFile(t, `{"alive_timeout":"soon"}`)}, want: `alive_timeout`},
		"syntax":       {args: []string{"--config", writeFile(t, "{\n\"listen\": ,}")}, want: "line 2"},
		"missing file": {args: []string{"--config", "/nonexistent/huly.json"}, want: "/nonexistent/huly.json"},
		"bad flag":     {args: []string{"--max-frame-size", "lots"}, want: "max-frame-size"},
		"bad env":      {env: map[string]string{"HULY_ALIVE_TIMEOUT": "never"}, want: "HULY_ALIVE_TIMEOUT"},
		"stray arg":    {args: []string{"extra"}, want: `unexpected argument "extra"`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := load(t, tc.args, tc.env)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}
