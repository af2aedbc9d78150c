package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// floorPayload is what one floor round trip carries: the frames of a routed
// container request (op, request id, [cs, [uuid, op, data]]), so that the
// floor moves the bytes a routed request moves on its first hop.
var floorPayload = []byte("1" + "5f1c9f3e-0b7a-4b7e-9a55-1d2c3b4a5e6f-12" + `["cs",["bench-0","echo","xxxxxxxxxxxxxxxx"]]`)

// maxFloorMessage bounds what the echo server accepts: it only ever sees
// floorPayload, anything larger is a stray client.
const maxFloorMessage = 64 << 10

// ServeTCPEcho runs a plain Go TCP echo on ln until ctx ends: each message
// is a 4-byte big-endian length and that many bytes, sent back as they
// came, with one flush per batch of what was read. This is the floor: the
// least a request/response over loopback costs in Go on this machine.
func ServeTCPEcho(ctx context.Context, ln net.Listener) error {
	var (
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
		wg    sync.WaitGroup
	)
	stop := context.AfterFunc(ctx, func() {
		_ = ln.Close()
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
	})
	defer stop()
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("tcp echo accept: %w", err)
		}
		mu.Lock()
		if ctx.Err() != nil {
			mu.Unlock()
			_ = c.Close()
			return nil
		}
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
				_ = c.Close()
			}()
			echoConn(c)
		}()
	}
}

func echoConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	br := bufio.NewReader(c)
	bw := bufio.NewWriter(c)
	buf := make([]byte, maxFloorMessage)
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > maxFloorMessage {
			return
		}
		if _, err := io.ReadFull(br, buf[:n]); err != nil {
			return
		}
		_, _ = bw.Write(hdr[:])
		_, _ = bw.Write(buf[:n])
		if br.Buffered() == 0 {
			if bw.Flush() != nil {
				return
			}
		}
	}
}

// floorConn is one client connection of the floor.
type floorConn struct {
	c   net.Conn
	br  *bufio.Reader
	msg []byte
}

func dialFloor(ctx context.Context, addr string) (*floorConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial tcp echo %s: %w", addr, err)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	msg := make([]byte, 4, 4+len(floorPayload))
	binary.BigEndian.PutUint32(msg, uint32(len(floorPayload)))
	msg = append(msg, floorPayload...)
	return &floorConn{c: c, br: bufio.NewReader(c), msg: msg}, nil
}

func (f *floorConn) roundTrip() error {
	if _, err := f.c.Write(f.msg); err != nil {
		return err
	}
	var hdr [4]byte
	if _, err := io.ReadFull(f.br, hdr[:]); err != nil {
		return err
	}
	n := int(binary.BigEndian.Uint32(hdr[:]))
	if n != len(floorPayload) {
		return fmt.Errorf("tcp echo answered %d bytes, sent %d", n, len(floorPayload))
	}
	_, err := f.br.Discard(n)
	return err
}

// FloorOptions configure RunFloor.
type FloorOptions struct {
	// Parallel connections doing one round trip at a time each, for
	// ParallelFor. Default 100.
	Parallel    int
	ParallelFor time.Duration
	// SequentialFor is how long one connection does round trips one after
	// another.
	SequentialFor time.Duration
	// Connects is how many times a connection is dialled, used for one
	// round trip and closed, one after another.
	Connects int
}

// FloorResult is the floor's measurement.
type FloorResult struct {
	Parallel          int     `json:"parallel"`
	RequestsPerSecond float64 `json:"requests_per_second"`
	ParallelLatency   Latency `json:"parallel_latency"`
	Sequential        Latency `json:"sequential"`
	// Connect is dial + one round trip + close, one after another.
	Connect Latency `json:"connect"`
}

// RunFloor measures a TCP echo at addr (ServeTCPEcho): many connections in
// parallel, one connection sequentially, and sequential connects.
func RunFloor(ctx context.Context, addr string, o FloorOptions) (FloorResult, error) {
	if o.Parallel <= 0 {
		o.Parallel = 100
	}
	res := FloorResult{Parallel: o.Parallel}
	if o.ParallelFor > 0 {
		rps, lat, err := floorParallel(ctx, addr, o.Parallel, o.ParallelFor)
		if err != nil {
			return res, err
		}
		res.RequestsPerSecond, res.ParallelLatency = rps, lat
	}
	if o.SequentialFor > 0 {
		_, lat, err := floorParallel(ctx, addr, 1, o.SequentialFor)
		if err != nil {
			return res, err
		}
		res.Sequential = lat
	}
	if o.Connects > 0 {
		lat := make([]time.Duration, 0, o.Connects)
		for i := 0; i < o.Connects; i++ {
			t0 := time.Now()
			fc, err := dialFloor(ctx, addr)
			if err != nil {
				return res, err
			}
			err = fc.roundTrip()
			_ = fc.c.Close()
			if err != nil {
				return res, fmt.Errorf("tcp echo round trip: %w", err)
			}
			lat = append(lat, time.Since(t0))
		}
		res.Connect = Summarize(lat)
	}
	return res, nil
}

// floorParallel runs n connections, each doing sequential round trips for d.
func floorParallel(ctx context.Context, addr string, n int, d time.Duration) (float64, Latency, error) {
	conns := make([]*floorConn, 0, n)
	defer func() {
		for _, fc := range conns {
			_ = fc.c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		fc, err := dialFloor(ctx, addr)
		if err != nil {
			return 0, Latency{}, err
		}
		conns = append(conns, fc)
	}
	runCtx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	// A server that stops answering must not hold us past ctx.
	stop := context.AfterFunc(ctx, func() {
		for _, fc := range conns {
			_ = fc.c.SetDeadline(time.Unix(1, 0))
		}
	})
	defer stop()

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		all      []time.Duration
		firstErr atomic.Pointer[error]
	)
	start := time.Now()
	for _, fc := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 4096)
			for runCtx.Err() == nil {
				t0 := time.Now()
				if err := fc.roundTrip(); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					break
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if ctx.Err() != nil {
		return 0, Latency{}, fmt.Errorf("tcp echo floor: %w", ctx.Err())
	}
	if e := firstErr.Load(); e != nil {
		return 0, Latency{}, fmt.Errorf("tcp echo round trip: %w", *e)
	}
	if len(all) == 0 {
		return 0, Latency{}, errors.New("tcp echo floor: no round trip completed")
	}
	return roundTo(float64(len(all))/elapsed.Seconds(), 1), Summarize(all), nil
}
