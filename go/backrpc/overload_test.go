package backrpc

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/transport"
)

// Beyond the server-wide bound a request is answered retry at once (the
// op TS 0.7 clients understand), not left to time out; once requests
// finish, new ones are served again.
func TestServerWideInflightBoundAnswersRetry(t *testing.T) {
	release := make(chan struct{})
	s, out := newDispatchServer(t, ServerOptions{MaxServerInflight: 2}, ServerHandler{
		HandleRequest: func(ctx context.Context, _ ClientInfo, method string, _ json.RawMessage) (any, error) {
			if method == "block" {
				select {
				case <-release:
				case <-ctx.Done():
				}
			}
			return "ok", nil
		},
	})
	for _, p := range []string{"p1", "p2", "p3"} {
		s.handleMessage(transport.PeerID(p), EncodeClient(Message{Op: OpHello, ID: "c-" + p}))
		out.next(t)
	}
	// Two clients fill the bound.
	s.handleMessage("p1", frames("1", "r1", `["block",null]`))
	s.handleMessage("p2", frames("1", "r2", `["block",null]`))
	require.Eventually(t, func() bool { return s.Overload().Inflight == 2 }, waitFor, 5*time.Millisecond)
	// A third, another client, is told to retry at once.
	s.handleMessage("p3", frames("1", "r3", `["quick",null]`))
	to, m := out.next(t)
	assert.Equal(t, transport.PeerID("p3"), to)
	assert.Equal(t, OpRetry, m.Op)
	assert.Equal(t, "r3", m.ID)
	assert.Equal(t, retryOne, string(m.Payload))
	assert.Equal(t, uint64(1), s.Overload().Refused)

	close(release)
	for range 2 {
		_, m := out.next(t)
		assert.Equal(t, OpResponse, m.Op)
	}
	require.Eventually(t, func() bool { return s.Overload().Inflight == 0 }, waitFor, 5*time.Millisecond)
	s.handleMessage("p3", frames("1", "r4", `["quick",null]`))
	_, m = out.next(t)
	assert.Equal(t, OpResponse, m.Op, "served again")
	assert.Equal(t, "r4", m.ID)
}

// SendEvents sends each client its own payload, nothing for an empty one.
func TestSendEventsPerClient(t *testing.T) {
	s, out := newDispatchServer(t, ServerOptions{}, ServerHandler{})
	s.handleMessage("p1", EncodeClient(Message{Op: OpHello, ID: "a"}))
	out.next(t)
	s.handleMessage("p2", EncodeClient(Message{Op: OpHello, ID: "b"}))
	out.next(t)
	n := s.SendEvents(func(c ClientInfo) []byte {
		if c.ID == "a" {
			return []byte(`{"for":"a"}`)
		}
		return nil
	})
	assert.Equal(t, 1, n)
	to, m := out.next(t)
	assert.Equal(t, transport.PeerID("p1"), to)
	assert.Equal(t, OpEvent, m.Op)
	assert.Equal(t, `{"for":"a"}`, string(m.Payload))
	out.empty(t)
}
