package integration

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/client/clienttest"
	"github.com/huly-net/huly-net/go/network"
)

// benchNetwork is a server, an echo agent on a client of its own and a
// user client, all in this process over 127.0.0.1.
func benchNetwork(b *testing.B) *client.Client {
	b.Helper()
	s := clienttest.StartServer(b)
	clienttest.StartAgent(b, s.Addr(), clienttest.AgentSetup{Kinds: clienttest.EchoKinds()})
	return clienttest.Dial(b, s.Addr())
}

func benchRefs(b *testing.B, c *client.Client, n int) []*client.ContainerRef {
	b.Helper()
	ctx := clienttest.Ctx(b)
	refs := make([]*client.ContainerRef, n)
	for i := range refs {
		r, err := c.Get(ctx, "echo", client.GetOptions{UUID: network.ContainerUUID(fmt.Sprintf("bench-%d", i))})
		require.NoError(b, err)
		refs[i] = r
	}
	return refs
}

// reportLatency adds p50 and p99 of the recorded round trips.
func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// Routed round trips one after another: client → network → agent →
// container and back.
func BenchmarkRoutedRequestSequential(b *testing.B) {
	c := benchNetwork(b)
	ref := benchRefs(b, c, 1)[0]
	ctx := context.Background()
	payload := map[string]int{"n": 1}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := ref.Request(ctx, "echo", payload); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

// 100 requests in parallel over 100 containers, routed through the network.
func BenchmarkRoutedRequestParallel100(b *testing.B) {
	benchParallel(b, 100, func(ctx context.Context, ref *client.ContainerRef) error {
		_, err := ref.Request(ctx, "echo", 1)
		return err
	})
}

// Sequential round trips over a connection to the agent's endpoint (cs
// there), bypassing the network server.
func BenchmarkConnectionRequestSequential(b *testing.B) {
	c := benchNetwork(b)
	ref := benchRefs(b, c, 1)[0]
	conn, err := ref.Connect(clienttest.Ctx(b))
	require.NoError(b, err)
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := conn.Request(ctx, "echo", 1); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

func benchParallel(b *testing.B, parallel int, do func(context.Context, *client.ContainerRef) error) {
	c := benchNetwork(b)
	refs := benchRefs(b, c, parallel)
	ctx := context.Background()
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if err := do(ctx, refs[w]); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

// Getting containers one after another (gg, the agent starts each).
func BenchmarkGet(b *testing.B) {
	c := benchNetwork(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Get(ctx, "echo", client.GetOptions{UUID: network.ContainerUUID(fmt.Sprintf("get-%d", i))}); err != nil {
			b.Fatal(err)
		}
	}
}
