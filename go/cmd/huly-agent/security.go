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
	}
	return client.WithSecurity(sec), nil
}

func secWarnings(c *auth.Client) []string {
	if c == nil {
		return nil
	}
	return c.Warnings
}
