package client

import (
	"errors"
	"strings"

	"github.com/huly-net/huly-net/go/auth"
	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/curve"
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
