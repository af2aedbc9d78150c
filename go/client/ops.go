package client

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/network"
)

// Operator commands: extension methods of a Go network server that
// announces backrpc.CapOps; against any other server they fail with
// ErrNotSupported before anything is sent.

// Extension method names (server/ops.go).
const (
	methodDrain     = "x.drain"
	methodUndrain   = "x.undrain"
	methodTerminate = "x.terminate"
	methodAgents    = "x.agents"
	methodKinds     = "x.kinds"
)

// TerminateResult says which container was terminated and where it ran.
type TerminateResult struct {
	UUID  network.ContainerUUID `json:"uuid"`
	Agent network.AgentID       `json:"agent"`
	Kind  string                `json:"kind"`
}

// Drain stops the network from placing new containers on an agent; its
// containers keep serving.
func (c *Client) Drain(ctx context.Context, agent string) error {
	return c.setDrained(ctx, methodDrain, agent)
}

// Undrain reverses Drain.
func (c *Client) Undrain(ctx context.Context, agent string) error {
	return c.setDrained(ctx, methodUndrain, agent)
}

func (c *Client) setDrained(ctx context.Context, method, agent string) error {
	what := fmt.Sprintf("%s agent %s", method[2:], agent)
	if err := c.requireCapability(ctx, backrpc.CapOps, what); err != nil {
		return err
	}
	if _, err := c.rpc.Request(ctx, method, map[string]string{"agent": agent}); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// Terminate stops a container now: the network forgets it (its holders
// see it removed and follow it, which gets it started again for them) and
// tells its agent to stop it. The agent applies its policy: a pinned or
// stateless (HA) container is one it keeps, and it registers it again.
func (c *Client) Terminate(ctx context.Context, uuid string) (TerminateResult, error) {
	what := "terminate " + uuid
	if err := c.requireCapability(ctx, backrpc.CapOps, what); err != nil {
		return TerminateResult{}, err
	}
	var out TerminateResult
	if err := c.callInto(ctx, methodTerminate, map[string]string{"uuid": uuid}, &out); err != nil {
		return TerminateResult{}, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// AgentStates lists the agents with their drain state and containers per
// kind.
func (c *Client) AgentStates(ctx context.Context) ([]network.AgentState, error) {
	if err := c.requireCapability(ctx, backrpc.CapOps, "list agent states"); err != nil {
		return nil, err
	}
	var out []agentStateJSON
	if err := c.callInto(ctx, methodAgents, struct{}{}, &out); err != nil {
		return nil, fmt.Errorf("list agent states: %w", err)
	}
	res := make([]network.AgentState, len(out))
	for i, a := range out {
		res[i] = network.AgentState{AgentInfo: a.AgentInfo, Drained: a.Drained, PerKind: a.PerKind, Capacity: a.Capacity}
	}
	return res, nil
}

// agentStateJSON decodes an AgentState: AgentInfo decodes the shared
// fields, the rest by name.
type agentStateJSON struct {
	network.AgentInfo
	Drained  bool
	PerKind  map[string]int
	Capacity map[string]int
}

func (a *agentStateJSON) UnmarshalJSON(b []byte) error {
	if err := a.AgentInfo.UnmarshalJSON(b); err != nil {
		return err
	}
	var rest struct {
		Drained  bool           `json:"drained"`
		PerKind  map[string]int `json:"perKind"`
		Capacity map[string]int `json:"capacity"`
	}
	if err := json.Unmarshal(b, &rest); err != nil {
		return fmt.Errorf("decode agent state: %w", err)
	}
	a.Drained, a.PerKind, a.Capacity = rest.Drained, rest.PerKind, rest.Capacity
	return nil
}

// KindStats lists the kinds with their counts and limits.
func (c *Client) KindStats(ctx context.Context) ([]network.KindStat, error) {
	if err := c.requireCapability(ctx, backrpc.CapOps, "list kind states"); err != nil {
		return nil, err
	}
	var out []network.KindStat
	if err := c.callInto(ctx, methodKinds, struct{}{}, &out); err != nil {
		return nil, fmt.Errorf("list kind states: %w", err)
	}
	return out, nil
}
