package client_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/auth"
	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/client/clienttest"
	"github.com/huly-net/huly-net/go/curve"
	"github.com/huly-net/huly-net/go/server"
)

// startSecuredServer runs a network with security on; keys maps a name to
// an authorized-keys line without the key ("agent kinds=echo").
func startSecuredServer(t *testing.T, keys map[string]string) (addr string, serverKey curve.Key, pairs map[string]curve.KeyPair) {
	t.Helper()
	dir := t.TempDir()
	srvKP, err := curve.GenerateKeyPair()
	require.NoError(t, err)
	require.NoError(t, curve.WriteKeyPair(filepath.Join(dir, "network"), srvKP))
	pairs = map[string]curve.KeyPair{}
	var lines string
	for name, line := range keys {
		kp, err := curve.GenerateKeyPair()
		require.NoError(t, err)
		pairs[name] = kp
		role, rest, _ := cutFirst(line)
		lines += role + " " + kp.Public.String() + " " + rest + " # " + name + "\n"
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "authorized_keys"), []byte(lines), 0o600))
	sec, err := auth.LoadServer(filepath.Join(dir, "network.key"), filepath.Join(dir, "authorized_keys"), nil, 10, func(string) string { return "" })
	require.NoError(t, err)
	s := server.New(server.Options{
		AliveTimeout: clienttest.AliveTimeout, UnusedTimeout: clienttest.UnusedTimeout, PingInterval: clienttest.PingInterval,
		Logger: clienttest.Quiet(), Security: &server.Security{Auth: sec},
	})
	require.NoError(t, s.Listen("tcp://127.0.0.1:0"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, time.Second) }()
	t.Cleanup(func() { cancel(); <-done })
	return s.Addr().String(), srvKP.Public, pairs
}

func cutFirst(s string) (string, string, bool) {
	for i, r := range s {
		if r == ' ' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func TestKeyedAgentAndClient(t *testing.T) {
	addr, srvKey, keys := startSecuredServer(t, map[string]string{"build": "agent kinds=echo", "alice": "client kinds=echo", "carol": "client kinds=db"})
	ac := clienttest.Dial(t, addr, client.WithCurve(keys["build"], srvKey))
	a := clienttest.NewAgent(t, clienttest.AgentSetup{NoConnect: true, Kinds: clienttest.EchoKinds()})
	require.NoError(t, a.Attach(clienttest.Ctx(t), ac))

	c := clienttest.Dial(t, addr, client.WithCurve(keys["alice"], srvKey))
	ref, err := c.Get(clienttest.Ctx(t), "echo", client.GetOptions{})
	require.NoError(t, err)
	res, err := ref.Request(clienttest.Ctx(t), "echo", map[string]int{"n": 1})
	require.NoError(t, err)
	assert.Contains(t, string(res), `"n":1`)

	// A key for another kind is refused at once, not retried.
	carol := clienttest.Dial(t, addr, client.WithCurve(keys["carol"], srvKey))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = carol.Get(ctx, "echo", client.GetOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `not authorized: key carol may not get kind "echo"`)
	assert.NoError(t, ctx.Err())
}

func TestRefusedKeyFailsAtOnce(t *testing.T) {
	addr, srvKey, _ := startSecuredServer(t, map[string]string{"alice": "client kinds=echo"})
	stranger, err := curve.GenerateKeyPair()
	require.NoError(t, err)
	c, err := client.Dial(addr, clienttest.Options(client.WithCurve(stranger, srvKey))...)
	require.NoError(t, err)
	defer c.Close(context.Background()) //nolint:errcheck
	err = c.WaitConnected(clienttest.Ctx(t))
	var re *client.RefusedError
	require.ErrorAs(t, err, &re)
	assert.Contains(t, err.Error(), "network refused our key: ")
	assert.Contains(t, err.Error(), "not in the authorized keys")
	// A call does not wait for a session that will not come.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = c.Get(ctx, "echo", client.GetOptions{})
	require.ErrorAs(t, err, &re)
	assert.NoError(t, ctx.Err(), "refused before the call's deadline")

	// Without a key at all the network says it wants one.
	n, err := client.Dial(addr, clienttest.Options()...)
	require.NoError(t, err)
	defer n.Close(context.Background()) //nolint:errcheck
	err = n.WaitConnected(clienttest.Ctx(t))
	require.ErrorAs(t, err, &re)
	assert.Contains(t, err.Error(), "network refused us: ")
}
