package agentd

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/agent/runtime"
	"github.com/huly-net/huly-net/go/internal/daemon"
)

const waitFor = 20 * time.Second

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "agent.json")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

func noEnv(string) string { return "" }

var command = daemon.Command[*Config]{Name: "huly-agent", Defaults: DefaultConfig}

// run is the command line up to constructing the daemon: configuration
// problems exit 2.
func run(args []string, getenv func(string) string, stderr io.Writer) int {
	return command.Main(args, getenv, io.Discard, stderr)
}

func load(args []string, getenv func(string) string, stderr io.Writer) (*Config, bool, error) {
	cfg, _, err := command.Load(args, getenv, stderr)
	return cfg, false, err
}

func TestBadConfigurationExits2NamingTheKey(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.json")
	unreadable := writeConfig(t, `{}`)
	require.NoError(t, os.Chmod(unreadable, 0))
	if f, err := os.Open(unreadable); err == nil { // root reads anything
		_ = f.Close()
		unreadable = missing
	}
	for _, tc := range []struct {
		name string
		body string // config file, "" for none
		args []string
		want string
	}{
		{"unknown runtime", `{"kinds":{"web":{"runtime":"docker","command":"/bin/true"}}}`, nil, `kinds.web.runtime: unknown runtime "docker"`},
		{"missing runtime", `{"kinds":{"web":{"command":"/bin/true"}}}`, nil, `kinds.web.runtime: required`},
		{"missing command", `{"kinds":{"web":{"runtime":"process"}}}`, nil, `kinds.web.command: required for runtime process`},
		{"command not found", `{"kinds":{"web":{"runtime":"process","command":"no-such-program-here"}}}`, nil, `kinds.web.command: "no-such-program-here" is not an absolute path and was not found in PATH`},
		{"unknown builtin", `{"kinds":{"e":{"runtime":"builtin","builtin":"nope"}}}`, nil, `kinds.e.builtin: unknown builtin "nope"`},
		{"duplicate pinned uuid", `{"kinds":{"a":{"runtime":"builtin","builtin":"echo","pinned":[{"uuid":"p1"}]},"b":{"runtime":"builtin","builtin":"kv","pinned":[{"uuid":"p1"}]}}}`, nil, `kinds.b.pinned[0].uuid: duplicate pinned uuid "p1" (also kinds.a.pinned[0].uuid)`},
		{"empty pinned uuid", `{"kinds":{"a":{"runtime":"builtin","builtin":"echo","pinned":[{"labels":["x"]}]}}}`, nil, `kinds.a.pinned[0].uuid: required`},
		{"unknown top-level key", `{"netwrok":"x:1"}`, nil, `unknown key "netwrok"`},
		{"unknown kind key", `{"kinds":{"web":{"runtime":"builtin","builtin":"echo","comand":"x"}}}`, nil, `kinds.web.comand: unknown key`},
		{"mistyped kind key", `{"kinds":{"web":{"runtime":"builtin","builtin":"echo","max_instances":"ten"}}}`, nil, `kinds.web.max_instances: want an integer`},
		{"bad duration", `{"kinds":{"web":{"runtime":"builtin","builtin":"echo","restart_backoff":"soon"}}}`, nil, `web.restart_backoff`},
		{"bad restart", `{"kinds":{"web":{"runtime":"builtin","builtin":"echo","restart":"always"}}}`, nil, `kinds.web.restart: want "never" or "on-failure"`},
		{"unit property unknown", `{"kinds":{"t":{"runtime":"transient","command":"/bin/true","unit_properties":{"Frobnicate":"yes"}}}}`, nil, `kinds.t.unit_properties.Frobnicate: unit property Frobnicate is not supported`},
		{"unit property bad value", `{"kinds":{"t":{"runtime":"transient","command":"/bin/true","unit_properties":{"MemoryMax":"lots"}}}}`, nil, `kinds.t.unit_properties.MemoryMax: MemoryMax: want bytes`},
		{"nspawn without port", `{"kinds":{"n":{"runtime":"nspawn","command":"/bin/x","nspawn":{"directory":"/var/lib/machines/x"}}}}`, nil, `kinds.n.nspawn.port`},
		{"nspawn both trees", `{"kinds":{"n":{"runtime":"nspawn","command":"/bin/x","nspawn":{"directory":"/a","image":"/b.raw","port":80}}}}`, nil, `kinds.n.nspawn: give exactly one of directory and image`},
		{"bad listen", ``, []string{"--listen", "nowhere"}, `listen: want HOST:PORT`},
		{"bad log level", ``, []string{"--log-level", "loud"}, `log_level: invalid log level "loud"`},
		{"unknown flag", ``, []string{"--frobnicate"}, `flag provided but not defined: -frobnicate`},
		{"missing file", ``, []string{"--config", missing}, `--config ` + missing},
		{"unreadable file", ``, []string{"--config", unreadable}, `--config ` + unreadable},
		{"not JSON", `{"kinds": `, nil, `--config`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.body != "" {
				args = append([]string{"--config", writeConfig(t, tc.body)}, args...)
			}
			var stderr bytes.Buffer
			code := run(args, noEnv, &stderr)
			assert.Equal(t, 2, code, "stderr: %s", stderr.String())
			assert.Contains(t, stderr.String(), tc.want)
		})
	}
}

