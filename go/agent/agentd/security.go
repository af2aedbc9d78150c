package agentd

import (
	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/auth"
	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/transport"
)

// clientSecurity reads the agent's CURVE keys (both settings, or neither
// for a network without security) as a client option.
func clientSecurity(cfg *Config, log logrus.FieldLogger, getenv func(string) string) (client.Option, error) {
	sec, err := auth.LoadClient(cfg.CurveSecretKeyFile, cfg.CurveServerKey, getenv)
	if err != nil {
		return nil, err
	}
	for _, w := range secWarnings(sec) {
		log.Warn("security: " + w)
	}
	if sec != nil {
		log.WithField("key", sec.KeyPair.Public.String()).Info("connecting to the network with CURVE")
		if cfg.Listen != "" {
			log.WithField("listen", cfg.Listen).Info("security: the agent's endpoint speaks CURVE with the agent's key and admits the client keys the network vouches for, each for its containers")
		}
	}
	return client.WithSecurity(sec), nil
}

func secWarnings(c *auth.Client) []string {
	if c == nil {
		return nil
	}
	return c.Warnings
}

// endpointSecurity: a keyed agent serves its endpoint with CURVE and its
// own key; the agent admits there only the client keys the network vouches
// for (docs/security.md, "Direct connections").
func endpointSecurity(cfg *Config, getenv func(string) string) (backrpc.ServerOptions, error) {
	sec, err := auth.LoadClient(cfg.CurveSecretKeyFile, cfg.CurveServerKey, getenv)
	if err != nil || sec == nil {
		return backrpc.ServerOptions{}, err
	}
	kp := sec.KeyPair
	return backrpc.ServerOptions{Transport: transport.Options{CurveServer: &kp}}, nil
}
