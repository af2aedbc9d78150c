package bench

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSummarizeNearestRank(t *testing.T) {
	lat := make([]time.Duration, 0, 100)
	for i := 100; i >= 1; i-- { // unsorted on purpose
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	s := Summarize(lat)
	assert.Equal(t, 100, s.Count)
	assert.Equal(t, 50.0, s.P50MS)
	assert.Equal(t, 95.0, s.P95MS)
	assert.Equal(t, 99.0, s.P99MS)
	assert.Equal(t, 100.0, s.MaxMS)
	assert.Equal(t, 50.5, s.MeanMS)
	assert.Equal(t, Latency{}, Summarize(nil))
}

func TestPercentileBounds(t *testing.T) {
	one := []time.Duration{7}
	assert.Equal(t, time.Duration(7), Percentile(one, 0))
	assert.Equal(t, time.Duration(7), Percentile(one, 100))
	assert.Equal(t, time.Duration(0), Percentile(nil, 50))
}

func TestSpreadOf(t *testing.T) {
	assert.Equal(t, Spread{Median: 2, Min: 1, Max: 9, N: 3}, SpreadOf([]float64{9, 1, 2}))
	assert.Equal(t, Spread{Median: 2.5, Min: 1, Max: 4, N: 4}, SpreadOf([]float64{4, 1, 2, 3}))
	assert.Equal(t, Spread{}, SpreadOf(nil))
}

func TestParseStatus(t *testing.T) {
	m := parseStatus("Name:\thuly-network\nVmHWM:\t   20540 kB\nVmRSS:\t   10240 kB\nThreads:\t7\n")
	assert.Equal(t, Memory{VmRSSMB: 10, VmHWMMB: 20.06}, m)
}

func TestReadMemoryOfThisProcess(t *testing.T) {
	m, err := ReadMemory(selfPID())
	require.NoError(t, err)
	assert.Greater(t, m.VmRSSMB, 0.0)
	assert.GreaterOrEqual(t, m.VmHWMMB, m.VmRSSMB)
	_, err = ReadMemory(-1)
	assert.Error(t, err)
}

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and a parenthesis must not shift fields.
	stat := "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 100 1000 200"
	v, err := parseStatCPU(stat)
	require.NoError(t, err)
	assert.InDelta(t, 3.0, v, 1e-9)
	_, err = parseStatCPU("garbage")
	assert.Error(t, err)
	_, err = parseStatCPU("1 (x) S 1 2")
	assert.Error(t, err)
}

func TestLoadAverageReadsProc(t *testing.T) {
	l := LoadAverage()
	assert.GreaterOrEqual(t, l[0], 0.0)
	assert.GreaterOrEqual(t, l[2], 0.0)
}
