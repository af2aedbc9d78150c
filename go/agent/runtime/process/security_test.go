package process_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/agent/runtime"
	"github.com/huly-net/huly-net/go/agent/runtime/process"
	"github.com/huly-net/huly-net/go/auth"
	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/client/clienttest"
	"github.com/huly-net/huly-net/go/curve"
	"github.com/huly-net/huly-net/go/network"
	"github.com/huly-net/huly-net/go/server"
	"github.com/huly-net/huly-net/go/transport"
)

// TestSecuredProcessContainer: on a secured network a keyed agent hands out
// its own endpoint for a process container, where a vouched client key is
// served; the program's own endpoint speaks CURVE and admits only the
// agent, so a client key (vouched or not) and a NULL peer are refused
// there, while routed requests keep working.
func TestSecuredProcessContainer(t *testing.T) {
	needBinary(t)
	dir := t.TempDir()
	srvKP, err := curve.GenerateKeyPair()
	require.NoError(t, err)
	require.NoError(t, curve.WriteKeyPair(filepath.Join(dir, "network"), srvKP))
	agentKP, err := curve.GenerateKeyPair()
	require.NoError(t, err)
	alice, err := curve.GenerateKeyPair()
	require.NoError(t, err)
	keys := "agent " + agentKP.Public.String() + " kinds=echo # build\nclient " + alice.Public.String() + " kinds=echo # alice\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "authorized_keys"), []byte(keys), 0o600))
	sec, err := auth.LoadServer(filepath.Join(dir, "network.key"), filepath.Join(dir, "authorized_keys"), nil, 10, func(string) string { return "" })
	require.NoError(t, err)
	s := server.New(server.Options{
		AliveTimeout: clienttest.AliveTimeout, UnusedTimeout: clienttest.UnusedTimeout, PingInterval: clienttest.PingInterval,
		Logger: clienttest.Quiet(), Security: &server.Security{Auth: sec},
	})
	require.NoError(t, s.Listen("tcp://127.0.0.1:0"))
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(sctx, time.Second) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	addr := s.Addr().String()

	spec := runtime.Spec{Kind: "echo", Command: bins.Path("echo-container"), StopTimeout: 2 * time.Second}
	rt, err := process.New(process.Options{
		Spec: spec, ListenHost: "127.0.0.1", Registry: &runtime.Registry{}, Logger: clienttest.Quiet(),
		NotifyDir: t.TempDir(), Secure: true,
	})
	require.NoError(t, err)
	var mu sync.Mutex
	var started agent.Container
	ac := clienttest.Dial(t, addr, client.WithCurve(agentKP, srvKP.Public))
	a := clienttest.NewAgent(t, clienttest.AgentSetup{
		Options: agent.Options{EndpointServer: backrpc.ServerOptions{Transport: transport.Options{CurveServer: &agentKP}}},
		Kinds: map[string]agent.Factory{"echo": func(ctx context.Context, id string, o network.GetOptions) (agent.Container, error) {
			c, err := rt.Factory(ctx, id, o)
			mu.Lock()
			started = c
			mu.Unlock()
			return c, err
		}},
	})
	require.True(t, a.EndpointSecured())
	require.NoError(t, a.Attach(clienttest.Ctx(t), ac))

	ctx := clienttest.Ctx(t)
	c := clienttest.Dial(t, addr, client.WithCurve(alice, srvKP.Public))
	ref, err := c.Get(ctx, "echo", client.GetOptions{})
	require.NoError(t, err)
	routed, err := ref.Request(ctx, "hello", 1)
	require.NoError(t, err, "routed requests reach the program over the agent's CURVE session")
	assert.Contains(t, string(routed), `"operation":"hello"`)

	ep, err := ref.EndpointRef()
	require.NoError(t, err)
	assert.NotEqual(t, network.RefDirect, ep.Kind, "a secured agent hands out its own endpoint, not the program's")
	conn, err := ref.Connect(ctx)
	require.NoError(t, err)
	defer func() { _ = conn.Close() }()
	direct, err := conn.Request(ctx, "direct-op", "x")
	require.NoError(t, err, "the vouched client key is served through the agent's endpoint")
	assert.Contains(t, string(direct), `"operation":"direct-op"`)

	mu.Lock()
	host, port := started.(agent.DirectEndpoint).DirectEndpoint()
	mu.Unlock()
	program := net.JoinHostPort(host, strconv.Itoa(port))
	dial := func(kp *curve.KeyPair, server curve.Key) *backrpc.Client {
		opts := backrpc.ClientOptions{Logger: clienttest.Quiet()}
		if kp != nil {
			opts.Transport.CurveClient = kp
			opts.Transport.CurveServerKey = server
		}
		bc, err := backrpc.Dial(program, opts, backrpc.ClientHandler{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = bc.Close(context.Background()) })
		return bc
	}
	var re *backrpc.RefusedError
	require.ErrorAs(t, dial(nil, curve.Key{}).WaitConnected(ctx), &re, "a NULL peer is refused at the program's endpoint")
	// Even knowing the program's public key, a client key is refused: only
	// the agent's session is admitted there.
	var progKey curve.Key
	for _, e := range processEnv(t, started.(*process.Container).PID()) {
		if k, ok := cutEnv(e, runtime.EnvCurveSecret); ok {
			sk, err := curve.ParseKey(k)
			require.NoError(t, err)
			progKey, err = curve.PublicFromSecret(sk)
			require.NoError(t, err)
		}
	}
	require.False(t, progKey.IsZero(), "the program got its secret key")
	require.ErrorAs(t, dial(&alice, progKey).WaitConnected(ctx), &re, "a client key is refused at the program's endpoint")
	assert.Contains(t, re.Reason, "not authorized: container "+ref.UUID()+" serves only its agent")
}

func processEnv(t *testing.T, pid int) []string {
	t.Helper()
	require.NotZero(t, pid)
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	require.NoError(t, err)
	return strings.Split(string(b), "\x00")
}

func cutEnv(e, name string) (string, bool) { return strings.CutPrefix(e, name+"=") }
