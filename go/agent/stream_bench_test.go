package agent_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/client/clienttest"
)

// BenchmarkStream reads the echo stream with 1 KiB chunks, routed through
// the network and directly over the agent's endpoint:
//
//	go test -run '^$' -bench Stream -benchtime 50000x ./agent/
func BenchmarkStream(b *testing.B) {
	s := clienttest.StartServer(b)
	clienttest.StartAgent(b, s.Addr(), clienttest.AgentSetup{Kinds: clienttest.EchoKinds()})
	c := clienttest.Dial(b, s.Addr())
	ctx := clienttest.Ctx(b)
	r, err := c.Get(ctx, "echo", client.GetOptions{})
	require.NoError(b, err)
	conn, err := r.Connect(ctx)
	require.NoError(b, err)
	for _, mode := range []string{"routed", "direct"} {
		b.Run(mode, func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			open := func() (*client.StreamReader, error) {
				data := map[string]int{"n": b.N, "size": 1000} // {"i":N,"pad":…} ≈ 1 KiB
				if mode == "direct" {
					return conn.Stream(ctx, "stream", data)
				}
				return r.Stream(ctx, "stream", data)
			}
			b.SetBytes(1024)
			b.ResetTimer()
			start := time.Now()
			rd, err := open()
			require.NoError(b, err)
			n := 0
			for {
				_, err := rd.Next(ctx)
				if errors.Is(err, io.EOF) {
					break
				}
				require.NoError(b, err)
				n++
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "chunks/s")
			require.Equal(b, b.N, n)
		})
	}
}
