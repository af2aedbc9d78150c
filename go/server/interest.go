package server

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/network"
)

// MethodWatch is the method a client that receives events by interest
// (backrpc.CapInterest) calls to say what it wants besides what concerns
// it: params {"all"?: bool, "kinds"?: [kind], "uuids"?: [uuid]}, which
// replace its previous subscription; answer "ok". The prefix "go." is one
// no TS 0.7 method has: a 0.7 server answers it "Unknown method".
const MethodWatch = "go.watch"

// handleExtension answers the methods of the Go extensions; ok is false
// for a method it does not know.
func (s *Server) handleInterestExtension(c backrpc.ClientInfo, method string, params json.RawMessage) (res any, ok bool, err error) {
	switch method {
	case MethodWatch:
		var sub network.Subscription
		if len(params) > 0 {
			if err := json.Unmarshal(params, &sub); err != nil {
				return nil, true, fmt.Errorf("%s: %w: %w", method, network.ErrInvalidParams, err)
			}
		}
		if err := s.net.Watch(network.ClientID(c.ID), sub); err != nil {
			if errors.Is(err, network.ErrTooManySubscriptions) {
				s.log.WithField("client", backrpc.ShortID(c.ID)).WithField("peer", fmt.Sprintf("%x", c.Peer)).
					WithField("max_subscriptions", s.opts.MaxSubscriptions).Warn("refused a watch: too many kinds and uuids")
				s.refusedWatches.Add(1)
			}
			return nil, true, err
		}
		return "ok", true, nil
	}
	return nil, false, nil
}

// noteGet keeps the client of a failed get interested in what it waits
// for (network.GetFailed), and ends that when a get succeeds.
func (s *Server) noteGet(c backrpc.ClientInfo, p network.GetParams, err error) {
	if !c.Hello.Has(backrpc.CapInterest) {
		return
	}
	if err != nil {
		s.net.GetFailed(network.ClientID(c.ID), p.Kind, p.Request.UUID)
		return
	}
	s.net.GetSucceeded(network.ClientID(c.ID), p.Kind, p.Request.UUID)
}

// deliver sends a batch of events: the whole batch to clients that did
// not announce backrpc.CapInterest (every TS 0.7 client), byte for byte
// what the reference broadcasts; to the others the agent entries and the
// container entries that concern them. Every entry is encoded once.
func (s *Server) deliver(d network.Delivery) {
	ev := d.Event
	agents := make([][]byte, len(ev.Agents))
	for i, a := range ev.Agents {
		b, err := json.Marshal(a) // escaped as the whole batch's encoding is
		if err != nil {
			s.log.WithError(err).Warn("encode network event")
			return
		}
		agents[i] = b
	}
	conts := make([][]byte, len(ev.Containers))
	for i, c := range ev.Containers {
		b, err := json.Marshal(c)
		if err != nil {
			s.log.WithError(err).Warn("encode network event")
			return
		}
		conts[i] = b
	}
	full := assembleEvent(agents, conts, nil, true)
	var agentsOnly []byte
	if len(agents) > 0 {
		agentsOnly = assembleEvent(agents, nil, nil, false)
	}
	s.rpc.SendEvents(func(c backrpc.ClientInfo) []byte {
		if !c.Hello.Has(backrpc.CapInterest) {
			return full
		}
		idx := d.Containers[network.ClientID(c.ID)]
		switch {
		case len(idx) == 0:
			return agentsOnly
		case len(idx) == len(conts):
			return full
		}
		return assembleEvent(agents, conts, idx, false)
	})
}

// assembleEvent writes {"agents":[…],"containers":[…]} from encoded
// entries: every container entry when all, else those at idx.
func assembleEvent(agents, conts [][]byte, idx []int, all bool) []byte {
	size := 32
	for _, a := range agents {
		size += len(a) + 1
	}
	if all {
		for _, c := range conts {
			size += len(c) + 1
		}
	} else {
		for _, i := range idx {
			size += len(conts[i]) + 1
		}
	}
	b := make([]byte, 0, size)
	b = append(b, `{"agents":[`...)
	for i, a := range agents {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, a...)
	}
	b = append(b, `],"containers":[`...)
	if all {
		for i, c := range conts {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, c...)
		}
	} else {
		for k, i := range idx {
			if k > 0 {
				b = append(b, ',')
			}
			b = append(b, conts[i]...)
		}
	}
	return append(b, "]}"...)
}
