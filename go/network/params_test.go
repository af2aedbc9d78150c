package network

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDecodeGetParams(t *testing.T) {
	p, err := DecodeGetParams([]byte(`{"kind":"echo","request":{}}`))
	require.NoError(t, err)
	assert.Equal(t, GetParams{Kind: "echo"}, p)

	p, err = DecodeGetParams([]byte(`{"kind":"echo","request":{"uuid":"fixed-uuid-1","labels":["a","b"],"extra":{"tenant":"t1"}}}`))
	require.NoError(t, err)
	assert.Equal(t, ContainerUUID("fixed-uuid-1"), p.Request.UUID)
	assert.Equal(t, []string{"a", "b"}, p.Request.Labels)
	assert.JSONEq(t, `{"tenant":"t1"}`, string(p.Request.Extra))

	p, err = DecodeGetParams([]byte(`{"kind":null,"request":{"uuid":"u"}}`))
	require.NoError(t, err)
	assert.Equal(t, GetParams{Request: GetOptions{UUID: "u"}}, p)

	for _, bad := range []string{`{}`, `{"kind":"","request":null}`, `[]`, `{"kind":1}`, `nope`} {
		_, err := DecodeGetParams([]byte(bad))
		assert.ErrorIs(t, err, ErrInvalidParams, "input %q", bad)
	}
}

func TestDecodeListParams(t *testing.T) {
	for in, want := range map[string]string{
		`{"kind":"leader"}`: "leader",
		`{"kind":null}`:     "",
		`{}`:                "",
		`null`:              "",
		``:                  "",
	} {
		kind, err := DecodeListParams([]byte(in))
		require.NoError(t, err, in)
		assert.Equal(t, want, kind, in)
	}
	_, err := DecodeListParams([]byte(`{"kind":3}`))
	assert.ErrorIs(t, err, ErrInvalidParams)
}

func TestDecodeUUIDParams(t *testing.T) {
	u, err := DecodeUUIDParams([]byte(`{"uuid":"12391901-9204-4c1b-8f28-4b174c9fa0ee"}`))
	require.NoError(t, err)
	assert.Equal(t, "12391901-9204-4c1b-8f28-4b174c9fa0ee", u)
	for _, bad := range []string{`{}`, `{"uuid":""}`, `{"uuid":null}`, `{"uuid":1}`, `[`} {
		_, err := DecodeUUIDParams([]byte(bad))
		assert.ErrorIs(t, err, ErrInvalidParams, "input %q", bad)
	}
}

func TestDecodeRouteParams(t *testing.T) {
	uuid, op, data, err := DecodeRouteParams([]byte(`["12391901-9204-4c1b-8f28-4b174c9fa0ee","echo",{"hello":"world","n":1}]`))
	require.NoError(t, err)
	assert.Equal(t, ContainerUUID("12391901-9204-4c1b-8f28-4b174c9fa0ee"), uuid)
	assert.Equal(t, "echo", op)
	assert.Equal(t, json.RawMessage(`{"hello":"world","n":1}`), data)

	_, _, data, err = DecodeRouteParams([]byte(`["u","op"]`))
	require.NoError(t, err)
	assert.Equal(t, json.RawMessage(`null`), data)

	for _, bad := range []string{`{}`, `["u"]`, `[1,"op",{}]`, `["","op",{}]`, `["u",2,{}]`, `null`} {
		_, _, _, err := DecodeRouteParams([]byte(bad))
		assert.ErrorIs(t, err, ErrInvalidParams, "input %q", bad)
	}
}
