package bridge

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/internal/daemon"
	"github.com/huly-net/huly-net/go/internal/testutil"
)

type loaded struct {
	*Config
	Forwards []Forward
}

func parse(t *testing.T, args []string, env map[string]string) (loaded, error) {
	t.Helper()
	cmd := daemon.Command[*Config]{Name: "huly-bridge", Defaults: DefaultConfig}
	cfg, _, err := cmd.Load(args, func(k string) string { return env[k] }, io.Discard)
	return loaded{Config: cfg, Forwards: cfg.ForwardList()}, err
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "json")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

// The documented example, which the NixOS module and packaged units write.
const exampleConfig = `{"forwards":{"NAME":{"listen":"tcp:127.0.0.1:8080","target":"tcp:127.0.0.1:9000","max_connections":1024,"idle_timeout":"5m","dial_timeout":"5s","dial_retries":5}},"metrics_listen":"","drain_timeout":"10s","log_level":"info","log_format":"auto"}`

func TestExampleConfig(t *testing.T) {
	s, err := parse(t, []string{"--config", writeConfig(t, exampleConfig)}, nil)
	require.NoError(t, err)
	require.Len(t, s.Forwards, 1)
	assert.Equal(t, Forward{
		Name: "NAME", Listen: "tcp:127.0.0.1:8080", Target: "tcp:127.0.0.1:9000",
		MaxConnections: 1024, IdleTimeout: 5 * time.Minute, DialTimeout: 5 * time.Second,
		DialRetries: 5, DialBackoff: DefaultDialBackoff,
	}, s.Forwards[0])
	assert.Equal(t, 10*time.Second, s.DrainTimeout.D())
	assert.Equal(t, "info", s.LogLevel)
	assert.Equal(t, "auto", s.LogFormat)
	assert.Empty(t, s.MetricsListen)
}

func TestDefaultsFromFlagsOnly(t *testing.T) {
	s, err := parse(t, []string{"--forward", "a=tcp:127.0.0.1:1,tcp:127.0.0.1:2", "--forward", "b=,unix:/run/x.sock"}, nil)
	require.NoError(t, err)
	require.Len(t, s.Forwards, 2)
	assert.Equal(t, Forward{Name: "a", Listen: "tcp:127.0.0.1:1", Target: "tcp:127.0.0.1:2",
		MaxConnections: 4096, DialTimeout: 5 * time.Second, DialRetries: 5, DialBackoff: 100 * time.Millisecond}, s.Forwards[0])
	assert.Equal(t, "", s.Forwards[1].Listen, "socket-activated")
	assert.Equal(t, DefaultDrainTimeout, s.DrainTimeout.D())
}

func TestPrecedence(t *testing.T) {
	file := writeConfig(t, `{
		"forwards": {
			"web": {"listen": "tcp:127.0.0.1:1", "target": "tcp:127.0.0.1:2", "idle_timeout": "1m"},
			"db":  {"listen": "tcp:127.0.0.1:3", "target": "tcp:127.0.0.1:4"}
		},
		"idle_timeout": "2m", "dial_retries": 7, "max_connections": 10,
		"metrics_listen": "127.0.0.1:9100", "log_level": "warn", "drain_timeout": "3s"
	}`)
	s, err := parse(t, []string{"--config", file, "--dial-retries", "8", "--log-level", "debug", "--drain-timeout", "4s",
		"--forward", "db=tcp:127.0.0.1:5,tcp:127.0.0.1:6"},
		map[string]string{"HULY_LOG_LEVEL": "error", "HULY_MAX_CONNECTIONS": "20", "HULY_METRICS_LISTEN": "tcp:127.0.0.1:9200"})
	require.NoError(t, err)
	require.Len(t, s.Forwards, 2)
	web, db := s.Forwards[0], s.Forwards[1]
	assert.Equal(t, "web", web.Name, "file order kept")
	assert.Equal(t, time.Minute, web.IdleTimeout, "per-forward value wins over the global default")
	assert.Equal(t, 2*time.Minute, db.IdleTimeout, "global default from the file")
	assert.Equal(t, 8, web.DialRetries, "flag over file")
	assert.Equal(t, 20, db.MaxConnections, "environment over file")
	assert.Equal(t, "tcp:127.0.0.1:5", db.Listen, "--forward replaces the file's forward of the same name")
	assert.Equal(t, "error", s.LogLevel, "environment over flag")
	assert.Equal(t, 4*time.Second, s.DrainTimeout.D(), "flag over file")
	assert.Equal(t, "tcp:127.0.0.1:9200", s.MetricsListen)

	s, err = parse(t, nil, map[string]string{"HULY_CONFIG": file, "HULY_FORWARDS": "x=tcp:127.0.0.1:7,tcp:127.0.0.1:8; web=,tcp:127.0.0.1:9"})
	require.NoError(t, err)
	require.Len(t, s.Forwards, 3)
	assert.Equal(t, "", s.Forwards[0].Listen, "HULY_FORWARDS replaces web")
	assert.Equal(t, "x", s.Forwards[2].Name)
}

