package bench

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/client/clienttest"
)

func TestConnectKeepsEveryClientUntilTheEnd(t *testing.T) {
	s := clienttest.StartServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	res, err := RunConnect(ctx, s.Addr(), ConnectOptions{Clients: 6, ServerPID: os.Getpid()})
	require.NoError(t, err)
	assert.Equal(t, 0, res.Errors, res.FirstError)
	assert.Equal(t, 6, res.Connect.Count)
	require.NotNil(t, res.ServerMemory)
	assert.Greater(t, res.ServerMemory.VmRSSMB, 0.0)
	// Every client was closed at the end: the server forgets them.
	require.Eventually(t, func() bool { return s.Stats().RPC.Clients == 0 }, waitFor, 10*time.Millisecond)
	assert.GreaterOrEqual(t, s.Stats().RPC.Hellos, uint64(6))
}

func TestConnectCountsFailures(t *testing.T) {
	s := clienttest.StartServer(t)
	addr := s.Addr()
	s.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	res, err := RunConnect(ctx, addr, ConnectOptions{Clients: 2, CallTimeout: 100 * time.Millisecond})
	require.NoError(t, err)
	assert.Equal(t, 2, res.Errors)
	assert.NotEmpty(t, res.FirstError)
	assert.Equal(t, 0, res.Connect.Count)
}

func TestScaleSpreadsContainersOverAgents(t *testing.T) {
	s := clienttest.StartServer(t)
	clienttest.StartAgent(t, s.Addr(), clienttest.AgentSetup{Kinds: clienttest.EchoKinds()})
	clienttest.StartAgent(t, s.Addr(), clienttest.AgentSetup{Kinds: clienttest.EchoKinds()})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	res, err := RunScale(ctx, s.Addr(), ScaleOptions{
		Clients: 4, Containers: 12, RequestsFor: 200 * time.Millisecond, ServerPID: os.Getpid(),
	})
	require.NoError(t, err)
	assert.Equal(t, 0, res.Errors, res.FirstError)
	assert.Equal(t, 2, res.Agents)
	assert.Equal(t, 6, res.PerAgentMin, "round-robin over two agents")
	assert.Equal(t, 6, res.PerAgentMax)
	assert.Equal(t, 12, res.Get.Count)
	assert.Positive(t, res.Requests)
	assert.Greater(t, res.RequestsPerSec, 0.0)
	assert.NotNil(t, res.ServerMemory)
}

func TestScaleReportsAKindNobodyServes(t *testing.T) {
	s := clienttest.StartServer(t)
	clienttest.StartAgent(t, s.Addr(), clienttest.AgentSetup{Kinds: clienttest.EchoKinds()})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	res, err := RunScale(ctx, s.Addr(), ScaleOptions{
		Clients: 2, Containers: 2, Kind: "nobody-serves-this", RequestsFor: 50 * time.Millisecond, CallTimeout: 300 * time.Millisecond,
	})
	require.NoError(t, err)
	assert.Equal(t, 2, res.GetErrors)
	assert.Equal(t, 1, res.CheckErrors, "the listing misses both containers")
	assert.Equal(t, 3, res.Errors)
	assert.Contains(t, res.FirstError, "nobody-serves-this")
}

func TestScaleRejectsAnEmptyRun(t *testing.T) {
	_, err := RunScale(context.Background(), "127.0.0.1:1", ScaleOptions{})
	assert.Error(t, err)
}
