package backrpc

import (
	"fmt"
	"time"

	"github.com/sirupsen/logrus"
)

// DefaultMaxServerInflight bounds the requests in flight over all clients
// of a server. A request beyond it is answered "retry 1" (op retry, which
// TS 0.7 clients understand: they send it again a tick later) at once,
// instead of queueing work that would answer only after the caller gave
// up.
const DefaultMaxServerInflight = 8192

// overloadWarnEvery spaces the warnings about refused requests.
const overloadWarnEvery = 5 * time.Second

type overloadState struct {
	inflight int
	refused  uint64
	lastWarn time.Time
}

// overloadedLocked reports whether a request of ss must be refused for the
// server-wide bound, and counts and logs it (at most one warning per
// overloadWarnEvery, naming the client and the limit). s.mu is held.
func (s *Server) overloadedLocked(ss *session) bool {
	o := &s.overload
	if o.inflight < s.opts.MaxServerInflight {
		return false
	}
	o.refused++
	s.retries.Add(1)
	if now := time.Now(); now.Sub(o.lastWarn) >= overloadWarnEvery {
		o.lastWarn = now
		s.log.WithFields(logrus.Fields{
			"client": ShortID(ss.info.ID), "peer": fmt.Sprintf("%x", ss.info.Peer),
			"max_server_inflight": s.opts.MaxServerInflight, "refused_total": o.refused,
		}).Warn("overloaded: requests in flight at the server-wide limit; answering retry")
	}
	return true
}

// OverloadStats are the counts of the server-wide bound.
type OverloadStats struct {
	Inflight int    // requests in flight now, over all clients
	Refused  uint64 // requests answered retry for the bound
}

// Overload returns the counts of the server-wide bound on requests in
// flight.
func (s *Server) Overload() OverloadStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return OverloadStats{Inflight: s.overload.inflight, Refused: s.overload.refused}
}

// SendEvents sends an event (op 4) to every connected client: the payload
// payloadFor returns for it, nothing when that is empty. Clients are
// listed under the lock, payloads are built and sent without it. It
// returns how many events were queued.
func (s *Server) SendEvents(payloadFor func(ClientInfo) []byte) int {
	s.mu.Lock()
	infos := make([]ClientInfo, 0, len(s.byID))
	for _, ss := range s.byID {
		if ss.detached == nil {
			infos = append(infos, ss.info)
		}
	}
	s.mu.Unlock()
	n := 0
	var frames [][]byte
	var last []byte
	for _, info := range infos {
		p := payloadFor(info)
		if len(p) == 0 {
			continue
		}
		// Clients given the same payload (the whole batch) share its
		// frames.
		if frames == nil || &p[0] != &last[0] || len(p) != len(last) {
			frames = EncodeServer(Message{Op: OpEvent, Payload: p})
			last = p
		}
		if s.out.Send(info.Peer, frames...) == nil {
			n++
		}
	}
	return n
}
