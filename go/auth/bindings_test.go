package auth

import (
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBindingsRefuseAnotherKey(t *testing.T) {
	a, c := mustKey(t, keyA), mustKey(t, keyC)
	b := NewBindings(0)
	bound, err := b.Bind("agent-1", a)
	require.NoError(t, err)
	assert.True(t, bound)
	bound, err = b.Bind("agent-1", a)
	require.NoError(t, err)
	assert.False(t, bound, "re-registering by the owner is not a new binding")

	_, err = b.Bind("agent-1", c)
	assert.ErrorIs(t, err, ErrDenied)
	var be *BindError
	require.ErrorAs(t, err, &be)
	assert.Equal(t, a, be.Owner)
	assert.ErrorContains(t, err, `agent id "agent-1" is bound to another key`)

	_, err = b.Bind("agent-1", NullKey)
	assert.ErrorIs(t, err, ErrDenied, "NULL peers cannot take a keyed agent over")

	assert.False(t, b.Release("agent-1", c), "only the owner releases")
	assert.True(t, b.Release("agent-1", a))
	bound, err = b.Bind("agent-1", c)
	require.NoError(t, err)
	assert.True(t, bound)
	o, ok := b.Owner("agent-1")
	require.True(t, ok)
	assert.Equal(t, c, o)
}

func TestBindingsLimitAndForget(t *testing.T) {
	a, c := mustKey(t, keyA), mustKey(t, keyC)
	b := NewBindings(2)
	for _, id := range []string{"x", "y"} {
		_, err := b.Bind(id, a)
		require.NoError(t, err)
	}
	_, err := b.Bind("z", a)
	assert.ErrorIs(t, err, ErrDenied)
	assert.ErrorContains(t, err, "already has 2 agent ids bound (max_agent_ids_per_key)")
	_, err = b.Bind("z", c)
	require.NoError(t, err, "the limit is per key")

	ids := b.ForgetKey(a)
	sort.Strings(ids)
	assert.Equal(t, []string{"x", "y"}, ids)
	assert.Equal(t, 1, b.Len())
	_, err = b.Bind("x", c)
	assert.NoError(t, err, "a removed key's ids are free again")
	assert.Empty(t, b.ForgetKey(a))
}
