package bench

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func runs(metrics ...map[string]float64) *ScenarioResult {
	s := &ScenarioResult{}
	for _, m := range metrics {
		s.Runs = append(s.Runs, Run{Metrics: m})
	}
	return s
}

func sampleResult() *MatrixResult {
	return &MatrixResult{
		Options:  MatrixOptions{Runs: 3, RowFor: 3 * time.Second, Connects: 1000, ScaleClients: 1000, ScaleContainers: 10000, Version: "v-test"},
		Started:  time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Finished: time.Date(2025, 1, 2, 3, 7, 5, 0, time.UTC),
		Scenarios: map[string]*ScenarioResult{
			ScFloor: runs(
				map[string]float64{"rps": 40000, "p50_ms": 0.03, "p99_ms": 0.1, "connect_mean_ms": 0.1},
				map[string]float64{"rps": 20000, "p50_ms": 0.04, "p99_ms": 0.1, "connect_mean_ms": 0.1},
				map[string]float64{"rps": 60000, "p50_ms": 0.02, "p99_ms": 0.1, "connect_mean_ms": 0.1},
			),
			ScRoutedN100: runs(
				map[string]float64{"rps": 30000, "rss_idle_mb": 10},
				map[string]float64{"rps": 10000, "rss_idle_mb": 12},
				map[string]float64{"rps": 20000, "rss_idle_mb": 11},
			),
			ScRoutedSeq:   runs(map[string]float64{"p50_ms": 0.12, "p99_ms": 0.5}),
			ScDirectSeq:   runs(map[string]float64{"p50_ms": 0.1}),
			ScRoutedN1000: runs(map[string]float64{"get_s": 0.15}),
			ScConnect:     runs(map[string]float64{"connect_mean_ms": 0.2, "hwm_mb": 20}),
			ScScale: {Runs: []Run{
				{Metrics: map[string]float64{"errors": 0}},
				{Metrics: map[string]float64{"errors": 2}, Error: "2 errors, first: timeout"},
			}},
		},
		ProfileTop: "flat flat% sum% cum cum%\n 10ms 50% 50% 10ms 50% main.hot\n",
	}
}

func TestTargetsAreJudgedOnMedians(t *testing.T) {
	m := sampleResult()
	status := map[string]bool{}
	for _, tg := range Targets(m.Options) {
		status[tg.Metric+"@"+tg.Scenario] = m.Met(tg)
	}
	assert.False(t, status["rps@"+ScRoutedN100], "median 20,000 < 25,000")
	assert.True(t, status["p50_ms@"+ScRoutedSeq])
	assert.True(t, status["p99_ms@"+ScRoutedSeq])
	assert.False(t, status["p50_ms@"+ScDirectSeq], "0.1 > 0.08")
	assert.True(t, status["get_s@"+ScRoutedN1000])
	assert.True(t, status["connect_mean_ms@"+ScConnect])
	assert.True(t, status["rss_idle_mb@"], "pooled idle median 11")
	assert.True(t, status["hwm_mb@"+ScConnect])
	assert.False(t, status["errors@"+ScScale], "a failed run fails the target")
	assert.Equal(t, 11.0, m.TargetValue(Targets(m.Options)[6]).Median)
}

func TestReportShowsMediansRatiosAndFailures(t *testing.T) {
	var b strings.Builder
	require.NoError(t, WriteReport(&b, sampleResult()))
	r := b.String()
	assert.Contains(t, r, "# huly-net benchmark report")
	assert.Contains(t, r, "v-test")
	// Routed N=100: median 20,000 with its spread, half the floor's 40,000.
	assert.Contains(t, r, "| Routed, 100 parallel over 100 containers | ≥ 25,000 req/s | 20,000 (10,000–30,000) | 0.50 |")
	// Sequential p50 0.12 against the floor's 0.03: 0.25 of plain TCP.
	assert.Contains(t, r, "| Sequential routed latency p50 | ≤ 0.150 ms | 0.120 | 0.25 |")
	assert.Contains(t, r, "| Direct connection latency p50 | ≤ 0.080 ms | 0.100 | 0.30 | 0.28 | missed |")
	assert.Contains(t, r, "## Failed runs")
	assert.Contains(t, r, "scale: 2 errors, first: timeout")
	assert.Contains(t, r, "main.hot")
	assert.Equal(t, len(Targets(sampleResult().Options)), strings.Count(r, "| met |")+strings.Count(r, "| missed |")+strings.Count(r, "| not measured |"))
}

func TestNumberFormatting(t *testing.T) {
	assert.Equal(t, "25,000", num(25000))
	assert.Equal(t, "1,234,567", num(1234567.4))
	assert.Equal(t, "-1,000", num(-1000))
	assert.Equal(t, "123.5", num(123.45))
	assert.Equal(t, "12.35", num(12.345))
	assert.Equal(t, "0.046", num(0.0456))
	assert.Equal(t, "0", num(0))
	assert.Equal(t, "—", spreadText(Spread{}))
	assert.Equal(t, "3 (1–5)", spreadText(Spread{Median: 3, Min: 1, Max: 5, N: 3}))
	assert.Equal(t, "3", spreadText(Spread{Median: 3, Min: 3, Max: 3, N: 3}))
}

func TestSmallerRunsAreNotJudged(t *testing.T) {
	m := sampleResult()
	m.Options.Connects = 200
	m.Options.ScaleClients, m.Options.ScaleContainers, m.Options.ScaleAgents = 100, 1000, 3
	var b strings.Builder
	require.NoError(t, WriteReport(&b, m))
	r := b.String()
	assert.Contains(t, r, "| Client connect, average of 200 | ≤ 0.300 ms | 0.200 | 0.50 | 1.43 | not judged (smaller run) |")
	assert.Contains(t, r, "1,000 containers / 3 agents / 100 clients: errors")
	assert.NotContains(t, r, "10,000 containers")
}
