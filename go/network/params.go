package network

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/huly-net/huly-net/go/internal/jsonsplit"
)

// The decoders below turn the params of the client → network methods into
// the arguments of Network's methods, so that the wire glue and the core
// agree on one reading of PROTOCOL.md §4.

// ErrInvalidParams is wrapped by every params decoding error.
var ErrInvalidParams = errors.New("invalid params")

// GetParams are the params of gg: {"kind": kind, "request": getOptions}.
type GetParams struct {
	Kind    string     `json:"kind"`
	Request GetOptions `json:"request"`
}

// DecodeGetParams parses the params of gg. A missing or null request means
// no options.
func DecodeGetParams(data []byte) (GetParams, error) {
	var w struct {
		Kind    *string    `json:"kind"`
		Request GetOptions `json:"request"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return GetParams{}, fmt.Errorf("%w for gg: %w", ErrInvalidParams, err)
	}
	p := GetParams{Request: w.Request}
	if w.Kind != nil {
		p.Kind = *w.Kind
	}
	if p.Kind == "" && p.Request.UUID == "" {
		return GetParams{}, fmt.Errorf("%w for gg: neither kind nor request.uuid given", ErrInvalidParams)
	}
	return p, nil
}

// DecodeListParams parses the params of cl, {"kind": kind or null}, and
// returns the kind to list; "" (from null, a missing key or absent params)
// lists every container.
func DecodeListParams(data []byte) (string, error) {
	if isAbsent(data) {
		return "", nil
	}
	var w struct {
		Kind *string `json:"kind"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return "", fmt.Errorf("%w for cl: %w", ErrInvalidParams, err)
	}
	if w.Kind == nil {
		return "", nil
	}
	return *w.Kind, nil
}

// DecodeUUIDParams parses {"uuid": id}, the params of au and cr.
func DecodeUUIDParams(data []byte) (string, error) {
	var w struct {
		UUID *string `json:"uuid"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidParams, err)
	}
	if w.UUID == nil || *w.UUID == "" {
		return "", fmt.Errorf("%w: no uuid", ErrInvalidParams)
	}
	return *w.UUID, nil
}

// DecodeRouteParams parses the params of cs, [containerUuid, operation,
// data]; a missing data element reads as null.
// The payload returned shares data's memory.
func DecodeRouteParams(data []byte) (uuid ContainerUUID, op string, payload json.RawMessage, err error) {
	// Every routed request passes here: validate once and split without
	// reflection (decoding into []json.RawMessage took a fifth of the
	// server's CPU under load). Bad input takes the decoder below, for its
	// error messages.
	if json.Valid(data) {
		if arr, err := jsonsplit.Array(data); err == nil {
			return routeParams(arr, jsonsplit.String)
		}
	}
	return decodeRouteParamsSlow(data)
}

// DecodeValidRouteParams is DecodeRouteParams for params that are part of a
// payload already validated as JSON (backrpc.DecodeRequestPayload checks
// the whole request): it does not validate them a second time.
func DecodeValidRouteParams(data []byte) (uuid ContainerUUID, op string, payload json.RawMessage, err error) {
	if arr, err := jsonsplit.Array(data); err == nil {
		return routeParams(arr, jsonsplit.String)
	}
	return decodeRouteParamsSlow(data)
}

func decodeRouteParamsSlow(data []byte) (uuid ContainerUUID, op string, payload json.RawMessage, err error) {
	var arr []json.RawMessage
	if err := json.Unmarshal(data, &arr); err != nil {
		return "", "", nil, fmt.Errorf("%w for cs: want [uuid, operation, data]: %w", ErrInvalidParams, err)
	}
	return routeParams(arr, func(b []byte) (string, error) {
		var s string
		err := json.Unmarshal(b, &s)
		return s, err
	})
}

// routeParams reads [uuid, operation, data?] from the array's elements.
func routeParams(arr []json.RawMessage, decodeString func([]byte) (string, error)) (uuid ContainerUUID, op string, payload json.RawMessage, err error) {
	if len(arr) < 2 {
		return "", "", nil, fmt.Errorf("%w for cs: want [uuid, operation, data], got %d elements", ErrInvalidParams, len(arr))
	}
	u, err := decodeString(arr[0])
	if err != nil || u == "" {
		return "", "", nil, fmt.Errorf("%w for cs: container uuid must be a non-empty string", ErrInvalidParams)
	}
	o, err := decodeString(arr[1])
	if err != nil {
		return "", "", nil, fmt.Errorf("%w for cs: operation must be a string", ErrInvalidParams)
	}
	payload = jsonNull
	if len(arr) > 2 {
		payload = arr[2]
	}
	return ContainerUUID(u), o, payload, nil
}

func isAbsent(data []byte) bool {
	t := bytes.TrimSpace(data)
	return len(t) == 0 || bytes.Equal(t, jsonNull)
}
