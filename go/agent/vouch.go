package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/curve"
	"github.com/huly-net/huly-net/go/internal/jsonsplit"
	"github.com/huly-net/huly-net/go/transport"
)

// Direct connections on a secured network (docs/security.md): when the
// endpoint server has a CURVE key (EndpointServer.Transport.CurveServer,
// the agent's own key, the one it connects to the network with), it admits
// only client keys the network vouched for, and each only to the
// containers vouched for it. The network vouches (back-request "vk") after
// its own policy allowed the client to get the container, and withdraws
// (back-request "vw") when a reload removes the key or changes its rights.
// Back-requests come over the agent's session with the network, which is
// authenticated by the network key the agent pinned: nobody else can
// vouch.

// Back-request methods of the vouching.
const (
	methodVouch    = "vk" // [clientKey, containerUuid]
	methodWithdraw = "vw" // [clientKey]: every container
	// maxVouches bounds the vouches an agent keeps (keys × containers).
	maxVouches = 100000
)

// errNotVouched refuses an endpoint request the network did not vouch for.
var errNotVouched = errors.New("not authorized")

type vouchTable struct {
	mu    sync.RWMutex
	byKey map[curve.Key]map[string]struct{}
	n     int
	// refused counts handshakes and requests refused for want of a vouch.
	refused atomic.Uint64
}

// EndpointRefusals counts the handshakes and requests the agent's endpoint
// refused because the network had not vouched for the client's key.
func (a *Agent) EndpointRefusals() uint64 { return a.vouches.refused.Load() }

func (v *vouchTable) add(k curve.Key, uuid string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.byKey == nil {
		v.byKey = map[curve.Key]map[string]struct{}{}
	}
	m := v.byKey[k]
	if _, ok := m[uuid]; ok {
		return nil
	}
	if v.n >= maxVouches {
		return fmt.Errorf("vouch: the agent keeps at most %d vouches", maxVouches)
	}
	if m == nil {
		m = map[string]struct{}{}
		v.byKey[k] = m
	}
	m[uuid] = struct{}{}
	v.n++
	return nil
}

func (v *vouchTable) withdraw(k curve.Key) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.n -= len(v.byKey[k])
	delete(v.byKey, k)
}

func (v *vouchTable) known(k curve.Key) bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.byKey[k]) > 0
}

func (v *vouchTable) allows(k curve.Key, uuid string) bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	_, ok := v.byKey[k][uuid]
	return ok
}

// EndpointSecured reports whether the agent's endpoint has a CURVE key and
// admits only vouched keys (runtimes then secure their programs' endpoints).
func (a *Agent) EndpointSecured() bool { return a.secured() }

// secured reports whether the endpoint checks keys.
func (a *Agent) secured() bool { return a.opts.EndpointServer.Transport.CurveServer != nil }

// endpointTransport admits, on a CURVE endpoint, only keys with a vouch.
func (a *Agent) endpointTransport(o transport.Options) transport.Options {
	if o.CurveServer == nil || o.CurveAuthenticate != nil {
		return o
	}
	o.CurveAuthenticate = func(_ context.Context, k curve.Key, _ net.Addr) error {
		if !a.vouches.known(k) {
			a.vouches.refused.Add(1)
			return fmt.Errorf("%w: the network has not vouched for key %s…", errNotVouched, k.String()[:8])
		}
		return nil
	}
	return o
}

// handleVouch answers the network's vouching back-requests; ok is false
// for any other method.
func (a *Agent) handleVouch(method string, args json.RawMessage) (res any, err error, ok bool) {
	if method != methodVouch && method != methodWithdraw {
		return nil, nil, false
	}
	if !a.secured() {
		return nil, fmt.Errorf("%s: this agent's endpoint has no CURVE key", method), true
	}
	p, err := jsonsplit.Array(args)
	if err != nil || len(p) < 1 {
		return nil, fmt.Errorf("%s: args must be [key, ...]", method), true
	}
	ks, err := jsonsplit.String(p[0])
	if err != nil {
		return nil, fmt.Errorf("%s: key must be a string", method), true
	}
	k, err := curve.ParseKey(ks)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err), true
	}
	if method == methodWithdraw {
		a.vouches.withdraw(k)
		closed := 0
		if a.srv != nil {
			for _, c := range a.srv.Clients() {
				if c.Key == k && a.srv.CloseClient(c.ID) {
					closed++
				}
			}
		}
		a.log.WithFields(map[string]any{"key": ks, "sessions_closed": closed}).Info("the network withdrew its vouches for a client key")
		return "ok", nil, true
	}
	if len(p) < 2 {
		return nil, fmt.Errorf("%s: args must be [key, uuid]", method), true
	}
	uuid, err := jsonsplit.String(p[1])
	if err != nil || uuid == "" {
		return nil, fmt.Errorf("%s: uuid must be a non-empty string", method), true
	}
	if err := a.vouches.add(k, uuid); err != nil {
		return nil, err, true
	}
	return "ok", nil, true
}

// endpointAllowed checks an endpoint request of a secured agent: the
// client's key must be vouched for every container it names.
func (a *Agent) endpointAllowed(cl backrpc.ClientInfo, method string, params json.RawMessage) error {
	if !a.secured() {
		return nil
	}
	var uuids []string
	switch method {
	case "cc":
		u, err := decodeUUIDs(params)
		if err != nil {
			return fmt.Errorf("cc: %w", err)
		}
		uuids = u
	case "cs":
		p, err := jsonsplit.Array(params)
		if err != nil {
			return fmt.Errorf("cs: %w", err)
		}
		u, _, _, err := routeArgs(p)
		if err != nil {
			return err
		}
		uuids = []string{u}
	}
	for _, u := range uuids {
		if !a.vouches.allows(cl.Key, u) {
			a.vouches.refused.Add(1)
			a.log.WithFields(map[string]any{"key": cl.Key.String(), "peer": cl.Remote, "container": u, "method": method}).Warn("refused an endpoint request: the network has not vouched for this key and container")
			return fmt.Errorf("%w: the network has not vouched for key %s… on container %s", errNotVouched, cl.Key.String()[:8], u)
		}
	}
	return nil
}
