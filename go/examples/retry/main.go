// Command retry is an example of error handling: which errors to retry,
// with exponential backoff bounded by a context, and which to give up on
// at once.
//
//   - Get retries by itself while no agent offers the kind, until its ctx
//     ends; the error then says why it kept failing.
//   - A container's error arrives as a *client.RemoteError. Whether it is
//     worth retrying is the application's call: here the container says
//     "unavailable" for a passing condition.
//   - Context errors end the retrying.
//
// Run it against a network:
//
//	go run ./cmd/hulyctl serve-echo --with-network   # or huly-network
//	go run ./examples/retry
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/examples/internal/example"
	"github.com/huly-net/huly-net/go/network"
)

func main() { example.Main("retry", run) }

// flaky fails the first two calls of "work" as unavailable, then works;
// "explode" always fails, for good.
type flaky struct {
	agent.Broadcaster
	mu    sync.Mutex
	calls int
}

func newFlaky(context.Context, string, network.GetOptions) (agent.Container, error) {
	return &flaky{}, nil
}

func (f *flaky) Request(_ context.Context, _ string, op string, _ json.RawMessage) (any, error) {
	switch op {
	case "work":
		f.mu.Lock()
		defer f.mu.Unlock()
		f.calls++
		if f.calls <= 2 {
			return nil, errors.New("unavailable: warming up")
		}
		return "done", nil
	case "explode":
		return nil, errors.New("invalid input")
	}
	return nil, fmt.Errorf("unknown operation %s", op)
}

func (f *flaky) Terminate(context.Context) error { return nil }
func (f *flaky) Ping(context.Context) error      { return nil }

// backoff describes the waits between attempts: Base, 2×Base, 4×Base …
// at most Max. Production code adds jitter, so that many clients that
// failed together do not retry together.
type backoff struct {
	Base, Max time.Duration
	Attempts  int
}

// retryable decides what is worth another attempt.
func retryable(err error) bool {
	var remote *client.RemoteError
	if errors.As(err, &remote) {
		return strings.HasPrefix(remote.Message, "unavailable")
	}
	// Our own deadline or cancellation: stop. Anything else is the
	// transport (the network restarting): try again.
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// do calls fn until it succeeds, fails for good, runs out of attempts or
// ctx ends; log sees every failed attempt.
func (b backoff) do(ctx context.Context, fn func(context.Context) error, log func(attempt int, err error, wait time.Duration)) error {
	wait := b.Base
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if !retryable(err) || attempt == b.Attempts {
			return fmt.Errorf("attempt %d: %w", attempt, err)
		}
		log(attempt, err, wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("attempt %d: %w (last error: %w)", attempt, ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, b.Max)
	}
}

func run(ctx context.Context, addr string, out io.Writer) error {
	host, err := client.Dial(addr)
	if err != nil {
		return err
	}
	defer host.Close(context.Background())
	a, err := agent.New(agent.Options{Endpoint: "127.0.0.1:0", Listen: "127.0.0.1:0"})
	if err != nil {
		return err
	}
	defer a.Close(context.Background())
	a.Register("flaky", newFlaky)
	if err := a.Attach(ctx, host); err != nil {
		return err
	}

	c, err := client.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())

	// 1. Nobody offers "missing": Get keeps asking until its deadline.
	gctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = c.Get(gctx, "missing", client.GetOptions{})
	cancel()
	fmt.Fprintf(out, "get missing: deadline exceeded: %v, no agent: %v\n",
		errors.Is(err, context.DeadlineExceeded), err != nil && strings.Contains(err.Error(), "No suitable agents"))

	ref, err := c.Get(ctx, "flaky", client.GetOptions{})
	if err != nil {
		return err
	}
	b := backoff{Base: 20 * time.Millisecond, Max: time.Second, Attempts: 5}
	logf := func(attempt int, err error, wait time.Duration) {
		var remote *client.RemoteError
		if errors.As(err, &remote) {
			err = remote // the container's words, without our context
		}
		fmt.Fprintf(out, "  attempt %d failed (%v); next in %s\n", attempt, err, wait)
	}

	// 2. A passing failure: retried until it works.
	fmt.Fprintln(out, "work:")
	var result string
	err = b.do(ctx, func(ctx context.Context) error {
		var err error
		result, err = client.Call[string](ctx, ref, "work")
		return err
	}, logf)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  result: %s\n", result)

	// 3. A failure for good: not retried.
	fmt.Fprintln(out, "explode:")
	err = b.do(ctx, func(ctx context.Context) error {
		_, err := ref.Request(ctx, "explode", nil)
		return err
	}, logf)
	var remote *client.RemoteError
	if !errors.As(err, &remote) {
		return fmt.Errorf("want the container's error, got %v", err)
	}
	fmt.Fprintf(out, "  gave up: %s\n", remote.Message)
	return nil
}
