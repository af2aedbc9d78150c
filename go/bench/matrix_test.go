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

// TestMatrixEndToEnd runs a miniature matrix against the real binaries:
// every scenario must run, stop what it started and land in the report.
func TestMatrixEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemons: skipped under -short")
	}
	dir := t.TempDir()
	var bin Binaries
	var err error
	bin.Network, err = testutil.BuildBinary("../cmd/huly-network", dir, "huly-network")
	require.NoError(t, err)
	bin.Ctl, err = testutil.BuildBinary("../cmd/hulyctl", dir, "hulyctl")
	require.NoError(t, err)
	bin.Bench, err = testutil.BuildBinary("./cmd/huly-bench", dir, "huly-bench")
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	res, err := RunMatrix(ctx, MatrixOptions{
		Bin: bin, Runs: 1, RowFor: 300 * time.Millisecond, Connects: 10,
		ScaleClients: 6, ScaleContainers: 12, ScaleAgents: 2,
		ProfileFor: time.Second, ProfileDir: dir, Progress: &progress,
	})
	require.NoError(t, err)
	for _, id := range []string{ScFloor, ScRoutedN1, ScRoutedN100, ScRoutedN1000, ScRoutedSeq, ScDirectSeq, ScConnect, ScScale} {
		sc := res.Scenario(id)
		require.Len(t, sc.Runs, 1, id)
		assert.Empty(t, sc.Failures(), id)
	}
	assert.Positive(t, res.Scenario(ScRoutedN100).Metric("rps").Median)
	assert.Positive(t, res.Scenario(ScRoutedN100).Metric("rss_idle_mb").Median)
	assert.Positive(t, res.Scenario(ScConnect).Metric("hwm_mb").Median)
	assert.Equal(t, 2.0, res.Scenario(ScScale).Metric("agents").Median)
	assert.Empty(t, res.ProfileErr)
	assert.FileExists(t, res.ProfileFile)
	assert.Contains(t, progress.String(), "run 1/1: scale")

	var b strings.Builder
	require.NoError(t, WriteReport(&b, res))
	assert.NotContains(t, b.String(), "## Failed runs")
	assert.Contains(t, b.String(), "| Routed, N=1000, 100 parallel |")
}
