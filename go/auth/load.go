package auth

import (
	"fmt"
	"os"
	"strings"

	"github.com/huly-net/huly-net/go/curve"
	"github.com/huly-net/huly-net/go/internal/systemd"
)

// The settings the daemons and hulyctl take (flag --curve-secret-key-file,
// config key curve_secret_key_file, HULY_CURVE_SECRET_KEY_FILE, and so on).
const (
	SettingSecretKeyFile  = "curve_secret_key_file"
	SettingServerKey      = "curve_server_key"
	SettingAuthorizedKeys = "authorized_keys"
	SettingAllowNullFrom  = "allow_null_from"
	// SettingMaxAgentIDsPerKey bounds the agent ids bound to one key.
	SettingMaxAgentIDsPerKey = "max_agent_ids_per_key"
)

// DefaultMaxAgentIDsPerKey is the default of max_agent_ids_per_key.
const DefaultMaxAgentIDsPerKey = 1000

// Server is the security of a network server: nil from LoadServer when
// security is off.
type Server struct {
	KeyPair  curve.KeyPair
	Keys     *Holder
	Null     NullAllowList
	Bindings *Bindings
	// Warnings are problems worth a log line that do not stop the server
	// (a secret key file others can read, an allow-list admitting all).
	Warnings []string
}

// LoadServer reads the server's security settings. Security is on when a
// secret key is configured: secretKeyFile is a path, "credential:NAME", or
// empty with a systemd credential named curve.key present (see
// systemd.CredentialPath). With security on, authorizedKeys is required;
// with it off, authorizedKeys and allowNullFrom are errors (they would be
// silently ignored otherwise). maxAgentIDsPerKey bounds Bindings.
func LoadServer(secretKeyFile, authorizedKeys string, allowNullFrom []string, maxAgentIDsPerKey int, getenv func(string) string) (*Server, error) {
	keyPath, err := systemd.CredentialPath(secretKeyFile, systemd.CredentialCurveKey, getenv)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", SettingSecretKeyFile, err)
	}
	if keyPath == "" {
		var set []string
		if authorizedKeys != "" {
			set = append(set, SettingAuthorizedKeys)
		}
		if len(allowNullFrom) > 0 {
			set = append(set, SettingAllowNullFrom)
		}
		if len(set) > 0 {
			return nil, fmt.Errorf("%s given without %s: security is off without a server secret key", strings.Join(set, " and "), SettingSecretKeyFile)
		}
		return nil, nil
	}
	s := &Server{Bindings: NewBindings(maxAgentIDsPerKey)}
	s.KeyPair, err = curve.LoadSecretKeyFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", SettingSecretKeyFile, err)
	}
	if w := looseKeyFile(keyPath); w != "" {
		s.Warnings = append(s.Warnings, w)
	}
	keysPath, err := systemd.CredentialPath(authorizedKeys, "", getenv)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", SettingAuthorizedKeys, err)
	}
	if keysPath == "" {
		return nil, fmt.Errorf("%s turns security on, which needs %s (without it every peer would be refused)", SettingSecretKeyFile, SettingAuthorizedKeys)
	}
	s.Keys, err = LoadHolder(keysPath)
	if err != nil {
		return nil, err
	}
	s.Null, err = ParseNullAllowList(allowNullFrom)
	if err != nil {
		return nil, err
	}
	for _, p := range s.Null.prefixes {
		if p.Bits() == 0 {
			s.Warnings = append(s.Warnings, fmt.Sprintf("%s %s admits peers without a key from anywhere", SettingAllowNullFrom, p))
		}
	}
	if !s.Keys.Policy().HasAdmin() {
		s.Warnings = append(s.Warnings, fmt.Sprintf("%s %s lists no admin key: nobody can list or watch the whole network", SettingAuthorizedKeys, keysPath))
	}
	return s, nil
}

// Client is the CURVE identity of a client, agent or hulyctl: nil from
// LoadClient when security is off.
type Client struct {
	KeyPair   curve.KeyPair
	ServerKey curve.Key
	Warnings  []string
}

// LoadClient reads a peer's security settings: its secret key (resolved as
// for LoadServer) and the network's public key in Z85. Both or neither.
func LoadClient(secretKeyFile, serverKey string, getenv func(string) string) (*Client, error) {
	keyPath, err := systemd.CredentialPath(secretKeyFile, systemd.CredentialCurveKey, getenv)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", SettingSecretKeyFile, err)
	}
	serverKey = strings.TrimSpace(serverKey)
	switch {
	case keyPath == "" && serverKey == "":
		return nil, nil
	case keyPath == "":
		return nil, fmt.Errorf("%s given without %s: a CURVE client needs its own secret key too (hulyctl keygen makes one)", SettingServerKey, SettingSecretKeyFile)
	case serverKey == "":
		return nil, fmt.Errorf("%s given without %s: a CURVE client needs the network's public key", SettingSecretKeyFile, SettingServerKey)
	}
	c := &Client{}
	c.ServerKey, err = curve.ParseKey(serverKey)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", SettingServerKey, err)
	}
	c.KeyPair, err = curve.LoadSecretKeyFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", SettingSecretKeyFile, err)
	}
	if w := looseKeyFile(keyPath); w != "" {
		c.Warnings = append(c.Warnings, w)
	}
	return c, nil
}

// looseKeyFile warns about a secret key file that group or others may
// read or write.
func looseKeyFile(path string) string {
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm()&0o077 == 0 {
		return ""
	}
	return fmt.Sprintf("secret key file %s has mode %04o; others can read it (chmod 600, or pass it as a systemd credential)", path, st.Mode().Perm())
}
