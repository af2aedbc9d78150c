package bridge

import (
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestListenBacklogTakesABurst opens a listener that does not accept yet
// and connects 300 clients at once: every handshake must complete into the
// accept queue. socat's backlog of 5, or Go's fallback of 128 where /proc/sys
// is hidden, would leave the rest retransmitting SYNs.
func TestListenBacklogTakesABurst(t *testing.T) {
	const burst = 300
	raw, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	require.NoError(t, err)
	somaxconn, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	require.NoError(t, err)
	if somaxconn < burst+10 {
		t.Skipf("net.core.somaxconn is %d; the kernel caps every backlog below this burst", somaxconn)
	}

	ln, err := listen(context.Background(), Address{Network: "tcp", Addr: "127.0.0.1:0"})
	require.NoError(t, err)
	defer ln.Close()

	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	var failures []error
	for i := 0; i < burst; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failures = append(failures, err)
				return
			}
			conns = append(conns, c)
		}()
	}
	wg.Wait()
	for _, c := range conns {
		_ = c.Close()
	}
	if !assert.Zero(t, len(failures), "connections that did not fit the backlog") {
		t.Logf("first failure: %v", failures[0])
	}
	assert.Equal(t, burst, len(conns))
}
