package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/agent/runtime"
	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/client/clienttest"
	"github.com/huly-net/huly-net/go/internal/testutil"
	"github.com/huly-net/huly-net/go/network"
)

const waitFor = 20 * time.Second

var binDir string

// TestMain builds the daemon and the example container once for the
// tests that run them; under -short (the Nix check phase) those skip.
func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "huly-agent-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		if _, err := testutil.BuildBinary(".", dir, "huly-agent"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if _, err := testutil.BuildBinary("../../examples/echo-container", dir, "echo-container"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		binDir = dir
		return m.Run()
	}()
	os.Exit(code)
}

func needBinaries(t *testing.T) {
	t.Helper()
	if binDir == "" {
		t.Skip("runs the daemon binary: skipped under -short")
	}
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "agent.json")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

func noEnv(string) string { return "" }

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
		{"unknown kind key", `{"kinds":{"web":{"runtime":"builtin","builtin":"echo","comand":"x"}}}`, nil, `kinds: web.comand: unknown key`},
		{"mistyped kind key", `{"kinds":{"web":{"runtime":"builtin","builtin":"echo","max_instances":"ten"}}}`, nil, `web.max_instances: want int`},
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
	require.Contains(t, cfg.Kinds, "echo-process")
	assert.Equal(t, filepath.Join(dir, "echo-container"), cfg.Kinds["echo-process"].Command, "resolved to an absolute path")
	assert.Equal(t, "example-pinned-echo", cfg.Kinds["echo-process"].Pinned[0].UUID)
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

func TestBadConfigurationOfTheBinary(t *testing.T) {
	needBinaries(t)
	p := writeConfig(t, `{"kinds":{"a":{"runtime":"builtin","builtin":"echo","pinned":[{"uuid":"u"}]},"b":{"runtime":"process","pinned":[{"uuid":"u"}]}}}`)
	cmd := exec.Command(filepath.Join(binDir, "huly-agent"), "--config", p)
	out, err := cmd.CombinedOutput()
	assert.Equal(t, 2, testutil.ExitCode(err))
	assert.Contains(t, string(out), "kinds.b.command: required for runtime process")
	assert.Contains(t, string(out), `kinds.b.pinned[0].uuid: duplicate pinned uuid "u"`)
}

// TestDaemonServesProcessContainers runs huly-agent --config
// examples/agent.json next to an in-process network, as systemd would
// (fake NOTIFY_SOCKET), and reaches its process containers with a client.
func TestDaemonServesProcessContainers(t *testing.T) {
	needBinaries(t)
	srv := clienttest.StartServer(t)
	notifyPath, notes := testutil.NotifySocket(t)
	state := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitFor)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "huly-agent"),
		"--config", "../../../examples/agent.json", "--network", srv.Addr(), "--listen", "127.0.0.1:0", "--log-format", "text")
	cmd.Env = append(os.Environ(),
		"PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"),
		"NOTIFY_SOCKET="+notifyPath, "STATE_DIRECTORY="+state, "HULY_LOG_LEVEL=debug")
	var stderr testutil.SyncBuffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("huly-agent stderr:\n%s", stderr.String())
		}
	}()

	_, before := testutil.WaitFor(t, notes, "READY=1", waitFor)
	c := clienttest.Dial(t, srv.Addr())
	agents, err := c.Agents(ctx)
	require.NoError(t, err)
	require.Len(t, agents, 1, "READY=1 comes after the registration: the network lists the agent")
	idFile, err := os.ReadFile(filepath.Join(state, "agent-id"))
	require.NoError(t, err)
	assert.Equal(t, strings.TrimSpace(string(idFile)), string(agents[0].AgentID), "the id is kept in the state directory")
	assert.NotEmpty(t, before, "STATUS= before READY says what the agent waits for")

	line, _ := testutil.WaitFor(t, notes, "STATUS=registered", waitFor)
	assert.Regexp(t, `^STATUS=registered; \d+ running, \d+ starting, \d+ crashed`, line)

	ref, err := c.Get(ctx, "echo-process", client.GetOptions{Labels: []string{"process"}})
	require.NoError(t, err)
	res, err := ref.Request(ctx, "hello", map[string]string{"from": "test"})
	require.NoError(t, err)
	assert.Contains(t, string(res), `"operation":"hello"`)
	ep, err := ref.EndpointRef()
	require.NoError(t, err)
	assert.Equal(t, network.RefDirect, ep.Kind)
	conn, err := ref.Connect(ctx)
	require.NoError(t, err)
	direct, err := conn.Request(ctx, "info", nil)
	require.NoError(t, err)
	var info struct {
		PID    int      `json:"pid"`
		Labels []string `json:"labels"`
	}
	require.NoError(t, json.Unmarshal(direct, &info))
	assert.Contains(t, info.Labels, "process", "the kind's labels reach the program")
	_ = conn.Close()

	pinned, err := c.Request(ctx, "example-pinned-echo", "ping", nil)
	require.NoError(t, err, "the pinned container is registered and running")
	assert.Contains(t, string(pinned), "example-pinned-echo")
	var pinnedExtra map[string]any
	require.Eventually(t, func() bool {
		recs, err := c.List(ctx, "echo-process")
		if err != nil {
			return false
		}
		for _, r := range recs {
			if r.UUID == "example-pinned-echo" {
				pinnedExtra = nil
				_ = json.Unmarshal(r.Extra, &pinnedExtra)
			}
		}
		return pinnedExtra["state"] == "running"
	}, waitFor, 20*time.Millisecond, "the pinned container's record shows its state")
	assert.Equal(t, "running", pinnedExtra["desired"], "a pinned container shows what is desired")
	assert.Equal(t, "process", pinnedExtra["runtime"])

	kv, err := c.Get(ctx, "kv", client.GetOptions{})
	require.NoError(t, err)
	_, err = kv.Request(ctx, "store", map[string]any{"key": "k", "value": 42})
	require.NoError(t, err)
	v, err := kv.Request(ctx, "retrieve", map[string]any{"key": "k"})
	require.NoError(t, err)
	assert.JSONEq(t, `42`, string(v))

	// SIGHUP is survived (its default action would end the process).
	require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return strings.Contains(stderr.String(), "SIGHUP: configuration reload is not supported") }, waitFor, 10*time.Millisecond)
	v, err = kv.Request(ctx, "retrieve", map[string]any{"key": "k"})
	require.NoError(t, err, "still serving after SIGHUP")
	assert.JSONEq(t, `42`, string(v))

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	testutil.WaitFor(t, notes, "STOPPING=1", waitFor)
	select {
	case err := <-exited:
		exited <- err
		assert.Equal(t, 0, testutil.ExitCode(err), "a clean stop exits 0")
	case <-time.After(waitFor):
		require.FailNow(t, "huly-agent did not stop after SIGTERM")
	}
	assert.ErrorIs(t, syscall.Kill(info.PID, 0), syscall.ESRCH, "process containers end with the agent")
}
