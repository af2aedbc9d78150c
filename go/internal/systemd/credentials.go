package systemd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Secret keys reach the daemons as systemd credentials: the unit says
//
//	LoadCredential=curve.key:/etc/huly-net/network.key
//
// and systemd gives the process a private, read-only copy in
// $CREDENTIALS_DIRECTORY/curve.key that no other unit (and, with
// DynamicUser=, no other user) can read.
//
// A file setting (--curve-secret-key-file, config key or HULY_* variable)
// names a credential as "credential:NAME". When the setting is empty and the
// process has a credential of the conventional name (CredentialCurveKey for
// the secret key), that credential is used: a unit's LoadCredential= line
// alone is enough. Any other value is a plain path.

// CredentialPrefix marks a file setting that names a systemd credential.
const CredentialPrefix = "credential:"

// CredentialCurveKey is the conventional credential name of a daemon's or
// hulyctl's CURVE secret key.
const CredentialCurveKey = "curve.key"

// ErrNoCredentials: a setting names a credential but the process has no
// $CREDENTIALS_DIRECTORY.
var ErrNoCredentials = errors.New("$CREDENTIALS_DIRECTORY is not set (the unit needs a LoadCredential= line)")

// CredentialPath resolves a file setting to a path:
//
//   - "credential:NAME": $CREDENTIALS_DIRECTORY/NAME, which must exist;
//   - "": $CREDENTIALS_DIRECTORY/defaultName when defaultName is not empty
//     and that credential exists, else "" (no file);
//   - anything else: the setting itself, a path.
//
// getenv is os.Getenv outside tests.
func CredentialPath(setting, defaultName string, getenv func(string) string) (string, error) {
	dir := getenv("CREDENTIALS_DIRECTORY")
	if setting == "" {
		if defaultName == "" || dir == "" || validCredentialName(defaultName) != nil {
			return "", nil
		}
		p := filepath.Join(dir, defaultName)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
		return "", nil
	}
	name, ok := strings.CutPrefix(setting, CredentialPrefix)
	if !ok {
		return setting, nil
	}
	if err := validCredentialName(name); err != nil {
		return "", fmt.Errorf("%s: %w", setting, err)
	}
	if dir == "" {
		return "", fmt.Errorf("%s: %w", setting, ErrNoCredentials)
	}
	p := filepath.Join(dir, name)
	st, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("%s: no such credential in $CREDENTIALS_DIRECTORY (check the unit's LoadCredential=%s:...): %w", setting, name, err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s: %s is not a regular file", setting, p)
	}
	return p, nil
}

// ResolveCredentialPath is CredentialPath with the process environment.
func ResolveCredentialPath(setting, defaultName string) (string, error) {
	return CredentialPath(setting, defaultName, os.Getenv)
}

// validCredentialName: systemd's credential names are file names.
func validCredentialName(name string) error {
	switch {
	case name == "":
		return errors.New("empty credential name")
	case name == "." || name == "..", strings.ContainsRune(name, '/'):
		return fmt.Errorf("credential name %q is not a file name", name)
	case len(name) > 255:
		return errors.New("credential name longer than 255 bytes")
	}
	return nil
}
