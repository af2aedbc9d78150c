package main

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/client/clienttest"
)

func TestRetry(t *testing.T) {
	srv := clienttest.StartServer(t)
	var out bytes.Buffer
	require.NoError(t, run(clienttest.Ctx(t), srv.Addr(), &out))
	assert.Equal(t, `get missing: deadline exceeded: true, no agent: true
work:
  attempt 1 failed (unavailable: warming up); next in 20ms
  attempt 2 failed (unavailable: warming up); next in 40ms
  result: done
explode:
  gave up: invalid input
`, out.String())
}

func TestBackoffStopsAtContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := backoff{Base: time.Hour, Max: time.Hour, Attempts: 10}.do(ctx, func(context.Context) error {
		calls++
		cancel() // the wait that follows ends with the context
		return errors.New("connection refused")
	}, func(int, error, time.Duration) {})
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 1, calls)
}
