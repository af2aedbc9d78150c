package transport

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// The request a client sends most: a routed container request.
var benchFrames = [][]byte{[]byte("1"), []byte("5f1c9f3e-0b7a-4b7e-9a55-1d2c3b4a5e6f-12"), []byte(`["cs",["bench-0","echo",{"n":1}]]`)}

func benchMsgBytes() int {
	n := 0
	for _, f := range benchFrames {
		n += len(f)
	}
	return n
}

// --- our ROUTER/DEALER ---

type zmqEcho struct {
	r *Router
}

func startZmqEcho(b *testing.B, opts ...Options) *zmqEcho {
	o := Options{}
	if len(opts) > 0 {
		o = opts[0]
	}
	o.SendQueue = 1 << 16
	r, err := replyingRouter("127.0.0.1:0", o, func(r *Router, p PeerID, f [][]byte) { _ = r.Send(p, f...) })
	require.NoError(b, err)
	return &zmqEcho{r: r}
}

type zmqClient struct {
	d    *Dealer
	recv chan struct{}
	conn chan struct{}
}

// newZmqClient connects a Dealer; onMessage, when given, runs on the read
// goroutine (as the TCP client's reader does), else replies go to recv.
func newZmqClient(b *testing.B, addr string, onMessage func(), opts ...Options) *zmqClient {
	o := Options{}
	if len(opts) > 0 {
		o = opts[0]
	}
	o.SendQueue = 1 << 16
	c := &zmqClient{recv: make(chan struct{}, 1<<16), conn: make(chan struct{}, 1)}
	if onMessage == nil {
		onMessage = func() { c.recv <- struct{}{} }
	}
	c.d = Dial(addr, DealerHandler{
		OnConnect: func() { c.conn <- struct{}{} },
		OnMessage: func([][]byte) { onMessage() },
	}, DealerOptions{Options: o})
	<-c.conn
	return c
}

// --- plain TCP: the same bytes with a 4-byte length prefix ---

func startTCPEcho(b *testing.B) (net.Listener, *sync.WaitGroup) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				bw := bufio.NewWriter(c)
				var hdr [4]byte
				buf := make([]byte, 64<<10)
				for {
					if _, err := io.ReadFull(br, hdr[:]); err != nil {
						return
					}
					n := binary.BigEndian.Uint32(hdr[:])
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
			}()
		}
	}()
	return ln, &wg
}

type tcpClient struct {
	c  net.Conn
	br *bufio.Reader
	bw *bufio.Writer
	mu sync.Mutex
}

func newTCPClient(b *testing.B, addr string) *tcpClient {
	c, err := net.Dial("tcp", addr)
	require.NoError(b, err)
	return &tcpClient{c: c, br: bufio.NewReader(c), bw: bufio.NewWriter(c)}
}

var tcpPayload = func() []byte {
	p := make([]byte, 4, 4+benchMsgBytes())
	binary.BigEndian.PutUint32(p, uint32(benchMsgBytes()))
	for _, f := range benchFrames {
		p = append(p, f...)
	}
	return p
}()

func (t *tcpClient) send(flush bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, err := t.bw.Write(tcpPayload); err != nil {
		return err
	}
	if flush {
		return t.bw.Flush()
	}
	return nil
}

func (t *tcpClient) recv() error {
	var hdr [4]byte
	if _, err := io.ReadFull(t.br, hdr[:]); err != nil {
		return err
	}
	_, err := t.br.Discard(int(binary.BigEndian.Uint32(hdr[:])))
	return err
}

