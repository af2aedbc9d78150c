package client_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/auth"
	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/client/clienttest"
	"github.com/huly-net/huly-net/go/curve"
	"github.com/huly-net/huly-net/go/server"
	"github.com/huly-net/huly-net/go/transport"
)

// startSecuredServer runs a network with security on; keys maps a name to
// an authorized-keys line without the key ("agent kinds=echo").
func startSecuredServer(t *testing.T, keys map[string]string) (addr string, serverKey curve.Key, pairs map[string]curve.KeyPair) {
	t.Helper()
	addr, serverKey, pairs, _, _ = startSecuredServerFile(t, keys)
	return addr, serverKey, pairs
}

// startSecuredServerFile also returns the server and its authorized-keys
// file.
func startSecuredServerFile(t *testing.T, keys map[string]string) (addr string, serverKey curve.Key, pairs map[string]curve.KeyPair, srv *server.Server, keysFile string) {
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
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return s.Addr().String(), srvKP.Public, pairs, s, filepath.Join(dir, "authorized_keys")
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

// TestDirectConnectionsOnlyForVouchedKeys: a keyed agent's endpoint speaks
// CURVE with the agent's key and admits a client key only for the
// containers the network vouched for when it handed out the reference.
func TestDirectConnectionsOnlyForVouchedKeys(t *testing.T) {
	addr, srvKey, keys, srv, keysFile := startSecuredServerFile(t, map[string]string{"build": "agent kinds=echo", "alice": "client kinds=echo", "bob": "client kinds=echo"})
	agentKP := keys["build"]
	ac := clienttest.Dial(t, addr, client.WithCurve(agentKP, srvKey))
	a := clienttest.NewAgent(t, clienttest.AgentSetup{
		Options: agent.Options{EndpointServer: backrpc.ServerOptions{Transport: transport.Options{CurveServer: &agentKP}}},
		Kinds:   clienttest.EchoKinds(),
	})
	require.NoError(t, a.Attach(clienttest.Ctx(t), ac))
	endpoint := a.Addr().String()

	alice := clienttest.Dial(t, addr, client.WithCurve(keys["alice"], srvKey))
	ref, err := alice.Get(clienttest.Ctx(t), "echo", client.GetOptions{})
	require.NoError(t, err)
	conn, err := ref.Connect(clienttest.Ctx(t))
	require.NoError(t, err)
	res, err := conn.Request(clienttest.Ctx(t), "echo", map[string]int{"n": 2})
	require.NoError(t, err)
	assert.Contains(t, string(res), `"n":2`)

	dialEndpoint := func(kp *curve.KeyPair) *backrpc.Client {
		opts := backrpc.ClientOptions{Logger: clienttest.Quiet()}
		if kp != nil {
			opts.Transport.CurveClient = kp
			opts.Transport.CurveServerKey = agentKP.Public
		}
		c, err := backrpc.Dial(endpoint, opts, backrpc.ClientHandler{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close(context.Background()) })
		return c
	}
	// alice's key, vouched: its container only.
	ad := dialEndpoint(ptr(keys["alice"]))
	require.NoError(t, ad.WaitConnected(clienttest.Ctx(t)))
	_, err = ad.Request(clienttest.Ctx(t), "cs", []any{ref.UUID(), "echo", 1})
	require.NoError(t, err)
	_, err = ad.Request(clienttest.Ctx(t), "cs", []any{"some-other-container", "echo", 1})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not authorized: the network has not vouched")

	// bob is authorized at the network but got nothing: refused at the
	// handshake; so is a peer without a key.
	var re *backrpc.RefusedError
	require.ErrorAs(t, dialEndpoint(ptr(keys["bob"])).WaitConnected(clienttest.Ctx(t)), &re)
	assert.Contains(t, re.Reason, "has not vouched")
	require.ErrorAs(t, dialEndpoint(nil).WaitConnected(clienttest.Ctx(t)), &re)
	assert.GreaterOrEqual(t, a.EndpointRefusals(), uint64(2), "the foreign container and bob's handshake are counted")

	// alice's key is removed: the network withdraws its vouches, the
	// agent closes her endpoint session and refuses her key from then on.
	require.NoError(t, os.WriteFile(keysFile, []byte("agent "+agentKP.Public.String()+" kinds=echo # build\n"), 0o600))
	_, err = srv.ReloadKeys()
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := ad.Request(clienttest.Ctx(t), "cs", []any{ref.UUID(), "echo", 1})
		return errors.As(err, &re)
	}, clienttest.WaitFor, 20*time.Millisecond, "alice's endpoint session is closed and her key refused")
}

func ptr[T any](v T) *T { return &v }
