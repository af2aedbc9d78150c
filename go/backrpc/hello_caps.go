package backrpc

import (
	"slices"
	"time"
)

// helloAnswer is the payload of the server's hello answer: empty, as the
// reference's, unless the server has capabilities to announce and the
// client announced some itself (a client that announces nothing, as every
// TS 0.7 client, is answered exactly as the reference would).
func (s *Server) helloAnswer(granted time.Duration, clientCaps []string) []byte {
	if len(s.opts.Capabilities) == 0 || len(clientCaps) == 0 {
		return nil
	}
	caps := slices.Clone(s.opts.Capabilities)
	slices.Sort(caps)
	return EncodeHelloInfo(HelloInfo{AliveTimeout: granted, Capabilities: slices.Compact(caps)})
}

// setServerHello records what a hello answer announced, before the answer
// is acted on (so that OnServerChanged sees it).
func (c *Client) setServerHello(payload []byte) {
	h := ParseHelloInfo(payload)
	c.serverHello.Store(&h)
}

// ServerHello is what the server announced in its last hello answer: the
// zero HelloInfo before the first answer and for a TS 0.7 server.
func (c *Client) ServerHello() HelloInfo {
	if h := c.serverHello.Load(); h != nil {
		return *h
	}
	return HelloInfo{}
}

// HasCapability reports whether the client announced capability name.
func (c ClientInfo) HasCapability(name string) bool {
	return HelloInfo{Capabilities: c.Capabilities}.Has(name)
}
