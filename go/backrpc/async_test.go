package backrpc

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/transport"
)

type asyncResult struct {
	raw json.RawMessage
	err error
}

func callAsync(s *Server, clientID string, payload string, timeout time.Duration) chan asyncResult {
	ch := make(chan asyncResult, 1)
	s.CallAsync(clientID, "cs", []byte(payload), timeout, func(raw json.RawMessage, err error) { ch <- asyncResult{raw, err} })
	return ch
}

func waitResult(t *testing.T, ch chan asyncResult) asyncResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(waitFor):
		require.FailNow(t, "CallAsync did not call back")
		return asyncResult{}
	}
}

func TestCallAsyncResolvesOnceWithTheAnswerOrTheFailure(t *testing.T) {
	s, out := newDispatchServer(t, ServerOptions{}, ServerHandler{})
	s.handleMessage("p", EncodeClient(Message{Op: OpHello, ID: "c"}))
	out.next(t)

	r := waitResult(t, callAsync(s, "nobody", `["cs",null]`, 0))
	assert.ErrorIs(t, r.err, ErrUnknownClient)

	// The answer, as it came.
	ch := callAsync(s, "c", `["cs",["a",["u","echo",1]]]`, time.Minute)
	to, m := out.next(t)
	assert.Equal(t, transport.PeerID("p"), to)
	assert.Equal(t, OpRequest, m.Op)
	assert.Equal(t, `["cs",["a",["u","echo",1]]]`, string(m.Payload))
	s.handleMessage("p", frames("2", m.ID, `{"data":1}`))
	r = waitResult(t, ch)
	require.NoError(t, r.err)
	assert.Equal(t, `{"data":1}`, string(r.raw))
	assert.Equal(t, 0, s.Stats().CallsInFlight)

	// A remote error.
	ch = callAsync(s, "c", `["cs",null]`, time.Minute)
	_, m = out.next(t)
	s.handleMessage("p", frames("3", m.ID, `{"message":"Agent down","stack":"at x"}`))
	var re *RemoteError
	require.ErrorAs(t, waitResult(t, ch).err, &re)
	assert.Equal(t, "Agent down", re.Message)

	// The timeout; a late answer is then ignored.
	ch = callAsync(s, "c", `["cs",null]`, 20*time.Millisecond)
	_, m = out.next(t)
	assert.ErrorIs(t, waitResult(t, ch).err, context.DeadlineExceeded)
	s.handleMessage("p", frames("2", m.ID, `"late"`))
	assert.Empty(t, ch, "resolved once")

	// A lost connection.
	ch = callAsync(s, "c", `["cs",null]`, time.Minute)
	out.next(t)
	s.handleDisconnect("p")
	assert.ErrorIs(t, waitResult(t, ch).err, ErrClientGone)

	// A close (the call is failed with the lock held: the callback still runs).
	ch = callAsync(s, "c", `["cs",null]`, time.Minute)
	out.next(t)
	s.handleMessage("p", EncodeClient(Message{Op: OpClose}))
	assert.ErrorIs(t, waitResult(t, ch).err, ErrClientGone)
	assert.Equal(t, 0, s.Stats().CallsInFlight)
}

func TestCallAsyncFailsOnShutdown(t *testing.T) {
	s, out := newDispatchServer(t, ServerOptions{}, ServerHandler{})
	s.handleMessage("p", EncodeClient(Message{Op: OpHello, ID: "c"}))
	out.next(t)
	ch := callAsync(s, "c", `["cs",null]`, time.Minute)
	out.next(t)
	require.NoError(t, s.Close())
	assert.ErrorIs(t, waitResult(t, ch).err, ErrServerClosed)
	assert.ErrorIs(t, waitResult(t, callAsync(s, "c", `["cs",null]`, 0)).err, ErrServerClosed)
}

func TestHandleRequestAsyncTakesOrDeclines(t *testing.T) {
	replies := make(chan Reply, 1)
	s, out := newDispatchServer(t, ServerOptions{}, ServerHandler{
		HandleRequest: echoHandler,
		HandleRequestAsync: func(_ context.Context, _ ClientInfo, method string, _ json.RawMessage, reply Reply) bool {
			if method != "async" {
				return false
			}
			replies <- reply
			return true
		},
	})
	s.handleMessage("p", EncodeClient(Message{Op: OpHello, ID: "c"}))
	out.next(t)

	// Declined: HandleRequest answers.
	s.handleMessage("p", frames("1", "r1", `["echo",{"x":1}]`))
	_, m := out.next(t)
	assert.Equal(t, OpResponse, m.Op)
	assert.Equal(t, "r1", m.ID)

	// Taken: in flight until the reply, answered once, raw.
	s.handleMessage("p", frames("1", "r2", `["async",null]`))
	var reply Reply
	select {
	case reply = <-replies:
	case <-time.After(waitFor):
		require.FailNow(t, "HandleRequestAsync not called")
	}
	out.empty(t)
	s.handleMessage("p", frames("1", "r2", `["async",null]`))
	assert.Equal(t, uint64(1), s.Stats().Duplicates, "a request taken is in flight")
	reply(json.RawMessage(`{"ok":true}`), nil)
	_, m = out.next(t)
	assert.Equal(t, OpResponse, m.Op)
	assert.Equal(t, "r2", m.ID)
	assert.Equal(t, `{"ok":true}`, string(m.Payload))
	reply(json.RawMessage(`"again"`), nil)
	out.empty(t)

	// An error is a responseError.
	s.handleMessage("p", frames("1", "r3", `["async",null]`))
	reply = <-replies
	reply(nil, errors.New("no such container"))
	_, m = out.next(t)
	assert.Equal(t, OpResponseError, m.Op)
	assert.Contains(t, string(m.Payload), "no such container")
	// Every request finished: shutdown does not wait.
	require.NoError(t, s.Close())
}
