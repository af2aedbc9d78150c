package transport

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/curve"
)

// libzmqPython finds a Python with pyzmq (Debian: python3-zmq, which brings
// libzmq5, the library the TypeScript client's zeromq package wraps).
func libzmqPython(t *testing.T) string {
	t.Helper()
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if err := exec.Command(py, "-c", "import zmq").Run(); err == nil {
			return py
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("pyzmq not installed; tests/run installs python3-zmq")
	}
	t.Skip("libzmq interop: no python3 with pyzmq (apt-get install python3-zmq)")
	return ""
}

func TestLibzmqDealerAgainstRouter(t *testing.T) {
	py := libzmqPython(t)
	for _, identity := range []string{"-", "ts-client"} {
		t.Run("identity="+identity, func(t *testing.T) {
			peers := make(chan PeerID, 4)
			r, err := replyingRouter("tcp://127.0.0.1:0", Options{}, func(r *Router, p PeerID, f [][]byte) {
				peers <- p
				_ = r.Send(p, []byte("2"), f[1], []byte(`"ok"`))
			})
			require.NoError(t, err)
			defer r.Close()

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, py, "testdata/libzmq_peer.py", "dealer", "tcp://"+r.Addr().String(), identity).CombinedOutput()
			require.NoError(t, err, string(out))
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			require.Len(t, lines, 2, string(out))
			for i, line := range lines {
				var frames []string
				require.NoError(t, json.Unmarshal([]byte(line), &frames))
				assert.Equal(t, []string{"2", "req-" + string(rune('0'+i)), `"ok"`}, frames)
			}
			p1, p2 := <-peers, <-peers
			assert.Equal(t, p1, p2, "both requests came over one connection")
			if identity != "-" {
				assert.Equal(t, PeerID(identity), p1)
			} else {
				assert.Len(t, string(p1), 5)
			}
			// Heartbeats were answered: libzmq never had to reconnect.
			assert.Equal(t, uint64(1), r.Stats().Accepted)
		})
	}
}

func TestDealerAgainstLibzmqRouter(t *testing.T) {
	py := libzmqPython(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "testdata/libzmq_peer.py", "router")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Wait() }()
	sc := bufio.NewScanner(stdout)
	require.True(t, sc.Scan(), "peer printed no port")
	port := strings.TrimSpace(sc.Text())

	d := dialPipe(t, "tcp://127.0.0.1:"+port, DealerOptions{Identity: []byte("go-dealer")})
	d.waitConnected(t)
	require.NoError(t, d.Send([]byte("a"), []byte("b")))
	assert.Equal(t, [][]byte{[]byte("a ok"), []byte("b ok")}, d.recv(t))
	require.True(t, sc.Scan())
	assert.JSONEq(t, `{"identity":"`+"676f2d6465616c6572"+`"}`, sc.Text())
}

// A DEALER's hello travels with its READY command, before libzmq's READY
// has arrived: libzmq must take it as the first message.
func TestDealerHelloAgainstLibzmqRouter(t *testing.T) {
	py := libzmqPython(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "testdata/libzmq_peer.py", "router")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Wait() }()
	sc := bufio.NewScanner(stdout)
	require.True(t, sc.Scan(), "peer printed no port")
	port := strings.TrimSpace(sc.Text())

	d := dialPipe(t, "tcp://127.0.0.1:"+port, DealerOptions{Identity: []byte("go-dealer"), Hello: [][]byte{[]byte("hi"), []byte("there")}})
	assert.Equal(t, [][]byte{[]byte("hi ok"), []byte("there ok")}, d.recv(t))
}

