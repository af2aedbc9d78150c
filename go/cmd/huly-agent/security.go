package main

import (
	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/auth"
	"github.com/huly-net/huly-net/go/client"
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
			log.WithField("listen", cfg.Listen).Warn("security: the agent's own endpoint (listen) does not check keys in this build; whoever reaches it may call its containers: keep it on a trusted network, or leave listen empty so that requests are routed through the network (docs/security.md)")
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
