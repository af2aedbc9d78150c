package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/client/clienttest"
	"github.com/huly-net/huly-net/go/network"
	"github.com/huly-net/huly-net/go/stream"
)

func readAll(t *testing.T, rd *client.StreamReader) ([]json.RawMessage, error) {
	t.Helper()
	var out []json.RawMessage
	for c, err := range rd.All(clienttest.Ctx(t)) {
		if err != nil {
			return out, err
		}
		out = append(out, c)
	}
	return out, nil
}

func indexes(t *testing.T, chunks []json.RawMessage) []int {
	t.Helper()
	out := []int{}
	for _, c := range chunks {
		var v struct{ I int }
		require.NoError(t, json.Unmarshal(c, &v))
		out = append(out, v.I)
	}
	return out
}

func TestStreamRoutedDirectAndAsOneResult(t *testing.T) {
	s := clienttest.StartServer(t)
	clienttest.StartAgent(t, s.Addr(), clienttest.AgentSetup{Kinds: clienttest.EchoKinds()})
	c := clienttest.Dial(t, s.Addr())
	ctx := clienttest.Ctx(t)
	require.True(t, c.ServerHas(backrpc.CapStream))
	r, err := c.Get(ctx, "echo", client.GetOptions{})
	require.NoError(t, err)

	rd, err := r.Stream(ctx, "stream", map[string]int{"n": 5})
	require.NoError(t, err)
	chunks, err := readAll(t, rd)
	require.NoError(t, err)
	assert.Equal(t, []int{0, 1, 2, 3, 4}, indexes(t, chunks), "routed")

	conn, err := r.Connect(ctx)
	require.NoError(t, err)
	rd, err = conn.Stream(ctx, "stream", map[string]int{"n": 300})
	require.NoError(t, err)
	chunks, err = readAll(t, rd)
	require.NoError(t, err)
	require.Len(t, chunks, 300, "direct, over several batches")
	assert.Equal(t, 299, indexes(t, chunks)[299])

	// An operation that does not stream is a stream of its one result.
	rd, err = r.Stream(ctx, "echo", "hi")
	require.NoError(t, err)
	chunks, err = readAll(t, rd)
	require.NoError(t, err)
	require.Len(t, chunks, 1)
	assert.Contains(t, string(chunks[0]), `"data":"hi"`)

	// A plain request (what a TypeScript caller sends) gets every chunk in
	// one array.
	res, err := r.Request(ctx, "stream", map[string]int{"n": 3})
	require.NoError(t, err)
	assert.JSONEq(t, `[{"i":0},{"i":1},{"i":2}]`, string(res))
	raw, err := backrpc.Dial(s.Addr(), backrpc.ClientOptions{}, backrpc.ClientHandler{}) // announces nothing, as TS 0.7
	require.NoError(t, err)
	t.Cleanup(func() { _ = raw.Close(context.Background()) })
	res, err = raw.Request(ctx, "cs", []any{r.UUID(), "stream", map[string]int{"n": 2}})
	require.NoError(t, err)
	assert.JSONEq(t, `[{"i":0},{"i":1}]`, string(res))
}

// slowStream is a container whose stream "count" emits n chunks {"i"} and
// records how many were accepted, and whose stream "forever" emits until
// cancelled.
type slowStream struct {
	agent.Broadcaster
	emitted atomic.Int64
	ended   chan error
}

func (s *slowStream) Request(context.Context, string, string, json.RawMessage) (any, error) {
	return "plain", nil
}
func (s *slowStream) Terminate(context.Context) error { return nil }
func (s *slowStream) Ping(context.Context) error      { return nil }
func (s *slowStream) StreamOp(op string) bool         { return op != "plain" }
func (s *slowStream) Stream(ctx context.Context, _ string, op string, data json.RawMessage, emit agent.Emitter) error {
	var err error
	defer func() { s.ended <- err }()
	switch op {
	case "fail":
		_ = emit.Emit(ctx, map[string]int{"i": 0})
		err = errors.New("the container gave up")
		return err
	case "forever":
		for i := 0; ; i++ {
			if err = emit.Emit(ctx, map[string]int{"i": i}); err != nil {
				return err
			}
			s.emitted.Add(1)
		}
	default:
		var p struct{ N int }
		_ = json.Unmarshal(data, &p)
		for i := range p.N {
			if err = emit.Emit(ctx, map[string]int{"i": i}); err != nil {
				return err
			}
			s.emitted.Add(1)
		}
		return nil
	}
}

