package main

import (
	"bytes"
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/internal/testutil"
	"github.com/huly-net/huly-net/go/network"
)

func TestOneLine(t *testing.T) {
	assert.Equal(t, "boom; at f (x.js:1); at g (y.js:2)", oneLine("boom\n    at f (x.js:1)\r\n    at g (y.js:2)\n"))
	long := oneLine(strings.Repeat("x", 5000))
	assert.Equal(t, maxErrorLen+len("…"), len(long))
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	assert.Equal(t, 50.0, percentileMS(d, 50))
	assert.Equal(t, 95.0, percentileMS(d, 95))
	assert.Equal(t, 99.0, percentileMS(d, 99))
	assert.Equal(t, 1.0, percentileMS(d[:1], 99))
	assert.Equal(t, 0.0, percentileMS(nil, 50))
}

func TestEndpointText(t *testing.T) {
	routed := network.ContainerOnAgentRef(network.EndpointRef{Kind: network.RefDirect, Host: "10.1.2.3", Port: 3738, AgentID: "a"}, "c")
	assert.Equal(t, "10.1.2.3:3738 (routed)", endpointText(routed))
	assert.Equal(t, "- (noconnect)", endpointText(network.AgentNoConnectRef("a")))
	assert.Equal(t, "-", endpointText(""))
	assert.Equal(t, "not a ref", endpointText("not a ref"))
}

func TestUniqueSorted(t *testing.T) {
	assert.Equal(t, []string{"a", "b"}, uniqueSorted([]string{"b", "a", "b"}))
	assert.Equal(t, []string{}, uniqueSorted(nil))
}

// run in process: usage errors need no network, so this runs under -short.
func TestRunUsageError(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"get", "--uuid"}, &stdout, &stderr, func(string) string { return "" })
	assert.Equal(t, 2, code)
	assert.Equal(t, "hulyctl: flag needs an argument: --uuid (see 'hulyctl get --help')\n", stderr.String())
	assert.Empty(t, stdout.String())
}

func TestBenchProgressOnStderr(t *testing.T) {
	var stderr testutil.SyncBuffer
	a := &app{stderr: &stderr}
	var done atomic.Int64
	done.Store(42)
	stop := a.benchProgress(time.Millisecond, time.Now(), 100, &done)
	require.Eventually(t, func() bool { return strings.Contains(stderr.String(), "42 of 100 requests") }, waitFor, time.Millisecond)
	stop()
	assert.Regexp(t, `^bench: \S+, 42 of 100 requests \(\d+/s\)\n`, stderr.String())
}
