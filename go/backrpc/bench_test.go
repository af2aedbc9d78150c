package backrpc

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Request/response round trips through backrpc over loopback sockets:
//
//	go test -run '^$' -bench . -benchtime 3s ./backrpc

var benchParams = json.RawMessage(`["b2d1a7e4-0000-4000-8000-000000000000","echo",{"hello":"world","n":1}]`)

func rawEcho(ctx context.Context, c ClientInfo, method string, params json.RawMessage) (any, error) {
	return params, nil
}

func benchServer(b *testing.B) *Server {
	s := NewServer(ServerOptions{}, ServerHandler{HandleRequest: rawEcho})
	require.NoError(b, s.Listen("127.0.0.1:0"))
	b.Cleanup(func() { _ = s.Close() })
	return s
}

func benchClient(b *testing.B, addr string) *Client {
	c, err := Dial(addr, ClientOptions{}, ClientHandler{})
	require.NoError(b, err)
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Close(ctx)
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(b, c.WaitConnected(ctx))
	return c
}

func BenchmarkRequestSequential(b *testing.B) {
	s := benchServer(b)
	c := benchClient(b, s.Addr().String())
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if _, err := c.Request(ctx, "cs", benchParams); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

func BenchmarkRequest100Clients(b *testing.B) {
	s := benchServer(b)
	const clients = 100
	cs := make([]*Client, clients)
	for i := range cs {
		cs[i] = benchClient(b, s.Addr().String())
	}
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if _, err := c.Request(ctx, "cs", benchParams); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

func BenchmarkDecodeEncode(b *testing.B) {
	fr := EncodeClient(Message{Op: OpRequest, ID: "b2d1a7e4-0000-4000-8000-000000000000-12345", Payload: benchParams})
	b.ReportAllocs()
	for range b.N {
		m, err := Decode(fr)
		if err != nil {
			b.Fatal(err)
		}
		_ = EncodeServer(Message{Op: OpResponse, ID: m.ID, Payload: m.Payload})
	}
}
