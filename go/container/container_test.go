package container_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/client/clienttest"
	"github.com/huly-net/huly-net/go/container"
	"github.com/huly-net/huly-net/go/internal/testutil"
)

type impl struct {
	host    *container.Host
	stopped chan struct{}
	conns   chan string
}

func (i *impl) Start(_ context.Context, h *container.Host) error { i.host = h; return nil }
func (i *impl) Stop(context.Context) error                       { close(i.stopped); return nil }
func (i *impl) Connected(id string)                              { i.conns <- "+" + id }
func (i *impl) Disconnected(id string)                           { i.conns <- "-" + id }
func (i *impl) Request(_ context.Context, clientID, op string, data json.RawMessage) (any, error) {
	switch op {
	case "fail":
		return nil, errors.New("asked to fail")
	case "shout":
		return map[string]int{"to": i.host.Broadcast(json.RawMessage(data))}, nil
	}
	return map[string]any{"op": op, "client": clientID, "data": data, "uuid": i.host.Info().UUID}, nil
}

func TestInfoFromEnv(t *testing.T) {
	env := map[string]string{
		"HULY_CONTAINER_UUID": "u1", "HULY_CONTAINER_KIND": "k", "HULY_CONTAINER_LABELS": `["a","b"]`,
		"HULY_CONTAINER_EXTRA": `{"x":1}`, "HULY_LISTEN": "127.0.0.1:9000",
	}
	in, err := container.InfoFromEnv(func(k string) string { return env[k] })
	require.NoError(t, err)
	assert.Equal(t, container.Info{UUID: "u1", Kind: "k", Labels: []string{"a", "b"}, Extra: json.RawMessage(`{"x":1}`), Listen: "127.0.0.1:9000"}, in)

	env["HULY_CONTAINER_LABELS"] = "a, b"
	in, err = container.InfoFromEnv(func(k string) string { return env[k] })
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b"}, in.Labels, "comma separated labels work too")

	for key, bad := range map[string]string{"HULY_CONTAINER_UUID": "", "HULY_CONTAINER_EXTRA": "{", "HULY_LISTEN": "nowhere", "HULY_LISTEN_FD": "1", "HULY_RELAY_LISTEN": "tcp:x"} {
		e := map[string]string{}
		for k, v := range env {
			e[k] = v
		}
		e[key] = bad
		_, err := container.InfoFromEnv(func(k string) string { return e[k] })
		require.Error(t, err, key)
		assert.Contains(t, err.Error(), key)
	}
}

func TestServeReadyRequestsEventsStop(t *testing.T) {
	notifyPath, notes := testutil.NotifySocket(t)
	t.Setenv("NOTIFY_SOCKET", notifyPath)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f, err := ln.(*net.TCPListener).File()
	require.NoError(t, err)
	_ = ln.Close()
	defer f.Close()
	// The process runtime passes its listener as a descriptor.
	// Serve owns (and closes) the descriptor it is given: give it a copy.
	fd, err := syscall.Dup(int(f.Fd()))
	require.NoError(t, err)
	env := map[string]string{"HULY_CONTAINER_UUID": "c1", "HULY_CONTAINER_KIND": "k", "HULY_LISTEN_FD": itoa(fd)}

	im := &impl{stopped: make(chan struct{}), conns: make(chan string, 8)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan *container.Host, 1)
	done := make(chan error, 1)
	go func() {
		done <- container.ServeWith(ctx, im, container.Options{
			Getenv: func(k string) string { return env[k] }, NoSignals: true, Logger: clienttest.Quiet(),
			OnReady: func(h *container.Host) { ready <- h },
		})
	}()
	testutil.WaitFor(t, notes, "READY=1", clienttest.WaitFor)
	h := <-ready
	addr := h.Addr().String()

	events := make(chan json.RawMessage, 4)
	cl, err := backrpc.Dial(addr, backrpc.ClientOptions{Logger: clienttest.Quiet()}, backrpc.ClientHandler{
		OnEvent: func(p json.RawMessage) { events <- p },
	})
	require.NoError(t, err)
	rctx := clienttest.Ctx(t)
	res, err := cl.Request(rctx, "hello", map[string]int{"n": 1})
	require.NoError(t, err)
	assert.JSONEq(t, `{"op":"hello","client":"`+cl.ID()+`","data":{"n":1},"uuid":"c1"}`, string(res), "the method is the operation")
	assert.Equal(t, "+"+cl.ID(), <-im.conns)

	_, err = cl.Request(rctx, "fail", nil)
	var re *backrpc.RemoteError
	require.ErrorAs(t, err, &re)
	assert.Contains(t, re.Message, "asked to fail")

	_, err = cl.Request(rctx, "shout", map[string]string{"hi": "all"})
	require.NoError(t, err)
	select {
	case ev := <-events:
		assert.JSONEq(t, `{"hi":"all"}`, string(ev), "events are the broadcast data as is")
	case <-rctx.Done():
		require.FailNow(t, "no event")
	}
	require.NoError(t, cl.Close(rctx))
	assert.Equal(t, "-"+cl.ID(), <-im.conns)

	cancel()
	testutil.WaitFor(t, notes, "STOPPING=1", clienttest.WaitFor)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(clienttest.WaitFor):
		require.FailNow(t, "Serve did not return")
	}
	<-im.stopped
}

func TestServeWithoutUUIDFails(t *testing.T) {
	err := container.ServeWith(context.Background(), &impl{}, container.Options{Getenv: func(string) string { return "" }, NoSignals: true, Logger: clienttest.Quiet()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "HULY_CONTAINER_UUID")
}

func itoa(n int) string { return fmtInt(n) }

func fmtInt(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