func startSlow(t *testing.T) (*clienttest.Server, *slowStream, *client.ContainerRef) {
	s := clienttest.StartServer(t)
	box := &slowStream{ended: make(chan error, 10)}
	clienttest.StartAgent(t, s.Addr(), clienttest.AgentSetup{Kinds: map[string]agent.Factory{
		"slow": func(context.Context, string, network.GetOptions) (agent.Container, error) { return box, nil },
	}})
	c := clienttest.Dial(t, s.Addr())
	r, err := c.Get(clienttest.Ctx(t), "slow", client.GetOptions{})
	require.NoError(t, err)
	return s, box, r
}

// A slow reader bounds what the container buffers: at any time the
// container is at most three windows (its buffer, the reader's batch and
// the batch fetched ahead) and one chunk ahead of what was read.
func TestStreamFlowControlBoundsTheContainer(t *testing.T) {
	_, box, r := startSlow(t)
	ctx := clienttest.Ctx(t)
	const n = 3000
	rd, err := r.Stream(ctx, "count", map[string]int{"N": n})
	require.NoError(t, err)
	read := int64(0)
	maxAhead := int64(0)
	for {
		_, err := rd.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		read++
		ahead := box.emitted.Load() - read
		maxAhead = max(maxAhead, ahead)
		require.LessOrEqual(t, ahead, int64(3*stream.DefaultWindow+1), "after %d chunks read", read)
	}
	assert.Equal(t, int64(n), read)
	t.Logf("the container was at most %d chunks ahead of the reader", maxAhead)
}

func TestStreamCancellationReachesTheContainer(t *testing.T) {
	_, box, r := startSlow(t)
	ctx := clienttest.Ctx(t)
	rd, err := r.Stream(ctx, "forever", nil)
	require.NoError(t, err)
	for range 10 {
		_, err := rd.Next(ctx)
		require.NoError(t, err)
	}
	require.NoError(t, rd.Close())
	select {
	case err := <-box.ended:
		assert.ErrorIs(t, err, stream.ErrCancelled)
	case <-ctx.Done():
		t.Fatal("the container's stream did not end")
	}

	// A caller that gives up through its context cancels too.
	rctx, cancel := context.WithCancel(ctx)
	rd, err = r.Stream(rctx, "forever", nil)
	require.NoError(t, err)
	for range 200 { // past the first batch: the next read goes out
		if _, err = rd.Next(rctx); err != nil {
			break
		}
	}
	require.NoError(t, err)
	cancel()
	for err == nil {
		_, err = rd.Next(rctx)
	}
	select {
	case err := <-box.ended:
		assert.Error(t, err)
	case <-ctx.Done():
		t.Fatal("the container's stream did not end after the caller's context")
	}
}

func TestStreamErrorEndsTheStream(t *testing.T) {
	_, _, r := startSlow(t)
	rd, err := r.Stream(clienttest.Ctx(t), "fail", nil)
	require.NoError(t, err)
	chunks, err := readAll(t, rd)
	require.Error(t, err)
	assert.Equal(t, "the container gave up", err.Error())
	assert.Len(t, chunks, 1)
}

func TestAgentBoundsItsOpenStreams(t *testing.T) {
	s := clienttest.StartServer(t)
	box := &slowStream{ended: make(chan error, 10)}
	clienttest.StartAgent(t, s.Addr(), clienttest.AgentSetup{
		Options: agent.Options{Streams: stream.Options{MaxStreams: 1}},
		Kinds: map[string]agent.Factory{
			"slow": func(context.Context, string, network.GetOptions) (agent.Container, error) { return box, nil },
		},
	})
	c := clienttest.Dial(t, s.Addr())
	ctx := clienttest.Ctx(t)
	r, err := c.Get(ctx, "slow", client.GetOptions{})
	require.NoError(t, err)
	first, err := r.Stream(ctx, "forever", nil)
	require.NoError(t, err)
	_, err = r.Stream(ctx, "forever", nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "too many open streams (1)")
	require.NoError(t, first.Close())
	require.Eventually(t, func() bool {
		rd, err := r.Stream(ctx, "count", map[string]int{"N": 1})
		if err != nil {
			return false
		}
		_, err = readAll(t, rd)
		return err == nil
	}, waitFor, waitFor/100, "room again once the first was cancelled")
}
