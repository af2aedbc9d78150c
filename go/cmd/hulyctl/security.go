package main

import (
	"errors"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/huly-net/huly-net/go/auth"
	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/transport"
)

// securityFlags are hulyctl's CURVE settings, resolved as the daemons
// resolve theirs: --curve-secret-key-file may be a path, credential:NAME
// (a systemd credential), or empty with a credential named curve.key.
type securityFlags struct {
	secretKeyFile string
	serverKey     string
	getenv        func(string) string
}

func (a *app) addSecurityFlags(pf *pflag.FlagSet, getenv func(string) string) {
	a.sec.getenv = getenv
	pf.StringVar(&a.sec.serverKey, "curve-server-key", getenv("HULY_CURVE_SERVER_KEY"),
		"the network's CURVE public key (Z85, 40 characters) for a secured network (env HULY_CURVE_SERVER_KEY)")
	pf.StringVar(&a.sec.secretKeyFile, "curve-secret-key-file", getenv("HULY_CURVE_SECRET_KEY_FILE"),
		"our CURVE secret key file; credential:NAME reads a systemd credential, and the credential curve.key is used when present (env HULY_CURVE_SECRET_KEY_FILE)")
}

// securityOption reads the keys; nil option list when security is off.
func (a *app) securityOptions() ([]client.Option, error) {
	c, err := auth.LoadClient(a.sec.secretKeyFile, a.sec.serverKey, a.sec.getenv)
	if err != nil {
		return nil, usageError("%v", err)
	}
	if c == nil {
		return nil, nil
	}
	for _, w := range c.Warnings {
		a.log.Warn(w)
	}
	return []client.Option{client.WithSecurity(c)}, nil
}

// refusal turns a refused handshake into the error hulyctl prints.
func (a *app) refusal(err error) error {
	var re *client.RefusedError
	if errors.As(err, &re) {
		return fmt.Errorf("network %s: %w", a.network, re)
	}
	return nil
}

// endpointSecurity makes serve-echo's endpoint speak CURVE with our key
// when we connect to the network with one (errors were reported by dial).
func (a *app) endpointSecurity() backrpc.ServerOptions {
	c, err := auth.LoadClient(a.sec.secretKeyFile, a.sec.serverKey, a.sec.getenv)
	if err != nil || c == nil {
		return backrpc.ServerOptions{}
	}
	kp := c.KeyPair
	return backrpc.ServerOptions{Transport: transport.Options{CurveServer: &kp}}
}
