package stream

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const waitFor = 5 * time.Second

func forever(ended chan<- error) Func {
	return func(ctx context.Context, emit Emitter) error {
		var err error
		for i := 0; err == nil; i++ {
			err = emit.Emit(ctx, i)
		}
		ended <- err
		return err
	}
}

func TestAStreamNobodyReadsExpires(t *testing.T) {
	r := NewRegistry(Options{IdleTimeout: 50 * time.Millisecond})
	defer r.Close(context.Background())
	ended := make(chan error, 1)
	b, err := r.Open(context.Background(), "me", 4, forever(ended))
	require.NoError(t, err)
	require.NotEmpty(t, b.Chunks)
	select {
	case err := <-ended:
		assert.ErrorIs(t, err, ErrCancelled)
	case <-time.After(waitFor):
		t.Fatal("an abandoned stream was not cancelled")
	}
	_, err = r.Next(context.Background(), "me", b.ID)
	assert.ErrorIs(t, err, ErrNotFound)
	assert.Zero(t, r.Len())
}

func TestStreamsBelongToTheirOwnerAndAreBounded(t *testing.T) {
	r := NewRegistry(Options{MaxStreams: 2})
	ended := make(chan error, 3)
	b, err := r.Open(context.Background(), "me", 4, forever(ended))
	require.NoError(t, err)
	_, err = r.Next(context.Background(), "someone else", b.ID)
	assert.ErrorIs(t, err, ErrNotFound)
	assert.ErrorIs(t, r.Cancel("someone else", b.ID), ErrNotFound)
	_, err = r.Open(context.Background(), "me", 4, forever(ended))
	require.NoError(t, err)
	_, err = r.Open(context.Background(), "me", 4, forever(ended))
	assert.ErrorIs(t, err, ErrTooMany)
	require.NoError(t, r.Close(context.Background()))
	assert.ErrorIs(t, <-ended, ErrCancelled, "Close cancels the producers")
	assert.ErrorIs(t, <-ended, ErrCancelled)
}

func TestBatchesRespectTheWindowAndEnd(t *testing.T) {
	r := NewRegistry(Options{})
	defer r.Close(context.Background())
	b, err := r.Open(context.Background(), "", 10, func(ctx context.Context, emit Emitter) error {
		for i := range 25 {
			if err := emit.Emit(ctx, json.RawMessage(`{"i":`+string(rune('0'+i%10))+`}`)); err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(t, err)
	total := len(b.Chunks)
	for !b.End {
		assert.LessOrEqual(t, len(b.Chunks), 10)
		b, err = r.Next(context.Background(), "", b.ID)
		require.NoError(t, err)
		total += len(b.Chunks)
	}
	assert.Equal(t, 25, total)
	assert.Nil(t, b.Failed)
	assert.Zero(t, r.Len(), "an ended stream is forgotten")
}

func TestCollectIsBounded(t *testing.T) {
	out, err := Collect(context.Background(), func(ctx context.Context, emit Emitter) error {
		for i := range 3 {
			if err := emit.Emit(ctx, i); err != nil {
				return err
			}
		}
		return nil
	}, 10, 100)
	require.NoError(t, err)
	assert.Len(t, out, 3)
	_, err = Collect(context.Background(), func(ctx context.Context, emit Emitter) error {
		for i := 0; ; i++ {
			if err := emit.Emit(ctx, i); err != nil {
				return err
			}
		}
	}, 10, 100)
	assert.ErrorContains(t, err, "too large for one result")
}
