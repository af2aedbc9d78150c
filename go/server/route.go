package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/internal/jsonsplit"
	"github.com/huly-net/huly-net/go/network"
	"github.com/huly-net/huly-net/go/transport"
)

// handleAsync takes routed requests (cs) off the worker goroutines: the
// request is forwarded to the agent's connection from the goroutine that
// read it, and the agent's answer is relayed to the client from the
// goroutine that read that, its bytes as they came. A routed request then
// costs no goroutine hand-off inside the server and no handler goroutine
// waiting. Everything else, and a cs to a container the network does not
// know (for its error), goes to handle.
func (s *Server) handleAsync(_ context.Context, c backrpc.ClientInfo, method string, params json.RawMessage, reply backrpc.Reply) bool {
	if method != "cs" || s.sec != nil {
		// With security on, cs is authorized and answered in handle
		// (security.go).
		return false
	}
	// params are part of the request payload backrpc validated.
	uuid, op, data, err := network.DecodeValidRouteParams(params)
	if err != nil {
		return false
	}
	to, done, err := s.net.AdmitRoute(uuid)
	if err != nil {
		if errors.Is(err, network.ErrContainerNotFound) {
			return false // the handler answers in the reference's words
		}
		reply(nil, err)
		return true
	}
	s.net.ClientSeen(network.ClientID(c.ID))
	s.forwardRoute(to, uuid, op, data, func(res json.RawMessage, err error) {
		done()
		reply(res, err)
	})
	return true
}

// forwardRoute sends ["cs", [agentId, [uuid, op, data]]] to the agent's
// host, written at once as encoding/json would, data as it came (it was
// validated with the client's request), and answers with what the agent
// answered, turning its "normal response carrying an error" into an error
// as caller.call does.
func (s *Server) forwardRoute(to network.AgentTarget, uuid network.ContainerUUID, op string, data json.RawMessage, reply backrpc.Reply) {
	p := make([]byte, 0, len(to.Agent)+len(uuid)+len(op)+len(data)+24)
	p = append(p, `["cs",[`...)
	p = backrpc.AppendJSONString(p, string(to.Agent))
	p = append(p, ",["...)
	p = backrpc.AppendJSONString(p, string(uuid))
	p = append(p, ',')
	p = backrpc.AppendJSONString(p, op)
	p = append(p, ',')
	if len(data) == 0 {
		p = append(p, "null"...)
	} else {
		p = append(p, data...)
	}
	p = append(p, "]]]"...)
	s.rpc.CallAsync(string(to.Client), "cs", p, s.opts.CallTimeout, func(res json.RawMessage, err error) {
		if err != nil {
			if errors.Is(err, backrpc.ErrUnknownClient) || errors.Is(err, backrpc.ErrClientGone) || errors.Is(err, transport.ErrUnknownPeer) {
				// The host's connection went away under the request.
				err = s.net.UnreachableError(uuid, to.Agent)
			}
			reply(nil, fmt.Errorf("cs to agent %s: %w", to.Agent, err))
			return
		}
		if len(res) > 0 && res[0] == '{' && bytes.Contains(res, errorKey) {
			var maybeErr struct {
				Error *string `json:"error"`
			}
			if json.Unmarshal(res, &maybeErr) == nil && maybeErr.Error != nil {
				reply(nil, fmt.Errorf("cs to agent %s: %s", to.Agent, *maybeErr.Error))
				return
			}
		}
		reply(res, nil)
	})
}

// getAnswer is gg's answer [uuid, ref], written as encoding/json would
// write a []string without going through reflection.
func getAnswer(uuid network.ContainerUUID, ref string) json.RawMessage {
	b := make([]byte, 0, len(uuid)+len(ref)+16)
	b = append(b, '[')
	b = backrpc.AppendJSONString(b, string(uuid))
	b = append(b, ',')
	b = backrpc.AppendJSONString(b, ref)
	b = append(b, ']')
	return b
}

// splitGetAnswer reads an agent's answer to gg, [uuid, ref] (two strings,
// nothing else), without reflection; res was validated as JSON when it
// was read.
func splitGetAnswer(res json.RawMessage) (uuid, ref string, ok bool) {
	parts, err := jsonsplit.Array(res)
	if err != nil || len(parts) != 2 {
		return "", "", false
	}
	if uuid, err = jsonsplit.String(parts[0]); err != nil {
		return "", "", false
	}
	if ref, err = jsonsplit.String(parts[1]); err != nil {
		return "", "", false
	}
	return uuid, ref, true
}
