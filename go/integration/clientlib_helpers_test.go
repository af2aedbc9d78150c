package integration

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/network"
)

func skipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("multi-component test: skipped under -short")
	}
}

// proxy forwards TCP connections to a target until Kill, which cuts them
// all at once: to a server, the peers behind it fall silent as if their
// process had died. Revive listens again on the same port.
type proxy struct {
	t      testing.TB
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	p := &proxy{t: t, target: target, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(func() {
		p.Kill()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", p.target)
			if err != nil {
				_ = in.Close()
				continue
			}
			if !p.track(in, out) {
				return
			}
			for _, pair := range [][2]net.Conn{{in, out}, {out, in}} {
				p.wg.Add(1)
				go func() {
					defer p.wg.Done()
					_, _ = io.Copy(pair[0], pair[1])
					_ = pair[0].Close()
					_ = pair[1].Close()
				}()
			}
		}
	}()
}

func (p *proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		for _, c := range cs {
			_ = c.Close()
		}
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

// Kill closes the listener and every connection.
func (p *proxy) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
	}
	p.conns = map[net.Conn]struct{}{}
}

// Revive listens again on the same address.
func (p *proxy) Revive() {
	ln, err := net.Listen("tcp", p.addr)
	require.NoError(p.t, err)
	p.serve(ln)
}

// gate is a container kind whose "wait" operation blocks until the gate
// opens; other operations echo. It counts the waits it has seen.
type gate struct {
	open    chan struct{}
	once    sync.Once
	waiting atomic.Int64
	name    string
}

func newGate(name string) *gate { return &gate{open: make(chan struct{}), name: name} }

func (g *gate) Open() { g.once.Do(func() { close(g.open) }) }

func (g *gate) factory(_ context.Context, uuid string, _ network.GetOptions) (agent.Container, error) {
	return &gated{g: g, uuid: uuid}, nil
}

type gated struct {
	agent.Broadcaster
	g    *gate
	uuid string
}

func (c *gated) Request(ctx context.Context, clientID, op string, data json.RawMessage) (any, error) {
	if op == "wait" {
		c.g.waiting.Add(1)
		select {
		case <-c.g.open:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if op == "fail" {
		return nil, errors.New("asked to fail")
	}
	return map[string]any{"uuid": c.uuid, "op": op, "data": data, "served_by": c.g.name}, nil
}
func (c *gated) Terminate(context.Context) error { return nil }
func (c *gated) Ping(context.Context) error      { return nil }
