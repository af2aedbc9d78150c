package bench

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestProcessWaitsForItsReadyLineAndStops(t *testing.T) {
	p, err := startProcess("sh", "/bin/sh", "-c", `echo starting; echo '{"ready":true}' >&2; exec sleep 60`)
	require.NoError(t, err)
	line, err := p.waitLine(context.Background(), waitFor, func(l string) bool { return strings.Contains(l, "ready") })
	require.NoError(t, err)
	assert.Equal(t, `{"ready":true}`, line)
	assert.Positive(t, p.pid())
	p.stop(waitFor)
	select {
	case <-p.done:
	default:
		t.Fatal("stop returned with the process still running")
	}
	p.stop(waitFor) // twice is fine
}

func TestProcessThatExitsBeforeReadyIsAnError(t *testing.T) {
	p, err := startProcess("sh", "/bin/sh", "-c", `echo "bind: address already in use" >&2; exit 3`)
	require.NoError(t, err)
	_, err = p.waitLine(context.Background(), waitFor, func(l string) bool { return l == "READY=1" })
	require.Error(t, err)
	assert.Contains(t, err.Error(), "exited")
	assert.Contains(t, err.Error(), "address already in use")
}

func TestProcessNotReadyInTime(t *testing.T) {
	p, err := startProcess("sh", "/bin/sh", "-c", `exec sleep 60`)
	require.NoError(t, err)
	defer p.stop(waitFor)
	_, err = p.waitLine(context.Background(), 50*time.Millisecond, func(string) bool { return false })
	assert.ErrorContains(t, err, "not ready within")
}

func TestProcessIgnoringSIGTERMIsKilled(t *testing.T) {
	p, err := startProcess("sh", "/bin/sh", "-c", `trap '' TERM; echo up; while :; do sleep 1; done`)
	require.NoError(t, err)
	_, err = p.waitLine(context.Background(), waitFor, func(l string) bool { return l == "up" })
	require.NoError(t, err)
	p.stop(100 * time.Millisecond)
	select {
	case <-p.done:
	default:
		t.Fatal("process still running after stop")
	}
}

func TestRunJSONTakesTheLastObject(t *testing.T) {
	var out struct{ A int }
	err := runJSON(context.Background(), waitFor, &out, "/bin/sh", "-c", `echo noise; echo '{"A":1}'; echo '{"A":2}'; echo done`)
	require.NoError(t, err)
	assert.Equal(t, 2, out.A)
}

func TestRunJSONExplainsAFailure(t *testing.T) {
	var out struct{}
	err := runJSON(context.Background(), waitFor, &out, "/bin/sh", "-c", `echo "no network at 127.0.0.1:1" >&2; exit 1`)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no network at 127.0.0.1:1")

	err = runJSON(context.Background(), waitFor, &out, "/bin/sh", "-c", `echo plain text`)
	assert.ErrorContains(t, err, "no JSON object")

	err = runJSON(context.Background(), 100*time.Millisecond, &out, "/bin/sh", "-c", `exec sleep 60`)
	assert.ErrorContains(t, err, "did not finish within")
}

func TestJSONField(t *testing.T) {
	v, ok := jsonField(`{"level":"info","listen":"127.0.0.1:4000","msg":"huly-network ready"}`, "listen")
	assert.True(t, ok)
	assert.Equal(t, "127.0.0.1:4000", v)
	_, ok = jsonField(`time=x level=info msg="huly-network ready"`, "listen")
	assert.False(t, ok)
}

func TestParseIO(t *testing.T) {
	r, w, err := parseIO("rchar: 10\nwchar: 20\nsyscr: 7\nsyscw: 9\nread_bytes: 0\n")
	require.NoError(t, err)
	assert.Equal(t, 7.0, r)
	assert.Equal(t, 9.0, w)
	_, _, err = parseIO("rchar: 10\n")
	assert.Error(t, err)
	// Our own process: the counters are readable and grow.
	r0, w0, err := ioSyscalls(os.Getpid())
	require.NoError(t, err)
	assert.Positive(t, r0+w0)
}
