package network

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
)

// referenceDecodeRouteParams is the plain encoding/json reading of cs
// params that DecodeRouteParams must agree with.
func referenceDecodeRouteParams(data []byte) (uuid ContainerUUID, op string, payload json.RawMessage, err error) {
	var arr []json.RawMessage
	if err := json.Unmarshal(data, &arr); err != nil {
		return "", "", nil, fmt.Errorf("%w for cs: want [uuid, operation, data]: %w", ErrInvalidParams, err)
	}
	if len(arr) < 2 {
		return "", "", nil, fmt.Errorf("%w for cs: want [uuid, operation, data], got %d elements", ErrInvalidParams, len(arr))
	}
	var u, o string
	if err := json.Unmarshal(arr[0], &u); err != nil || u == "" {
		return "", "", nil, fmt.Errorf("%w for cs: container uuid must be a non-empty string", ErrInvalidParams)
	}
	if err := json.Unmarshal(arr[1], &o); err != nil {
		return "", "", nil, fmt.Errorf("%w for cs: operation must be a string", ErrInvalidParams)
	}
	payload = jsonNull
	if len(arr) > 2 {
		payload = arr[2]
	}
	return ContainerUUID(u), o, payload, nil
}

var routeParamInputs = []string{
	`["12391901-9204-4c1b-8f28-4b174c9fa0ee","echo",{"hello":"world","n":1}]`,
	`["u","op"]`, ` [ "u" , "op" , [1, "]"] , "extra" ] `, `["u",null,{}]`, `[null,"op"]`,
	`{}`, `["u"]`, `[1,"op",{}]`, `["","op",{}]`, `["u",2,{}]`, `null`, `["\u00e9","\"q\""]`, "[\"\xa0\",\"o\"]", `["u","op",`,
}

func checkRouteParamsAgree(t *testing.T, in []byte) {
	u1, o1, p1, err1 := DecodeRouteParams(in)
	u2, o2, p2, err2 := referenceDecodeRouteParams(in)
	if (err1 == nil) != (err2 == nil) {
		t.Fatalf("%q: error %v, reference %v", in, err1, err2)
	}
	if err1 != nil {
		return
	}
	if u1 != u2 || o1 != o2 || !bytes.Equal(p1, p2) {
		t.Fatalf("%q: (%q %q %s), reference (%q %q %s)", in, u1, o1, p1, u2, o2, p2)
	}
	// Valid JSON (the only input it is given) reads the same without
	// the second validation.
	u3, o3, p3, err3 := DecodeValidRouteParams(in)
	if err3 != nil || u3 != u2 || o3 != o2 || !bytes.Equal(p3, p2) {
		t.Fatalf("%q: valid reading (%q %q %s %v), reference (%q %q %s)", in, u3, o3, p3, err3, u2, o2, p2)
	}
}

func TestDecodeRouteParamsAgreesWithEncodingJSON(t *testing.T) {
	for _, in := range routeParamInputs {
		checkRouteParamsAgree(t, []byte(in))
	}
}

func FuzzDecodeRouteParams(f *testing.F) {
	for _, in := range routeParamInputs {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, in []byte) { checkRouteParamsAgree(t, in) })
}

func BenchmarkDecodeRouteParams(b *testing.B) {
	in := []byte(`["5f1c9f3e-0b7a-4b7e-9a55-1d2c3b4a5e6f","echo","xxxxxxxxxxxxxxxx"]`)
	b.ReportAllocs()
	for range b.N {
		if _, _, _, err := DecodeRouteParams(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeValidRouteParams(b *testing.B) {
	in := []byte(`["5f1c9f3e-0b7a-4b7e-9a55-1d2c3b4a5e6f","echo","xxxxxxxxxxxxxxxx"]`)
	b.ReportAllocs()
	for range b.N {
		if _, _, _, err := DecodeValidRouteParams(in); err != nil {
			b.Fatal(err)
		}
	}
}
