package nspawn_test

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/agent/runtime"
	"github.com/huly-net/huly-net/go/agent/runtime/nspawn"
	"github.com/huly-net/huly-net/go/agent/runtime/transient"
	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/client/clienttest"
	"github.com/huly-net/huly-net/go/container"
	"github.com/huly-net/huly-net/go/internal/testutil"
	"github.com/huly-net/huly-net/go/network"
)

type noUnits struct{ transient.Units }

type machines struct {
	mu         sync.Mutex
	terminated []string
}

func (m *machines) ListMachines(context.Context) ([]string, error) { return nil, nil }
func (m *machines) TerminateMachine(_ context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.terminated = append(m.terminated, name)
	return nil
}

func TestMachineName(t *testing.T) {
	assert.Equal(t, "huly-web-3f2a9c1b", nspawn.MachineName("web", "3f2a9c1b-0000-4000-8000-000000000000"))
	assert.Equal(t, "huly-my-kind-abc", nspawn.MachineName("my_kind", "abc"))
}

func TestNeedsOneTreeAndAPort(t *testing.T) {
	base := nspawn.Options{Spec: runtime.Spec{Kind: "web", Command: "/bin/web"}, Units: noUnits{}, Machines: &machines{}, StateDir: t.TempDir()}
	o := base
	_, err := nspawn.New(o)
	require.ErrorContains(t, err, "exactly one of directory and image")
	o.Directory, o.PrivateNetwork = "/var/lib/machines/web", true
	_, err = nspawn.New(o)
	require.ErrorContains(t, err, "nspawn.port")
}

// echo is the program "inside the machine".
type echo struct{ host *container.Host }

func (e *echo) Start(_ context.Context, h *container.Host) error { e.host = h; return nil }
func (e *echo) Request(_ context.Context, _ string, op string, _ json.RawMessage) (any, error) {
	return map[string]string{"op": op, "uuid": e.host.Info().UUID}, nil
}

// TestPrivateNetworkTwoTiers checks the systemd-nspawn command line and
// runs both tiers of the bridge without a machine: the program serves
// 127.0.0.1:PORT with the SDK's relay on the socket the agent binds into
// the machine, and a client reaches it at the host port.
func TestPrivateNetworkTwoTiers(t *testing.T) {
	state := testutil.ShortTempDir(t)
	m := &machines{}
	rt, err := nspawn.New(nspawn.Options{
		Spec:       runtime.Spec{Kind: "web", Command: "/nix/store/x/bin/echo-container", Args: []string{"-v"}},
		ListenHost: "127.0.0.1", Directory: "/var/lib/machines/web", PrivateNetwork: true,
		Bind: []string{"/nix/store:/nix/store"}, Port: testutil.FreePort(t), StateDir: state,
		Units: noUnits{}, Machines: m, Logger: clienttest.Quiet(),
	})
	require.NoError(t, err)
	id := "3f2a9c1b-0000-4000-8000-000000000000"
	l, err := rt.Prepare(clienttest.Ctx(t), id, network.GetOptions{Labels: []string{"a"}})
	require.NoError(t, err)
	defer l.Release()

	hostDir := filepath.Join(state, "machines", "huly-web-3f2a9c1b")
	cmd := strings.Join(l.ExecStart, " ")
	for _, want := range []string{
		"systemd-nspawn --quiet --keep-unit --register=yes --machine=huly-web-3f2a9c1b --notify-ready=yes",
		"--directory=/var/lib/machines/web", "--private-network",
		"--bind=" + hostDir + ":/run/huly", "--bind=/nix/store:/nix/store",
		"--setenv=HULY_CONTAINER_UUID=" + id, "--setenv=HULY_RELAY_LISTEN=unix:/run/huly/relay.sock",
		"-- /nix/store/x/bin/echo-container -v",
	} {
		assert.Contains(t, cmd, want)
	}
	assert.Contains(t, l.Environment, "HULY_CONTAINER_UUID="+id, "the unit says whose it is, for adoption")

	// "Inside": the SDK with the environment nspawn would pass, the relay
	// socket in the directory that is bound to /run/huly.
	inner := map[string]string{}
	for _, a := range l.ExecStart {
		if kv, ok := strings.CutPrefix(a, "--setenv="); ok {
			k, v, _ := strings.Cut(kv, "=")
			inner[k] = v
		}
	}
	inner[runtime.EnvRelay] = "unix:" + filepath.Join(hostDir, nspawn.RelaySocket)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- container.ServeWith(ctx, &echo{}, container.Options{
			Getenv: func(k string) string { return inner[k] }, NoSignals: true, Logger: clienttest.Quiet(),
			OnReady: func(*container.Host) { close(ready) },
		})
	}()
	defer func() { cancel(); <-done }()
	<-ready
	fi, err := os.Stat(filepath.Join(hostDir, nspawn.RelaySocket))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o666), fi.Mode().Perm(), "the agent's user may connect to the relay")

	assert.Equal(t, "127.0.0.1", l.AdvertiseHost)
	cl, err := backrpc.Dial(l.Dial, backrpc.ClientOptions{Logger: clienttest.Quiet()}, backrpc.ClientHandler{})
	require.NoError(t, err)
	defer func() { _ = cl.Close(context.Background()) }()
	res, err := cl.Request(clienttest.Ctx(t), "through-two-tiers", nil)
	require.NoError(t, err)
	assert.JSONEq(t, `{"op":"through-two-tiers","uuid":"`+id+`"}`, string(res))
	_, port, _ := net.SplitHostPort(l.Dial)
	assert.Contains(t, l.Environment, "HULY_HOST_PORT="+port)

	require.NoError(t, l.BeforeStop(clienttest.Ctx(t)))
	assert.Equal(t, []string{"huly-web-3f2a9c1b"}, m.terminated, "stopping terminates the machine through machined")
}
