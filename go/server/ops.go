package server

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/network"
	"github.com/huly-net/huly-net/go/stream"
)

// Extension methods. Their names carry a prefix no TypeScript peer uses
// ("x."); the server announces them with capabilities in its hello answer,
// and Go peers call them only when it did.
const (
	MethodDrain     = "x.drain"     // {"agent"} → "ok": place no new container there
	MethodUndrain   = "x.undrain"   // {"agent"} → "ok"
	MethodTerminate = "x.terminate" // {"uuid"} → {"uuid","agent","kind"}
	MethodAgents    = "x.agents"    // {} → [network.AgentState]
	MethodKinds     = "x.kinds"     // {} → [network.KindStat]
)

// capabilities are what the server announces in its hello answer. A
// repeated ar updates an agent's containers and keeps the ones it already
// had (state publishing); events go by interest to clients that announce
// it (interest.go).
var capabilities = []string{backrpc.CapInterest, backrpc.CapOps, backrpc.CapStatePublish, backrpc.CapStream}

// TerminateResult answers MethodTerminate.
type TerminateResult struct {
	UUID  network.ContainerUUID `json:"uuid"`
	Agent network.AgentID       `json:"agent"`
	Kind  string                `json:"kind"`
}

type agentParams struct {
	Agent network.AgentID `json:"agent"`
}

// handleExtension serves the extension methods; ok is false for any other
// method.
func (s *Server) handleExtension(ctx context.Context, c backrpc.ClientInfo, method string, params json.RawMessage) (res any, ok bool, err error) {
	switch method {
	case MethodDrain, MethodUndrain:
		var p agentParams
		if err := json.Unmarshal(params, &p); err != nil || p.Agent == "" {
			return nil, true, fmt.Errorf("%s: params must be {\"agent\": id}", method)
		}
		if err := s.net.SetDrained(p.Agent, method == MethodDrain); err != nil {
			return nil, true, fmt.Errorf("%s: %w", method, err)
		}
		s.log.WithFields(logrus.Fields{"agent": p.Agent, "client": c.ID, "method": method}).Info("operator command")
		return "ok", true, nil
	case MethodTerminate:
		uuid, err := network.DecodeUUIDParams(params)
		if err != nil {
			return nil, true, fmt.Errorf("%s: %w", method, err)
		}
		to, rec, err := s.net.RemoveContainer(network.ContainerUUID(uuid))
		if err != nil {
			return nil, true, err
		}
		s.log.WithFields(logrus.Fields{"container": uuid, "agent": to.Agent, "client": c.ID}).Info("operator command: terminate")
		if err := (caller{s}).TerminateContainer(ctx, to, rec.UUID); err != nil {
			return nil, true, fmt.Errorf("container %s is removed from the network, but its agent did not confirm the stop: %w", uuid, err)
		}
		return TerminateResult{UUID: rec.UUID, Agent: to.Agent, Kind: rec.Kind}, true, nil
	case MethodAgents:
		return nonNil(s.net.AgentStates()), true, nil
	case MethodKinds:
		return nonNil(s.net.KindStats()), true, nil
	case stream.MethodOpen, stream.MethodNext, stream.MethodCancel:
		res, err := s.routeStream(ctx, method, params)
		return res, true, err
	}
	return nil, false, nil
}
