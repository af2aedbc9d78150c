package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/bench"
)

func runArgs(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"nope"},
		{"floor"},
		{"matrix"},
		{"matrix", "--bin-dir", "x", "--runs", "0"},
		{"connect", "--clients", "0"},
		{"scale", "--containers", "0"},
		{"scale", "--bogus"},
		{"tcp-echo", "extra-argument"},
		{"rounds", "--containers", "0"},
		{"rounds", "--for", "-1s"},
		{"compare"},
		{"compare", "--bin-dir", "x"},
		{"compare", "--bin-dir", "x", "--baseline-bin-dir", "y", "--runs", "0"},
	} {
		code, _, stderr := runArgs(args...)
		assert.Equal(t, 2, code, "%v: %s", args, stderr)
		assert.NotEmpty(t, stderr, "%v says why", args)
	}
	code, _, _ := runArgs("connect", "-h")
	assert.Equal(t, 0, code)
}

func TestFloorPrintsOneJSONObject(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bench.ServeTCPEcho(ctx, ln) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Error("tcp echo did not stop")
		}
	}()
	code, stdout, stderr := runArgs("floor", "--addr", ln.Addr().String(), "--parallel", "2", "--for", "50ms", "--sequential-for", "50ms", "--connects", "3")
	require.Equal(t, 0, code, stderr)
	var res bench.FloorResult
	require.NoError(t, json.Unmarshal([]byte(stdout), &res))
	assert.Greater(t, res.RequestsPerSecond, 0.0)
	assert.Equal(t, 3, res.Connect.Count)
}
