package bench

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func selfPID() int { return os.Getpid() }

const waitFor = 20 * time.Second

// startEcho serves the TCP echo for the test and checks it stops cleanly.
func startEcho(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeTCPEcho(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(waitFor):
			t.Error("tcp echo did not stop")
		}
	})
	return ln.Addr().String()
}

func TestFloorMeasuresAllThreePhases(t *testing.T) {
	addr := startEcho(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	res, err := RunFloor(ctx, addr, FloorOptions{Parallel: 4, ParallelFor: 100 * time.Millisecond, SequentialFor: 100 * time.Millisecond, Connects: 5})
	require.NoError(t, err)
	assert.Equal(t, 4, res.Parallel)
	assert.Greater(t, res.RequestsPerSecond, 0.0)
	assert.Positive(t, res.ParallelLatency.Count)
	assert.Positive(t, res.Sequential.Count)
	assert.Greater(t, res.Sequential.P50MS, 0.0)
	assert.Equal(t, 5, res.Connect.Count)
}

func TestFloorFailsAgainstNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	_, err = RunFloor(ctx, addr, FloorOptions{Parallel: 1, ParallelFor: 50 * time.Millisecond})
	assert.ErrorContains(t, err, "dial tcp echo")
}

func TestFloorEndsWhenTheServerStopsAnswering(t *testing.T) {
	// A server that accepts and never answers: the floor must give up
	// when its context ends instead of waiting for ever.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = RunFloor(ctx, ln.Addr().String(), FloorOptions{Parallel: 2, ParallelFor: time.Minute})
	assert.Error(t, err)
}

func TestTCPEchoDropsAnOversizedMessage(t *testing.T) {
	addr := startEcho(t)
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], maxFloorMessage+1)
	_, err = c.Write(hdr[:])
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(waitFor)))
	_, err = c.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF)
}
