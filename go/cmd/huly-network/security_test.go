package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/curve"
	"github.com/huly-net/huly-net/go/internal/testutil"
)

func keyPair(t *testing.T, dir, name string) curve.KeyPair {
	t.Helper()
	kp, err := curve.GenerateKeyPair()
	require.NoError(t, err)
	require.NoError(t, curve.WriteKeyPair(filepath.Join(dir, name), kp))
	return kp
}

func dialKeyed(t *testing.T, addr string, kp *curve.KeyPair, server curve.Key) *backrpc.Client {
	t.Helper()
	opts := backrpc.ClientOptions{}
	if kp != nil {
		opts.Transport.CurveClient = kp
		opts.Transport.CurveServerKey = server
	}
	c, err := backrpc.Dial(addr, opts, backrpc.ClientHandler{})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		_ = c.Close(ctx)
	})
	return c
}

// TestSecuredDaemon runs huly-network with its secret key as a systemd
// credential, an authorized-keys file and two --allow-null-from networks:
// a listed key works, an unlisted key and a NULL peer from elsewhere are
// refused, SIGHUP reloads the keys and closes the removed key's session,
// and the refusals are counted by key name.
func TestSecuredDaemon(t *testing.T) {
	creds := t.TempDir()
	dir := t.TempDir()
	srv := keyPair(t, creds, "network")
	require.NoError(t, os.Rename(filepath.Join(creds, "network.key"), filepath.Join(creds, "curve.key")))
	alice := keyPair(t, dir, "alice")
	bob := keyPair(t, dir, "bob")
	keys := filepath.Join(dir, "authorized_keys")
	write := func(lines ...string) {
		require.NoError(t, os.WriteFile(keys, []byte(strings.Join(lines, "\n")+"\n"), 0o600))
	}
	write("admin "+alice.Public.String()+" # alice", "client "+bob.Public.String()+" kinds=echo # bob")

	sock, notes := testutil.NotifySocket(t)
	port := testutil.FreePort(t)
	metrics := testutil.FreeAddr(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(binary, "--listen", "tcp://"+addr, "--authorized-keys", keys,
		"--allow-null-from", "10.0.0.0/8", "--allow-null-from", "192.168.0.0/16",
		"--metrics-listen", metrics, "--log-format", "text")
	// No --curve-secret-key-file: the credential curve.key turns security on.
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, "CREDENTIALS_DIRECTORY="+creds)
	d := start(t, cmd)
	testutil.WaitFor(t, notes, "READY=1", waitFor)
	assert.Contains(t, d.stderr.String(), "security is on")

	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	a := dialKeyed(t, addr, &alice, srv.Public)
	require.NoError(t, a.WaitConnected(ctx))
	b := dialKeyed(t, addr, &bob, srv.Public)
	require.NoError(t, b.WaitConnected(ctx))
	_, err := b.Request(ctx, "al", struct{}{})
	require.NoError(t, err)

	stranger := keyPair(t, dir, "stranger")
	var re *backrpc.RefusedError
	require.ErrorAs(t, dialKeyed(t, addr, &stranger, srv.Public).WaitConnected(ctx), &re)
	require.ErrorAs(t, dialKeyed(t, addr, nil, curve.Key{}).WaitConnected(ctx), &re)
	assert.Contains(t, re.Error(), "requires CURVE security")
	require.Eventually(t, func() bool {
		return strings.Contains(d.stderr.String(), "its address is not in --allow-null-from 10.0.0.0/8,192.168.0.0/16")
	}, waitFor, 10*time.Millisecond, "the NULL peer's refusal is logged with the allow-list")

	// bob is removed; SIGHUP closes his session, alice's stays.
	write("admin " + alice.Public.String() + " # alice")
	conns := a.Stats().Connections
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return strings.Contains(d.stderr.String(), "authorized keys reloaded") }, waitFor, 10*time.Millisecond)
	_, err = b.Request(ctx, "al", struct{}{})
	require.ErrorAs(t, err, &re)
	_, err = a.Request(ctx, "al", struct{}{})
	require.NoError(t, err)
	assert.Equal(t, conns, a.Stats().Connections)
	require.Eventually(t, func() bool { return strings.Contains(d.stderr.String(), "SECURITY_EVENT=session_closed") }, waitFor, 10*time.Millisecond)

	resp, err := http.Get("http://" + metrics + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for _, m := range []string{
		`huly_network_security_events_total{event="handshake_refused"}`,
		`huly_network_security_refusals_total{event="session_closed",key="bob"} 1`,
		`huly_network_security_refusals_total{event="handshake_refused",key="NULL"}`,
	} {
		assert.Contains(t, string(body), m)
	}

	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 0, d.wait(t))
}

func TestSecuritySettingsErrorsExit2(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	keyPair(t, dir, "network")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bad_keys"), []byte("client nonsense kinds=echo\n"), 0o600))
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"keys without secret": {args: []string{"--authorized-keys", filepath.Join(dir, "bad_keys")}, want: "security is off without a server secret key"},
		"secret without keys": {args: []string{"--curve-secret-key-file", filepath.Join(dir, "network.key")}, want: "needs authorized_keys"},
		"bad keys file":       {args: []string{"--curve-secret-key-file", filepath.Join(dir, "network.key"), "--authorized-keys", filepath.Join(dir, "bad_keys")}, want: "bad_keys:1"},
		"missing credential":  {args: []string{"--curve-secret-key-file", "credential:nope.key", "--authorized-keys", filepath.Join(dir, "bad_keys")}, want: "CREDENTIALS_DIRECTORY"},
		"bad cidr":            {args: []string{"--curve-secret-key-file", filepath.Join(dir, "network.key"), "--authorized-keys", filepath.Join(dir, "bad_keys"), "--allow-null-from", "nowhere"}, want: "bad_keys:1"},
	} {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(binary, append([]string{"--listen", "tcp://127.0.0.1:0"}, tc.args...)...)
			cmd.Env = append(os.Environ(), "CREDENTIALS_DIRECTORY=")
			out, err := cmd.CombinedOutput()
			assert.Equal(t, 2, testutil.ExitCode(err), string(out))
			assert.Contains(t, string(out), tc.want)
		})
	}
}