// BenchmarkEcho compares our ROUTER/DEALER with a plain Go TCP echo of the
// same bytes: "pipelined" keeps a window of requests in flight on one
// connection, "clients100" runs 100 connections doing one round trip at a
// time. Compare ns/op between the zmq and tcp sub-benchmarks.
func BenchmarkEcho(b *testing.B) {
	const window = 256
	for _, sec := range benchSecurity(b) {
		b.Run("pipelined/"+sec.name, func(b *testing.B) {
			srv := startZmqEcho(b, sec.server)
			defer srv.r.Close()
			sem := make(chan struct{}, window)
			done := make(chan struct{})
			n := 0
			c := newZmqClient(b, srv.r.Addr().String(), func() {
				<-sem
				if n++; n == b.N {
					close(done)
				}
			}, sec.client)
			defer c.d.Close()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				sem <- struct{}{}
				if err := c.d.Send(benchFrames...); err != nil {
					b.Fatal(err)
				}
			}
			<-done
		})
	}
	b.Run("pipelined/tcp", func(b *testing.B) {
		ln, wg := startTCPEcho(b)
		defer wg.Wait()
		defer ln.Close()
		c := newTCPClient(b, ln.Addr().String())
		defer c.c.Close()
		sem := make(chan struct{}, window)
		done := make(chan struct{})
		go func() {
			for i := 0; i < b.N; i++ {
				if err := c.recv(); err != nil {
					b.Error(err)
					break
				}
				<-sem
			}
			close(done)
		}()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			sem <- struct{}{}
			// Flush when the window is full or at the end, as a
			// writer with nothing more to say would.
			if err := c.send(len(sem) == window || i == b.N-1 || len(sem) == 1); err != nil {
				b.Fatal(err)
			}
		}
		<-done
	})
	for _, sec := range benchSecurity(b) {
		b.Run("clients100/"+sec.name, func(b *testing.B) {
			srv := startZmqEcho(b, sec.server)
			defer srv.r.Close()
			clients := make([]*zmqClient, 100)
			for i := range clients {
				clients[i] = newZmqClient(b, srv.r.Addr().String(), nil, sec.client)
				defer clients[i].d.Close()
			}
			b.ResetTimer()
			runParallelClients(b.N, len(clients), func(i int) {
				c := clients[i]
				if err := c.d.Send(benchFrames...); err != nil {
					b.Error(err)
					return
				}
				<-c.recv
			})
		})
	}
	b.Run("clients100/tcp", func(b *testing.B) {
		ln, wg := startTCPEcho(b)
		defer wg.Wait()
		defer ln.Close()
		clients := make([]*tcpClient, 100)
		for i := range clients {
			clients[i] = newTCPClient(b, ln.Addr().String())
			defer clients[i].c.Close()
		}
		b.ResetTimer()
		runParallelClients(b.N, len(clients), func(i int) {
			c := clients[i]
			if err := c.send(true); err != nil {
				b.Error(err)
				return
			}
			if err := c.recv(); err != nil {
				b.Error(err)
			}
		})
	})
}

// runParallelClients spreads n round trips over k clients, each sequential.
func runParallelClients(n, k int, roundTrip func(client int)) {
	var wg sync.WaitGroup
	for c := 0; c < k; c++ {
		share := n / k
		if c < n%k {
			share++
		}
		wg.Add(1)
		go func(c, share int) {
			defer wg.Done()
			for i := 0; i < share; i++ {
				roundTrip(c)
			}
		}(c, share)
	}
	wg.Wait()
}

// benchSecurity is the security matrix of the benchmarks: "zmq" is NULL
// security, "zmq-curve" CURVE.
func benchSecurity(b *testing.B) []struct {
	name           string
	server, client Options
} {
	server := mustKeyPair(b)
	client := mustKeyPair(b)
	return []struct {
		name           string
		server, client Options
	}{
		{"zmq", Options{}, Options{}},
		{"zmq-curve", Options{CurveServer: &server}, Options{CurveClient: &client, CurveServerKey: server.Public}},
	}
}

// BenchmarkConnect is a DEALER's connection to a ROUTER, from dial to
// OnConnect (the handshake done), one at a time, with NULL and CURVE
// security.
func BenchmarkConnect(b *testing.B) {
	for _, sec := range benchSecurity(b) {
		b.Run(sec.name, func(b *testing.B) {
			srv := startZmqEcho(b, sec.server)
			defer srv.r.Close()
			addr := srv.r.Addr().String()
			conn := make(chan struct{}, 1)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				d := Dial(addr, DealerHandler{OnConnect: func() { conn <- struct{}{} }}, DealerOptions{Options: sec.client})
				<-conn
				b.StopTimer()
				_ = d.Close()
				b.StartTimer()
			}
		})
	}
}
