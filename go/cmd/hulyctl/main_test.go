package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/client/clienttest"
	"github.com/huly-net/huly-net/go/internal/testutil"
)

var bins testutil.Binaries

// waitFor bounds every wait of these tests; none of them asserts speed.
const waitFor = 20 * time.Second

// TestMain builds hulyctl once for the end-to-end tests; under -short
// (the Nix check phase) they skip.
func TestMain(m *testing.M) {
	os.Exit(testutil.BuildMain(m, &bins, map[string]string{"hulyctl": "."}))
}

func skipShort(t *testing.T) {
	t.Helper()
	bins.Need(t)
}

// ctlEnv is the environment of every hulyctl run: the test's, without a
// HULY_NETWORK that would point elsewhere. A -race build otherwise waits a
// second at every exit; a race it finds still fails the run (exit 66).
func ctlEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HULY_NETWORK=") && !strings.HasPrefix(kv, "GORACE=") {
			env = append(env, kv)
		}
	}
	env = append(env, "GORACE=atexit_sleep_ms=0 "+os.Getenv("GORACE"))
	return append(env, extra...)
}

type result struct {
	stdout, stderr string
	code           int
}

// ctl runs hulyctl to its end.
func ctl(t *testing.T, args ...string) result {
	t.Helper()
	return ctlWith(t, nil, "", args...)
}

func ctlWith(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	skipShort(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.Path("hulyctl"), args...)
	cmd.Env = ctlEnv(env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	require.NoError(t, ctx.Err(), "hulyctl %v did not finish; stderr: %s", args, stderr.String())
	code := testutil.ExitCode(err)
	require.GreaterOrEqual(t, code, 0, "hulyctl %v: %v", args, err)
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// ok runs hulyctl and requires success.
func ok(t *testing.T, args ...string) string {
	t.Helper()
	r := ctl(t, args...)
	require.Equal(t, 0, r.code, "hulyctl %v failed: %s", args, r.stderr)
	return r.stdout
}

// okJSON runs hulyctl --json and decodes its output into out.
func okJSON(t *testing.T, out any, args ...string) {
	t.Helper()
	stdout := ok(t, append([]string{"--json"}, args...)...)
	require.NoError(t, json.Unmarshal([]byte(stdout), out), "output of %v: %s", args, stdout)
}

// proc is a hulyctl that runs until it is signalled.
type proc struct {
	cmd    *exec.Cmd
	lines  chan string // stdout, line by line; closed at EOF
	stderr *testutil.SyncBuffer
	done   chan error
}

func startCtl(t *testing.T, args ...string) *proc {
	t.Helper()
	skipShort(t)
	cmd := exec.Command(bins.Path("hulyctl"), args...)
	cmd.Env = ctlEnv()
	cmd.WaitDelay = 5 * time.Second
	p := &proc{cmd: cmd, lines: make(chan string, 1024), stderr: &testutil.SyncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = p.stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		// Wait only once stdout is drained, as StdoutPipe requires.
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		go func() {
			for range p.lines { // unblock the reader if nobody read
			}
		}()
		<-p.done
		if t.Failed() {
			t.Logf("hulyctl %v stderr:\n%s", args, p.stderr.String())
		}
	})
	return p
}

// nextLine returns the next stdout line, failing the test at the deadline.
func (p *proc) nextLine(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-p.lines:
		require.True(t, ok, "hulyctl ended its output; stderr: %s", p.stderr.String())
		return l
	case <-time.After(waitFor):
		require.FailNow(t, "no output line from hulyctl", "stderr: %s", p.stderr.String())
		return ""
	}
}

// lineMatching reads lines until one contains s.
func (p *proc) lineMatching(t *testing.T, s string) string {
	t.Helper()
	deadline := time.NewTimer(waitFor)
	defer deadline.Stop()
	for {
		select {
		case l, ok := <-p.lines:
			require.True(t, ok, "hulyctl ended its output before %q; stderr: %s", s, p.stderr.String())
			if strings.Contains(l, s) {
				return l
			}
		case <-deadline.C:
			require.FailNow(t, "no output line with "+s, "stderr: %s", p.stderr.String())
			return ""
		}
	}
}

// stop signals hulyctl and returns its exit code.
func (p *proc) stop(t *testing.T, sig os.Signal) int {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(sig))
	select {
	case err := <-p.done:
		p.done <- err
		return testutil.ExitCode(err)
	case <-time.After(waitFor):
		require.FailNow(t, "hulyctl did not exit after "+sig.String())
		return -1
	}
}

// echoNetwork is an in-process network with one echo agent on 127.0.0.1.
type echoNetwork struct {
	srv   *clienttest.Server
	addr  string
	agent *agent.Agent
}

func startEchoNetwork(t *testing.T) *echoNetwork {
	t.Helper()
	skipShort(t)
	srv := clienttest.StartServer(t)
	a, _ := clienttest.StartAgent(t, srv.Addr(), clienttest.AgentSetup{Kinds: clienttest.EchoKinds()})
	return &echoNetwork{srv: srv, addr: srv.Addr(), agent: a}
}
