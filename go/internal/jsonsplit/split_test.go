package jsonsplit

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSplitArrayMatchesEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`[]`, ` [ ] `, `["a"]`, `["a",["b",{"c":[1,2,"]"]}],null]`,
		`[ "x\"y" , {"k":"v,w"} , 3.5e2 , true ]`, `["\\", "\u00e9"]`, "[\n1,\t2\r\n]",
	} {
		got, err := Array([]byte(in))
		require.NoError(t, err, in)
		var want []json.RawMessage
		require.NoError(t, json.Unmarshal([]byte(in), &want), in)
		require.Len(t, got, len(want), in)
		for i := range want {
			assert.Equal(t, string(want[i]), string(got[i]), in)
		}
	}
	for _, in := range []string{``, `{}`, `"a"`, `[`, `[1,`, `[,1]`} {
		_, err := Array([]byte(in))
		assert.Error(t, err, in)
	}
}

func TestDecodeString(t *testing.T) {
	for _, in := range []string{`"plain"`, `"esc\"aped"`, `"\u00e9\n"`, `""`, "\"\xa0\"", "\"é\""} {
		got, err := String([]byte(in))
		require.NoError(t, err, in)
		var want string
		require.NoError(t, json.Unmarshal([]byte(in), &want))
		assert.Equal(t, want, got, in)
	}
	_, err := String([]byte(`5`))
	assert.Error(t, err)
}
