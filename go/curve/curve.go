// Package curve holds CURVE key pairs (ZeroMQ RFC 26, Curve25519) in the
// 40-character Z85 text form libzmq uses, and reads and writes key files.
// The handshake that uses them lives in the transport package.
package curve

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/curve25519"
)

// KeySize is the size of a public or secret key in bytes.
const KeySize = 32

// Key is a Curve25519 public or secret key.
type Key [KeySize]byte

// String is the key's Z85 text (40 characters).
func (k Key) String() string {
	s, _ := Z85Encode(k[:]) // 32 is a multiple of 4
	return s
}

// IsZero reports whether k is the zero key (no key).
func (k Key) IsZero() bool { return k == Key{} }

// MarshalText writes the Z85 text.
func (k Key) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads the Z85 text.
func (k *Key) UnmarshalText(b []byte) error {
	p, err := ParseKey(string(b))
	if err != nil {
		return err
	}
	*k = p
	return nil
}

// ParseKey reads a key from its 40-character Z85 text; surrounding space is
// ignored.
func ParseKey(s string) (Key, error) {
	s = strings.TrimSpace(s)
	if len(s) != 40 {
		return Key{}, fmt.Errorf("curve key: want 40 Z85 characters, got %d", len(s))
	}
	b, err := Z85Decode(s)
	if err != nil {
		return Key{}, fmt.Errorf("curve key: %w", err)
	}
	var k Key
	copy(k[:], b)
	return k, nil
}

// KeyPair is a secret key and the public key derived from it.
type KeyPair struct {
	Public Key
	Secret Key
}

// GenerateKeyPair makes a new key pair from crypto/rand.
func GenerateKeyPair() (KeyPair, error) {
	var kp KeyPair
	if _, err := rand.Read(kp.Secret[:]); err != nil {
		return KeyPair{}, fmt.Errorf("generate curve key: %w", err)
	}
	pub, err := PublicFromSecret(kp.Secret)
	if err != nil {
		return KeyPair{}, err
	}
	kp.Public = pub
	return kp, nil
}

// PublicFromSecret derives the public key of a secret key.
func PublicFromSecret(secret Key) (Key, error) {
	p, err := curve25519.X25519(secret[:], curve25519.Basepoint)
	if err != nil {
		return Key{}, fmt.Errorf("derive curve public key: %w", err)
	}
	var k Key
	copy(k[:], p)
	return k, nil
}

// ReadKeyFile reads the first key of a key file: the Z85 text on a line of
// its own; blank lines and lines starting with '#' are skipped.
func ReadKeyFile(path string) (Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Key{}, fmt.Errorf("read key file: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := ParseKey(line)
		if err != nil {
			return Key{}, fmt.Errorf("key file %s: %w", path, err)
		}
		return k, nil
	}
	return Key{}, fmt.Errorf("key file %s: %w", path, ErrNoKey)
}

// ErrNoKey: a key file holds no key.
var ErrNoKey = errors.New("no key in the file")

// LoadSecretKeyFile reads a secret key file and derives its key pair.
func LoadSecretKeyFile(path string) (KeyPair, error) {
	sec, err := ReadKeyFile(path)
	if err != nil {
		return KeyPair{}, err
	}
	pub, err := PublicFromSecret(sec)
	if err != nil {
		return KeyPair{}, err
	}
	return KeyPair{Public: pub, Secret: sec}, nil
}

// WriteKeyPair writes PREFIX.key (the secret key, mode 0600, created
// exclusively: an existing file is never overwritten) and PREFIX.pub (the
// public key, mode 0644).
func WriteKeyPair(prefix string, kp KeyPair) error {
	secPath, pubPath := prefix+".key", prefix+".pub"
	f, err := os.OpenFile(secPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write secret key: %w", err)
	}
	_, werr := fmt.Fprintf(f, "# huly-net CURVE secret key; public key %s\n%s\n", kp.Public, kp.Secret)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		_ = os.Remove(secPath)
		return fmt.Errorf("write secret key: %w", werr)
	}
	if err := os.WriteFile(pubPath, []byte(kp.Public.String()+"\n"), 0o644); err != nil {
		return fmt.Errorf("write public key: %w", err)
	}
	return nil
}
