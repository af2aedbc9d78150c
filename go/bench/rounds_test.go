package bench

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/client/clienttest"
)

func TestRoundsSendsOneRequestPerContainerPerRound(t *testing.T) {
	s := clienttest.StartServer(t)
	clienttest.StartAgent(t, s.Addr(), clienttest.AgentSetup{Kinds: clienttest.EchoKinds()})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	res, err := RunRounds(ctx, s.Addr(), RoundsOptions{Containers: 5, Rounds: 4})
	require.NoError(t, err)
	assert.Equal(t, 0, res.Errors, res.FirstError)
	assert.Equal(t, 4, res.Rounds)
	assert.Equal(t, 20, res.Requests)
	assert.Equal(t, 20, res.Request.Count)
	assert.Equal(t, 4, res.Round.Count)
	assert.GreaterOrEqual(t, res.Round.MaxMS, res.Request.P50MS, "a round lasts as long as its slowest request")
	assert.Positive(t, res.RequestsPerSecond)
}

func TestRoundsForRunsUntilTheDuration(t *testing.T) {
	s := clienttest.StartServer(t)
	clienttest.StartAgent(t, s.Addr(), clienttest.AgentSetup{Kinds: clienttest.EchoKinds()})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	res, err := RunRounds(ctx, s.Addr(), RoundsOptions{Containers: 2, Rounds: 1, For: 100 * time.Millisecond})
	require.NoError(t, err)
	assert.Greater(t, res.Rounds, 1, "--for overrides --rounds")
	assert.Equal(t, 2*res.Rounds, res.Request.Count)
}

func TestRoundsReportsAKindNobodyServes(t *testing.T) {
	s := clienttest.StartServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	_, err := RunRounds(ctx, s.Addr(), RoundsOptions{Containers: 1, Rounds: 1, Kind: "nobody-serves-this", CallTimeout: 300 * time.Millisecond})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "get bench-0")
}
