package container_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/client/clienttest"
	"github.com/huly-net/huly-net/go/container"
	"github.com/huly-net/huly-net/go/curve"
	"github.com/huly-net/huly-net/go/internal/testutil"
)

// On a secured network the endpoint speaks CURVE with the key the agent
// made for it and admits only the listed client keys; other keys and NULL
// peers are refused at the handshake with a reason.
func TestServeSecuredAdmitsOnlyListedKeys(t *testing.T) {
	notifyPath, notes := testutil.NotifySocket(t)
	t.Setenv("NOTIFY_SOCKET", notifyPath)
	srvKP, err := curve.GenerateKeyPair()
	require.NoError(t, err)
	agentKP, err := curve.GenerateKeyPair()
	require.NoError(t, err)
	otherKP, err := curve.GenerateKeyPair()
	require.NoError(t, err)
	env := map[string]string{
		"HULY_CONTAINER_UUID": "c1", "HULY_CONTAINER_KIND": "k", "HULY_LISTEN": "127.0.0.1:0",
		container.EnvCurveSecret: srvKP.Secret.String(), container.EnvCurveClients: agentKP.Public.String(),
	}
	in, err := container.InfoFromEnv(func(k string) string { return env[k] })
	require.NoError(t, err)
	require.NotNil(t, in.Curve)
	assert.Equal(t, srvKP.Public, in.Curve.Public, "the public key is derived from the secret")
	assert.Equal(t, []curve.Key{agentKP.Public}, in.CurveClients)

	im := &impl{stopped: make(chan struct{}), conns: make(chan string, 8)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan *container.Host, 1)
	done := make(chan error, 1)
	go func() {
		done <- container.ServeWith(ctx, im, container.Options{
			Getenv: func(k string) string { return env[k] }, NoSignals: true, Logger: clienttest.Quiet(),
			OnReady: func(h *container.Host) { ready <- h },
		})
	}()
	testutil.WaitFor(t, notes, "READY=1", clienttest.WaitFor)
	addr := (<-ready).Addr().String()

	dial := func(kp *curve.KeyPair) *backrpc.Client {
		opts := backrpc.ClientOptions{Logger: clienttest.Quiet()}
		if kp != nil {
			opts.Transport.CurveClient = kp
			opts.Transport.CurveServerKey = srvKP.Public
		}
		c, err := backrpc.Dial(addr, opts, backrpc.ClientHandler{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close(context.Background()) })
		return c
	}
	ag := dial(&agentKP)
	res, err := ag.Request(clienttest.Ctx(t), "hello", 1)
	require.NoError(t, err, "the listed key (the agent's) is served")
	assert.Contains(t, string(res), `"uuid":"c1"`)

	var re *backrpc.RefusedError
	require.ErrorAs(t, dial(&otherKP).WaitConnected(clienttest.Ctx(t)), &re, "an unlisted key is refused")
	assert.Contains(t, re.Reason, "not authorized: container c1 serves only its agent")
	require.ErrorAs(t, dial(nil).WaitConnected(clienttest.Ctx(t)), &re, "a NULL peer is refused")

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(clienttest.WaitFor):
		require.FailNow(t, "Serve did not return")
	}
}

func TestInfoFromEnvCurveNeedsClientKeys(t *testing.T) {
	kp, err := curve.GenerateKeyPair()
	require.NoError(t, err)
	env := map[string]string{"HULY_CONTAINER_UUID": "c1", container.EnvCurveSecret: kp.Secret.String()}
	_, err = container.InfoFromEnv(func(k string) string { return env[k] })
	require.Error(t, err)
	assert.Contains(t, err.Error(), container.EnvCurveClients)
	env[container.EnvCurveClients] = "not-a-key"
	_, err = container.InfoFromEnv(func(k string) string { return env[k] })
	require.Error(t, err)
	assert.Contains(t, err.Error(), container.EnvCurveClients)
}
