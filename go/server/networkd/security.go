package networkd

import (
	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/auth"
	"github.com/huly-net/huly-net/go/internal/audit"
	"github.com/huly-net/huly-net/go/server"
)

// loadSecurity reads the security settings: nil when security is off
// (no curve_secret_key_file and no credential curve.key).
func loadSecurity(cfg *Config, getenv func(string) string, log logrus.FieldLogger) (*server.Security, error) {
	sec, err := auth.LoadServer(cfg.CurveSecretKeyFile, cfg.AuthorizedKeys, cfg.AllowNullFrom, cfg.MaxAgentIDsPerKey, getenv)
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
