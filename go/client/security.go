package client

import (
	"errors"
	"strings"
	"sync"

	"github.com/huly-net/huly-net/go/auth"
	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/curve"
	"github.com/huly-net/huly-net/go/network"
)

// RefusedError is returned at once by every call while the network
// refuses our handshake ("network refused our key: …"): the key is not in
// its authorized keys, or it requires a key and we have none. The client
// keeps trying in the background, so a key authorized later (and the
// network's keys reloaded) is used without a restart.
type RefusedError = backrpc.RefusedError

// WithCurve connects to the network with CURVE security (ZeroMQ RFC 26):
// kp is this client's key pair, serverKey the network's public key. The
// network admits the client only when its authorized keys list kp.Public,
// and the client talks only to a server holding serverKey's secret.
func WithCurve(kp curve.KeyPair, serverKey curve.Key) Option {
	return func(o *options) {
		o.curve = &curveKeys{pair: kp, server: serverKey}
	}
}

// WithSecurity is WithCurve for what auth.LoadClient read; nil (security
// off) changes nothing.
func WithSecurity(c *auth.Client) Option {
	if c == nil {
		return func(*options) {}
	}
	return WithCurve(c.KeyPair, c.ServerKey)
}

type curveKeys struct {
	pair   curve.KeyPair
	server curve.Key
}

// networkRPCOptions are the options of the session with the network: the
// common ones and the CURVE keys.
func (c *Client) networkRPCOptions(id string) backrpc.ClientOptions {
	o := c.rpcOptions(id)
	if k := c.opts.curve; k != nil {
		pair := k.pair
		o.Transport.CurveClient = &pair
		o.Transport.CurveServerKey = k.server
	}
	return o
}

// refusedBySecurity: the network refused our key, or its policy refused
// the call; asking again will not help until its keys change.
func refusedBySecurity(err error) bool {
	var rf *RefusedError
	if errors.As(err, &rf) {
		return true
	}
	var re *backrpc.RemoteError
	return errors.As(err, &re) && strings.HasPrefix(re.Message, auth.ErrDenied.Error()+":")
}

// maxEndpointKeys bounds the endpoint keys a client remembers.
const maxEndpointKeys = 10000

// endpointKeys are the CURVE keys the network named for agents' endpoints
// (the third element of its answer to a get, on a secured network), by
// "host:port": a direct connection there speaks CURVE with our key and
// admits only that server key.
type endpointKeys struct {
	mu sync.Mutex
	m  map[string]curve.Key
}

// noteEndpointKey remembers the agent key of a get's answer.
func (c *Client) noteEndpointKey(answer []string) {
	if c.opts.curve == nil || len(answer) < 3 {
		return
	}
	k, err := curve.ParseKey(answer[2])
	if err != nil {
		c.log.WithError(err).Warn("the network named an unreadable endpoint key")
		return
	}
	er, err := network.ParseEndpointRef(answer[1])
	if err != nil || er.Kind != network.RefRouted {
		// Only the agent's endpoint (cc/cs through it) holds the agent's
		// key; a container's own endpoint is its own server.
		return
	}
	addr, err := hostPort(er)
	if err != nil {
		return
	}
	c.epKeys.mu.Lock()
	defer c.epKeys.mu.Unlock()
	if c.epKeys.m == nil || len(c.epKeys.m) >= maxEndpointKeys {
		c.epKeys.m = map[string]curve.Key{}
	}
	c.epKeys.m[addr] = k
}

// endpointRPCOptions are the options of a session with an agent's or a
// container's endpoint: CURVE when the network named its key.
func (c *Client) endpointRPCOptions(addr string) backrpc.ClientOptions {
	o := c.rpcOptions(c.ID())
	if c.opts.curve == nil {
		return o
	}
	c.epKeys.mu.Lock()
	k, ok := c.epKeys.m[addr]
	c.epKeys.mu.Unlock()
	if ok {
		pair := c.opts.curve.pair
		o.Transport.CurveClient = &pair
		o.Transport.CurveServerKey = k
	}
	return o
}