func TestBadConfigurationNamesTheProblem(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		file string
		want []string
	}{
		{name: "unknown key", file: `{"forwards":{"a":{"listen":"tcp:127.0.0.1:1","target":"tcp:127.0.0.1:2","idle":"1s"}}}`, want: []string{"forwards.a.idle", "unknown key"}},
		{name: "unknown top key", file: `{"forward":{}}`, want: []string{"forward: unknown key"}},
		{name: "bad duration", file: `{"forwards":{"a":{"listen":"tcp:127.0.0.1:1","target":"tcp:127.0.0.1:2","idle_timeout":"5 minutes"}}}`, want: []string{"forwards.a.idle_timeout", `"5 minutes"`}},
		{name: "number as duration", file: `{"drain_timeout":10,"forwards":{}}`, want: []string{"drain_timeout", "duration string"}},
		{name: "string as int", file: `{"forwards":{"a":{"dial_retries":"5"}}}`, want: []string{"forwards.a.dial_retries", "integer"}},
		{name: "bad target", file: `{"forwards":{"a":{"listen":"tcp:127.0.0.1:1","target":"127.0.0.1:2"}}}`, want: []string{`forward "a": target`}},
		{name: "missing target", file: `{"forwards":{"a":{"listen":"tcp:127.0.0.1:1"}}}`, want: []string{`forward "a": target is required`}},
		{name: "invalid json", file: `{"forwards":`, want: []string{"invalid JSON"}},
		{name: "not an object", file: `[1]`, want: []string{"want a JSON object"}},
		{name: "trailing data", file: `{} {}`, want: []string{"data after the object"}},
		{name: "duplicate key", file: `{"log_level":"info","log_level":"debug"}`, want: []string{"log_level: key given twice"}},
		{name: "bad log level", file: `{"log_level":"loud","forwards":{"a":{"listen":"tcp:127.0.0.1:1","target":"tcp:127.0.0.1:2"}}}`, want: []string{"log_level", `"loud"`}},
		{name: "bad log format flag", args: []string{"--log-format", "xml", "--forward", "a=tcp:127.0.0.1:1,tcp:127.0.0.1:2"}, want: []string{"log_format", `"xml"`}},
		{name: "bad metrics", args: []string{"--metrics-listen", "unix:/x", "--forward", "a=tcp:127.0.0.1:1,tcp:127.0.0.1:2"}, want: []string{"metrics_listen"}},
		{name: "negative drain", args: []string{"--drain-timeout", "-1s", "--forward", "a=tcp:127.0.0.1:1,tcp:127.0.0.1:2"}, want: []string{"drain_timeout -1s"}},
		{name: "bad forward flag", args: []string{"--forward", "a=tcp:127.0.0.1:1"}, want: []string{`invalid value "a=tcp:127.0.0.1:1" for flag -forward`}},
		{name: "unknown flag", args: []string{"--listen", "x"}, want: []string{"flag provided but not defined: -listen"}},
		{name: "positional", args: []string{"a=b,c"}, want: []string{`unexpected argument "a=b,c"`}},
		{name: "no forwards", args: nil, want: []string{"no forwards"}},
		{name: "bad env int", args: []string{"--forward", "a=tcp:127.0.0.1:1,tcp:127.0.0.1:2"}, env: map[string]string{"HULY_DIAL_RETRIES": "many"}, want: []string{"HULY_DIAL_RETRIES"}},
		{name: "bad env duration", args: []string{"--forward", "a=tcp:127.0.0.1:1,tcp:127.0.0.1:2"}, env: map[string]string{"HULY_IDLE_TIMEOUT": "soon"}, want: []string{"HULY_IDLE_TIMEOUT"}},
		{name: "bad env forwards", env: map[string]string{"HULY_FORWARDS": "nonsense"}, want: []string{`HULY_FORWARDS: entry "nonsense"`}},
		{name: "missing file", args: []string{"--config", "/nonexistent/json"}, want: []string{"--config", "no such file"}},
		{name: "negative retries", args: []string{"--dial-retries", "-2", "--forward", "a=tcp:127.0.0.1:1,tcp:127.0.0.1:2"}, want: []string{"dial_retries -2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.file != "" {
				args = append([]string{"--config", writeConfig(t, tc.file)}, args...)
			}
			_, err := parse(t, args, tc.env)
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestAssignListeners(t *testing.T) {
	a, b := testutil.ListenTCP(t), testutil.ListenTCP(t)
	fws := []Forward{{Name: "web", Target: "tcp:127.0.0.1:1"}, {Name: "db", Listen: "tcp:127.0.0.1:0", Target: "tcp:127.0.0.1:2"}}

	got, err := AssignListeners(fws, map[string][]net.Listener{"web": {a, b}})
	require.NoError(t, err)
	assert.Equal(t, map[string][]net.Listener{"web": {a, b}}, got, "all sockets of one name serve that forward")

	got, err = AssignListeners(fws, map[string][]net.Listener{"LISTEN_FD_3": {a}})
	require.NoError(t, err)
	assert.Equal(t, map[string][]net.Listener{"web": {a}}, got, "one unnamed socket for the one forward without listen")

	_, err = AssignListeners(fws, map[string][]net.Listener{"other": {a}})
	assert.ErrorContains(t, err, "other match no forward")

	_, err = AssignListeners(fws, nil)
	assert.ErrorContains(t, err, "web: listen is required")

	_, err = AssignListeners(fws, map[string][]net.Listener{"LISTEN_FD_3": {a}, "LISTEN_FD_4": {b}})
	assert.ErrorContains(t, err, "2 unnamed")
}
