package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/internal/testutil"
)

func TestPairedRatiosDivideRunsThatRanTogether(t *testing.T) {
	this := runs(map[string]float64{"rps": 20}, map[string]float64{"rps": 30}, map[string]float64{"rps": 10})
	base := runs(map[string]float64{"rps": 10}, map[string]float64{"rps": 10}, map[string]float64{"rps": 10})
	this.Runs[2].Error = "failed"
	s := pairedRatios(this, base, "rps")
	assert.Equal(t, 2, s.N, "a failed run has no pair")
	assert.Equal(t, 2.0, s.Min)
	assert.Equal(t, 3.0, s.Max)
	assert.Equal(t, 2.5, s.Median)
}

func sampleCompare(load float64) *CompareResult {
	o := CompareOptions{This: Build{Name: "new"}, Baseline: Build{Name: "old"}}
	o.defaults()
	return &CompareResult{
		Options:   o,
		LoadStart: [3]float64{load, 0, 0},
		Floor:     runs(map[string]float64{"rps": 100000, "p50_ms": 0.05, "connect_mean_ms": 0.1}),
		This: map[string]*ScenarioResult{
			ShRounds:  runs(map[string]float64{"rps": 40000}),
			ShGets:    runs(map[string]float64{"get_s": 0.1}),
			ShConnect: runs(map[string]float64{"connect_mean_ms": 0.5}),
		},
		Baseline: map[string]*ScenarioResult{
			ShRounds:  runs(map[string]float64{"rps": 20000}),
			ShGets:    runs(map[string]float64{"get_s": 0.4}),
			ShConnect: runs(map[string]float64{"connect_mean_ms": 1.0}),
		},
	}
}

func TestCompareReportLeadsWithRatiosAndJudgesGoals(t *testing.T) {
	var b strings.Builder
	require.NoError(t, WriteCompareReport(&b, sampleCompare(0)))
	out := b.String()
	assert.Contains(t, out, "| Routed, rounds of 100 parallel over 100 containers, req/s | 2.00 | ≥ 1.6 met | 0.40 | 0.20 |")
	assert.Contains(t, out, "| 1,000 sequential gets, s | 0.25 | ≤ 0.4 met |")
	assert.Contains(t, out, "| Connect, average of 1,000 clients, ms | 0.50 | ≤ 0.47 missed | 0.20 | 0.10 |")
	assert.NotContains(t, out, "busy")
}

func TestCompareReportDoesNotJudgeABusyMachine(t *testing.T) {
	var b strings.Builder
	require.NoError(t, WriteCompareReport(&b, sampleCompare(50)))
	assert.Contains(t, b.String(), "≥ 1.6 (not judged: busy)")
	assert.NotContains(t, b.String(), " met |")
}

// TestCompareEndToEnd compares this tree with itself through the real
// binaries: every shape runs against both builds and lands in the report.
func TestCompareEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemons: skipped under -short")
	}
	dir := t.TempDir()
	network, err := testutil.BuildBinary("../cmd/huly-network", dir, "huly-network")
	require.NoError(t, err)
	ctl, err := testutil.BuildBinary("../cmd/hulyctl", dir, "hulyctl")
	require.NoError(t, err)
	benchBin, err := testutil.BuildBinary("./cmd/huly-bench", dir, "huly-bench")
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	build := Build{Network: network, Agent: ctl}
	res, err := RunCompare(ctx, CompareOptions{
		This: build, Baseline: build, Load: ctl, Bench: benchBin,
		Runs: 2, RowFor: 200 * time.Millisecond, Containers: 5, Rounds: 3, Gets: 5, Connects: 5,
		ProfileDir: dir, Progress: &progress,
	})
	require.NoError(t, err)
	require.Len(t, res.Floor.Runs, 2)
	for _, id := range []string{ShRounds, ShRoutedSeq, ShDirectSeq, ShGets, ShConnect} {
		for _, m := range []map[string]*ScenarioResult{res.This, res.Baseline} {
			require.NotNil(t, m[id], id)
			require.Len(t, m[id].Runs, 2, id)
			assert.Empty(t, m[id].Failures(), id)
		}
	}
	assert.Positive(t, res.This[ShRounds].Metric("rps").Median)
	assert.Len(t, res.Profiles, 4, res.ProfileErr)
	// Both orders ran: the second round starts with the other build.
	assert.Contains(t, progress.String(), "run 1/2: rounds, this tree")
	assert.Contains(t, progress.String(), "run 2/2: routed-seq, this tree")

	var b strings.Builder
	require.NoError(t, WriteCompareReport(&b, res))
	assert.NotContains(t, b.String(), "## Failed runs")
	assert.Contains(t, b.String(), "| Routed sequential p50, ms |")
}
