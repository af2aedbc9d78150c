package bridge

import (
	"io"
	"net"
	"testing"
)

// These benchmarks run client, bridge and target in one process, so they
// show the bridge's own costs (allocations, CPU profile) rather than what
// tests/bench/bridge.sh measures between processes.

func BenchmarkConnectRoundTripClose(b *testing.B) {
	srv := startBenchEcho(b)
	br := startBenchBridge(b, srv)
	msg := make([]byte, 100)
	buf := make([]byte, 100)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c, err := net.Dial("tcp", br)
			if err != nil {
				b.Error(err)
				return
			}
			if _, err := c.Write(msg); err != nil {
				b.Error(err)
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				b.Error(err)
			}
			_ = c.Close()
		}
	})
}

func BenchmarkBulk(b *testing.B) {
	srv := startBenchEcho(b)
	br := startBenchBridge(b, srv)
	c, err := net.Dial("tcp", br)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 256<<10)
	go func() { _, _ = io.Copy(io.Discard, c) }()
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func startBenchEcho(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return "tcp:" + ln.Addr().String()
}

func startBenchBridge(b *testing.B, target string) string {
	r := startBridge(b, Options{Forwards: []Forward{{Name: "bench", Target: target}}})
	return r.Addrs("bench")[0].String()
}
