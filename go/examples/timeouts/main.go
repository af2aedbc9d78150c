// Command timeouts is an example of the timeouts a client chooses.
//
//   - The alive timeout, announced in hello, is how long the network keeps
//     a silent client (and the agents it hosts, and its references). The
//     default is 3 s; a development client that may sit in a debugger for
//     a while asks for an hour, so that the network does not drop its
//     agents while it is paused.
//   - Every call is bounded by its context: a slow operation ends with
//     context.DeadlineExceeded for the caller. The protocol has no way to
//     cancel a request, so the container finishes its work anyway;
//     containers bound their own work.
//   - Close is bounded by its context and by WithCloseTimeout, even when
//     the network is gone.
//
// Run it against a network:
//
//	go run ./cmd/hulyctl serve-echo --with-network   # or huly-network
//	go run ./examples/timeouts
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/examples/internal/example"
	"github.com/huly-net/huly-net/go/network"
)

func main() { example.Main("timeouts", run) }

// sleeper answers "sleep" after the given number of milliseconds, or
// earlier when its context ends.
type sleeper struct{ agent.Broadcaster }

func newSleeper(context.Context, string, network.GetOptions) (agent.Container, error) {
	return &sleeper{}, nil
}

func (s *sleeper) Request(ctx context.Context, _ string, op string, data json.RawMessage) (any, error) {
	if op != "sleep" {
		return nil, fmt.Errorf("unknown operation %s", op)
	}
	var args []int // client.Call sends its arguments as an array
	if err := json.Unmarshal(data, &args); err != nil || len(args) != 1 {
		return nil, errors.New("sleep: want [milliseconds]")
	}
	t := time.NewTimer(time.Duration(args[0]) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return "slept", nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *sleeper) Terminate(context.Context) error { return nil }
func (s *sleeper) Ping(context.Context) error      { return nil }

func run(ctx context.Context, addr string, out io.Writer) error {
	// A development agent: the network keeps it for an hour of silence.
	dev, err := client.Dial(addr,
		client.WithAliveTimeout(time.Hour),
		client.WithCloseTimeout(2*time.Second),
	)
	if err != nil {
		return err
	}
	defer dev.Close(context.Background())
	a, err := agent.New(agent.Options{Endpoint: "127.0.0.1:0", Listen: "127.0.0.1:0"})
	if err != nil {
		return err
	}
	defer a.Close(context.Background())
	a.Register("sleeper", newSleeper)
	if err := a.Attach(ctx, dev); err != nil {
		return err
	}
	fmt.Fprintln(out, "development agent registered with a 1h alive timeout")

	// An ordinary client with the defaults.
	c, err := client.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	ref, err := c.Get(ctx, "sleeper", client.GetOptions{})
	if err != nil {
		return err
	}

	for _, call := range []struct {
		sleep, timeout time.Duration
	}{{500 * time.Millisecond, 100 * time.Millisecond}, {50 * time.Millisecond, 5 * time.Second}} {
		cctx, cancel := context.WithTimeout(ctx, call.timeout)
		res, err := client.Call[string](cctx, ref, "sleep", call.sleep.Milliseconds())
		cancel()
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			fmt.Fprintf(out, "sleep %s with a %s timeout: deadline exceeded\n", call.sleep, call.timeout)
		case err != nil:
			return err
		default:
			fmt.Fprintf(out, "sleep %s with a %s timeout: %s\n", call.sleep, call.timeout, res)
		}
	}

	// Close is bounded even when nobody answers any more.
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := c.Close(cctx); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	fmt.Fprintln(out, "client closed")
	return nil
}