func TestConfigPrecedence(t *testing.T) {
	p := writeConfig(t, `{"network":"10.0.0.1:1","listen":"127.0.0.1:4000","labels":["file"]}`)
	env := map[string]string{"HULY_NETWORK": "127.0.0.2:3737"}
	cfg, _, err := load([]string{"--config", p, "--network", "127.0.0.3:3737", "--listen", "127.0.0.1:5000", "--label", "a", "--label", "b"},
		func(k string) string { return env[k] }, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.2:3737", cfg.Network, "the environment wins")
	assert.Equal(t, "127.0.0.1:5000", cfg.Listen, "a flag beats the file")
	assert.Equal(t, []string{"a", "b"}, cfg.Labels, "--label is repeatable and beats the file")

	cfg, _, err = load(nil, noEnv, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:3737", cfg.Network)
	assert.Equal(t, "0.0.0.0:3738", cfg.Listen)
}

func TestExampleConfigIsValid(t *testing.T) {
	// The example names its program by name; PATH finds it when installed.
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "echo-container"), []byte("#!/bin/sh\n"), 0o755))
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	cfg, _, err := load([]string{"--config", "../../../examples/agent.json"}, noEnv, &bytes.Buffer{})
	require.NoError(t, err)
	echo := cfg.Kinds.Get("echo-process")
	require.NotNil(t, echo)
	assert.Equal(t, filepath.Join(dir, "echo-container"), echo.Command, "resolved to an absolute path")
	assert.Equal(t, "example-pinned-echo", echo.Pinned[0].UUID)
}

func TestAgentIDPersistedInStateDirectory(t *testing.T) {
	dir := t.TempDir()
	env := func(k string) string {
		if k == "STATE_DIRECTORY" {
			return dir + ":/elsewhere"
		}
		return ""
	}
	id1, path, err := agentID(&Config{}, env)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "agent-id"), path)
	id2, _, err := agentID(&Config{}, env)
	require.NoError(t, err)
	assert.Equal(t, id1, id2, "a restart keeps the id")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, id1+"\n", string(b))

	id3, path3, err := agentID(&Config{AgentID: "given"}, env)
	require.NoError(t, err)
	assert.Equal(t, "given", id3)
	assert.Empty(t, path3, "a configured id is not stored")
}

func TestCountsLine(t *testing.T) {
	assert.Equal(t, "0 running, 0 starting, 0 crashed", countsLine(nil))
	assert.Equal(t, "3 running, 1 starting, 0 crashed, 2 stopping", countsLine(map[runtime.State]int{runtime.Running: 3, runtime.Starting: 1, runtime.Stopping: 2}))
}
