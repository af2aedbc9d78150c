package transport

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
