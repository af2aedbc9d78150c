package container_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/client/clienttest"
	"github.com/huly-net/huly-net/go/container"
	"github.com/huly-net/huly-net/go/stream"
)

type streamer struct {
	ended chan error
}

func (s *streamer) Request(_ context.Context, _ string, op string, _ json.RawMessage) (any, error) {
	return map[string]string{"plain": op}, nil
}
func (s *streamer) StreamOp(op string) bool { return op == "count" || op == "forever" }
func (s *streamer) Stream(ctx context.Context, _ string, op string, data json.RawMessage, emit container.Emitter) error {
	n := 1 << 62
	if op == "count" {
		var p struct{ N int }
		_ = json.Unmarshal(data, &p)
		n = p.N
	}
	for i := range n {
		if err := emit.Emit(ctx, map[string]int{"i": i}); err != nil {
			s.ended <- err
			return err
		}
	}
	return nil
}

func serveStreamer(t *testing.T) (string, *streamer) {
	t.Helper()
	im := &streamer{ended: make(chan error, 4)}
	env := map[string]string{"HULY_CONTAINER_UUID": "s1", "HULY_LISTEN": "127.0.0.1:0"}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *container.Host, 1)
	done := make(chan error, 1)
	go func() {
		done <- container.ServeWith(ctx, im, container.Options{
			Getenv: func(k string) string { return env[k] }, NoSignals: true, Logger: clienttest.Quiet(),
			OnReady: func(h *container.Host) { ready <- h },
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case h := <-ready:
		return h.Addr().String(), im
	case err := <-done:
		require.NoError(t, err)
	case <-clienttest.Ctx(t).Done():
	}
	t.Fatal("container not ready")
	return "", nil
}

func TestContainerSDKStreams(t *testing.T) {
	addr, im := serveStreamer(t)
	ctx := clienttest.Ctx(t)
	cl, err := backrpc.Dial(addr, backrpc.ClientOptions{Logger: clienttest.Quiet(), Capabilities: []string{backrpc.CapStream}}, backrpc.ClientHandler{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cl.Close(context.Background()) })
	require.NoError(t, cl.WaitConnected(ctx))
	require.True(t, cl.ServerHello().Has(backrpc.CapStream), "the endpoint announces streams")

	rd, err := stream.OpenReader(ctx, cl.Request, "s1", "count", json.RawMessage(`{"N":200}`), 16)
	require.NoError(t, err)
	n := 0
	for {
		c, err := rd.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		assert.JSONEq(t, `{"i":`+itoa(n)+`}`, string(c))
		n++
	}
	assert.Equal(t, 200, n)

	rd, err = stream.OpenReader(ctx, cl.Request, "s1", "forever", nil, 16)
	require.NoError(t, err)
	_, err = rd.Next(ctx)
	require.NoError(t, err)
	require.NoError(t, rd.Close())
	select {
	case err := <-im.ended:
		assert.ErrorIs(t, err, stream.ErrCancelled)
	case <-ctx.Done():
		t.Fatal("cancel did not reach the container")
	}

	// An operation that does not stream is one chunk.
	rd, err = stream.OpenReader(ctx, cl.Request, "s1", "plain-op", nil, 0)
	require.NoError(t, err)
	c, err := rd.Next(ctx)
	require.NoError(t, err)
	assert.JSONEq(t, `{"plain":"plain-op"}`, string(c))

	// A caller announcing nothing (TypeScript 0.7, which ignores the hello
	// answer's payload) gets one array for a streaming operation.
	ts, err := backrpc.Dial(addr, backrpc.ClientOptions{Logger: clienttest.Quiet()}, backrpc.ClientHandler{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ts.Close(context.Background()) })
	require.NoError(t, ts.WaitConnected(ctx))
	res, err := ts.Request(ctx, "count", map[string]int{"N": 3})
	require.NoError(t, err)
	assert.JSONEq(t, `[{"i":0},{"i":1},{"i":2}]`, string(res))
}
