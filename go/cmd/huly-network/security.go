package main

import (
	"os"

	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/auth"
	"github.com/huly-net/huly-net/go/internal/audit"
	"github.com/huly-net/huly-net/go/server"
)

// checkSecurity reads the security settings once before starting, so that
// a bad key file or authorized-keys file is a configuration error (exit 2).
func checkSecurity(cfg *Config, getenv func(string) string) error {
	_, err := auth.LoadServer(cfg.CurveSecretKeyFile, cfg.AuthorizedKeys, cfg.AllowNullFrom, cfg.MaxAgentIDsPerKey, getenv)
	return err
}

// loadSecurity reads the security settings: nil when security is off
// (no curve_secret_key_file and no credential curve.key).
func loadSecurity(cfg *Config, log *logrus.Logger) (*server.Security, error) {
	sec, err := auth.LoadServer(cfg.CurveSecretKeyFile, cfg.AuthorizedKeys, cfg.AllowNullFrom, cfg.MaxAgentIDsPerKey, os.Getenv)
	if err != nil {
		return nil, err
	}
	if sec == nil {
		log.Info("security is off: every peer that reaches the port may do everything (docs/security.md)")
		return nil, nil
	}
	for _, w := range sec.Warnings {
		log.Warn("security: " + w)
	}
	pol := sec.Keys.Policy()
	log.WithFields(logrus.Fields{
		"server_key":      sec.KeyPair.Public.String(),
		"authorized_keys": sec.Keys.Path(),
		"keys":            pol.Len(),
		"allow_null_from": sec.Null.String(),
	}).Info("security is on: CURVE, authorized keys")
	return &server.Security{Auth: sec, Audit: audit.New(log, "huly_network")}, nil
}

// reloadKeys reads the authorized keys again (SIGHUP); the audit records
// the result.
func reloadKeys(srv *server.Server, log logrus.FieldLogger) {
	if srv.SecurityCollectors() == nil {
		return
	}
	d, err := srv.ReloadKeys()
	if err != nil {
		log.WithError(err).Error("SIGHUP: authorized keys not reloaded; the previous keys stay in force")
		return
	}
	log.WithField("changes", d.String()).Info("SIGHUP: authorized keys reloaded")
}
