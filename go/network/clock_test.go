package network

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestFakeClockMovesOnlyWhenTold(t *testing.T) {
	c := NewFakeClock(t0)
	assert.Equal(t, t0, c.Now())
	c.Advance(1500 * time.Millisecond)
	assert.Equal(t, t0.Add(1500*time.Millisecond), c.Now())
	c.Set(t0.Add(-time.Hour))
	assert.Equal(t, t0.Add(-time.Hour), c.Now())
	assert.WithinDuration(t, time.Now(), SystemClock().Now(), time.Minute)
}
