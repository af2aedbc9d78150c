package backrpc

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// Reply answers a request taken by ServerHandler.HandleRequestAsync. It
// must be called exactly once; it never blocks. A nil error sends res (raw
// JSON, sent as it is; empty is null) as the response, an error a
// responseError.
type Reply func(res json.RawMessage, err error)

// CallAsync sends a back-request whose payload is already encoded
// ([method, params], see EncodeRequestPayload) to a connected client, and
// returns at once. done is called exactly once: with the answer, on the
// goroutine that read it; with an error when the client's connection is
// lost, the server closes, or timeout (when positive) passes first. done
// must not block: it runs on a transport goroutine.
//
// It is Call without a goroutine waiting for the answer: a server that
// only forwards (a routed request to an agent) answers its own client from
// done, with no hand-off between goroutines on the way.
func (s *Server) CallAsync(clientID, method string, payload []byte, timeout time.Duration, done func(json.RawMessage, error)) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		done(nil, ErrServerClosed)
		return
	}
	ss := s.byID[clientID]
	if ss == nil {
		s.mu.Unlock()
		done(nil, fmt.Errorf("call %s on %s: %w", method, clientID, ErrUnknownClient))
		return
	}
	id := RequestID(clientID, s.callSeq)
	s.callSeq++
	c := &call{clientID: clientID, peer: ss.info.Peer}
	c.fn = func(r callResult) {
		if c.timer != nil {
			c.timer.Stop()
		}
		if r.err != nil {
			done(nil, fmt.Errorf("call %s on %s: %w", method, clientID, r.err))
			return
		}
		done(r.raw, nil)
	}
	s.calls[id] = c
	if timeout > 0 {
		// Whoever removes the call from s.calls resolves it: the
		// response, a lost connection, the shutdown or this timer.
		c.timer = time.AfterFunc(timeout, func() {
			if s.forgetCall(id, c) {
				c.fn(callResult{err: context.DeadlineExceeded})
			}
		})
	}
	s.mu.Unlock()

	s.callsSent.Add(1)
	if err := s.out.Send(c.peer, EncodeServer(Message{Op: OpRequest, ID: id, Payload: payload})...); err != nil {
		if s.forgetCall(id, c) {
			c.fn(callResult{err: err})
		}
	}
}

// resolve hands a back-request its result: to the goroutine waiting in
// Call, or to CallAsync's callback. Callers hold no lock unless inline is
// false, in which case a callback runs on its own goroutine.
func (c *call) resolve(r callResult, inline bool) {
	if c.fn == nil {
		c.done <- r
		return
	}
	if inline {
		c.fn(r)
		return
	}
	go c.fn(r)
}

// runAsync offers a request to HandleRequestAsync; false when it declined
// (the request then runs on a worker).
func (s *Server) runAsync(ss *session, info ClientInfo, id string, method string, params json.RawMessage) (taken bool) {
	var answered atomic.Bool
	reply := func(res json.RawMessage, err error) {
		if !answered.CompareAndSwap(false, true) {
			s.log.WithFields(logrus.Fields{"method": method, "id": id}).Error("request answered twice; the second answer is dropped")
			return
		}
		s.finishRequest(ss, info, id, method, res, err)
	}
	defer func() {
		// It runs on a transport goroutine: a panic must not end the
		// daemon. The request is answered unless it already was.
		if r := recover(); r != nil {
			s.log.WithFields(logrus.Fields{"method": method, "client": info.ID, "panic": r}).
				Errorf("request handler panicked\n%s", debug.Stack())
			reply(nil, fmt.Errorf("internal error in %s", method))
			taken = true
		}
	}()
	return s.h.HandleRequestAsync(s.ctx, info, method, params, reply)
}

// finishRequest answers a request whose handler has returned: it is no
// longer in flight, and the answer goes to the client's current
// connection.
func (s *Server) finishRequest(ss *session, info ClientInfo, id, method string, res any, err error) {
	defer s.handlers.Done()
	op := OpResponse
	var payload []byte
	if err == nil {
		payload, err = MarshalJSON(res)
		if err != nil {
			err = fmt.Errorf("encode result of %s: %w", method, err)
		}
	}
	if err != nil {
		if s.ctx.Err() != nil {
			// Most likely the shutdown's cancellation: stay silent, so that
			// the client resends the request to the next server instead
			// of taking "context canceled" for an answer.
			return
		}
		s.handlerErrs.Add(1)
		op = OpResponseError
		payload = EncodeErrorPayload(err)
	}

	s.mu.Lock()
	if _, ok := ss.inflight[id]; ok {
		delete(ss.inflight, id)
		s.overload.inflight--
	}
	peer := info.Peer
	if cur := s.byID[info.ID]; cur != nil {
		peer = cur.info.Peer // it may have reconnected meanwhile
	}
	s.mu.Unlock()
	s.send(peer, op, id, payload)
}