// startPyPeer starts the libzmq peer script in mode and returns a scanner
// of its output lines.
func startPyPeer(t *testing.T, args ...string) *bufio.Scanner {
	t.Helper()
	py := libzmqPython(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, py, append([]string{"testdata/libzmq_peer.py"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	return bufio.NewScanner(stdout)
}

func scanLine(t *testing.T, sc *bufio.Scanner) string {
	t.Helper()
	require.True(t, sc.Scan(), "libzmq peer ended early: %v", sc.Err())
	return strings.TrimSpace(sc.Text())
}

// A libzmq DEALER with CURVE keys (and heartbeats, which travel as sealed
// commands) against our CURVE ROUTER: requests and answers both ways, and
// the Router knows the client's key.
func TestLibzmqCurveDealerAgainstRouter(t *testing.T) {
	libzmqPython(t)
	server := mustKeyPair(t)
	keys := make(chan curve.Key, 4)
	peers := make(chan PeerID, 4)
	r, err := replyingRouter("tcp://127.0.0.1:0", Options{
		CurveServer: &server,
		CurveAuthenticate: func(_ context.Context, k curve.Key, _ net.Addr) error {
			keys <- k
			return nil
		},
	}, func(r *Router, p PeerID, f [][]byte) {
		peers <- p
		_ = r.Send(p, []byte("2"), f[1], []byte(`"ok"`))
	})
	require.NoError(t, err)
	defer r.Close()

	sc := startPyPeer(t, "curve-dealer", "tcp://"+r.Addr().String(), server.Public.String())
	clientKey, err := curve.ParseKey(scanLine(t, sc))
	require.NoError(t, err)
	for i := 0; i < 2; i++ {
		var frames []string
		require.NoError(t, json.Unmarshal([]byte(scanLine(t, sc)), &frames))
		assert.Equal(t, []string{"2", "req-" + string(rune('0'+i)), `"ok"`}, frames)
	}
	assert.Equal(t, clientKey, <-keys)
	p := <-peers
	info, ok := r.PeerInfo(p)
	if ok { // the peer may have closed already
		assert.Equal(t, MechanismCurve, info.Mechanism)
		assert.Equal(t, clientKey, info.PublicKey)
	}
	assert.Equal(t, uint64(1), r.Stats().Accepted, "heartbeats answered: no reconnect")
}

// Our CURVE DEALER against a libzmq CURVE ROUTER, whose ZAP handler sees
// our key; the hello goes first.
func TestDealerAgainstLibzmqCurveRouter(t *testing.T) {
	sc := startPyPeer(t, "curve-router")
	serverKey, err := curve.ParseKey(scanLine(t, sc))
	require.NoError(t, err)
	port := scanLine(t, sc)
	client := mustKeyPair(t)
	d := dialPipe(t, "tcp://127.0.0.1:"+port, DealerOptions{
		Identity: []byte("go-dealer"),
		Hello:    [][]byte{[]byte("hi"), bytes.Repeat([]byte("x"), 1000)},
		Options:  Options{CurveClient: &client, CurveServerKey: serverKey},
	})
	assert.Equal(t, [][]byte{[]byte("hi ok"), append(bytes.Repeat([]byte("x"), 1000), " ok"...)}, d.recv(t))
	var seen struct{ Identity, User string }
	require.NoError(t, json.Unmarshal([]byte(scanLine(t, sc)), &seen))
	assert.Equal(t, "676f2d6465616c6572", seen.Identity)
	assert.Equal(t, client.Public.String(), seen.User)
}

// A libzmq client whose key the authenticator refuses gets ERROR, which
// libzmq reports as a failed handshake; nothing reaches the handler.
func TestLibzmqCurveUnauthorizedKeyRefused(t *testing.T) {
	libzmqPython(t)
	server := mustKeyPair(t)
	got := make(chan struct{}, 1)
	r, err := replyingRouter("tcp://127.0.0.1:0", Options{
		CurveServer: &server,
		CurveAuthenticate: func(context.Context, curve.Key, net.Addr) error {
			return errors.New("key not authorized")
		},
	}, func(*Router, PeerID, [][]byte) { got <- struct{}{} })
	require.NoError(t, err)
	defer r.Close()
	sc := startPyPeer(t, "curve-refused", "tcp://"+r.Addr().String(), server.Public.String())
	scanLine(t, sc) // the client's key
	assert.Equal(t, "refused", scanLine(t, sc))
	assert.GreaterOrEqual(t, r.Stats().Rejected, uint64(1))
	assert.Empty(t, got)
}
