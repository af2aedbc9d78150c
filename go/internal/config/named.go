package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Named is an ordered set of items by name: a JSON object whose members are
// items of type T (the bridge's forwards, the agent's kinds). Items keep the
// order of the file, duplicate names are an error, and every error names
// the item and the key (NAME.KEY).
//
// When *T has a method ParseSpec(string) error, the field also takes a
// repeatable flag and an environment variable of NAME=SPEC entries
// (separated by ";"), each replacing the item of that name.
//
// A Named field tagged `inherit:"true"` gives every item the configuration's
// top-level value of each key the item did not set itself in the file: the
// top level holds the defaults of the items, and an item overrides them.
type Named[T any] struct {
	names []string
	items map[string]*T
	set   map[string]map[string]bool // name → keys given in the file
}

// specParser is what an item type implements to be given on the command line.
type specParser interface{ ParseSpec(string) error }

// Len is the number of items.
func (n *Named[T]) Len() int { return len(n.names) }

// Names are the item names in order.
func (n *Named[T]) Names() []string { return append([]string(nil), n.names...) }

// Get returns the item of that name, or nil.
func (n *Named[T]) Get(name string) *T { return n.items[name] }

// Put adds or replaces an item; a new name goes last.
func (n *Named[T]) Put(name string, item *T) {
	if n.items == nil {
		n.items = map[string]*T{}
	}
	if _, ok := n.items[name]; !ok {
		n.names = append(n.names, name)
	}
	n.items[name] = item
	delete(n.set, name)
}

// Each calls f for every item in order.
func (n *Named[T]) Each(f func(name string, item *T)) {
	for _, name := range n.names {
		f(name, n.items[name])
	}
}

// MarshalJSON writes the items as an object, in order.
func (n Named[T]) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, name := range n.names {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(name)
		v, err := json.Marshal(n.items[name])
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON decodes every item strictly; items already present (from
// the defaults) are replaced by the file's items of the same name.
func (n *Named[T]) UnmarshalJSON(data []byte) error {
	obj, order, err := ObjectInOrder(data)
	if err != nil {
		return err
	}
	for _, name := range order {
		if string(obj[name]) == "null" {
			continue
		}
		item := new(T)
		if err := decodeStrict(obj[name], item); err != nil {
			return prefixPath(name, err)
		}
		keys, _, _ := ObjectInOrder(obj[name])
		n.Put(name, item)
		if n.set == nil {
			n.set = map[string]map[string]bool{}
		}
		n.set[name] = map[string]bool{}
		for k := range keys {
			n.set[name][k] = true
		}
	}
	return nil
}

// setSpec parses NAME=SPEC into a new item that replaces NAME.
func (n *Named[T]) setSpec(s string) error {
	name, spec, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return errors.New("want NAME=VALUE")
	}
	item := new(T)
	p, ok := any(item).(specParser)
	if !ok {
		return errors.New("not settable on the command line")
	}
	if err := p.ParseSpec(spec); err != nil {
		return err
	}
	n.Put(name, item)
	return nil
}

func (n *Named[T]) flaggable() bool {
	_, ok := any(new(T)).(specParser)
	return ok
}

// inherit copies top-level values into the items' keys they did not set.
func (n *Named[T]) inherit(top map[string]func() any) {
	for _, name := range n.names {
		item := n.items[name]
		for key, set := range fieldSetters(item) {
			if n.set[name][key] {
				continue
			}
			if get, ok := top[key]; ok {
				set(get())
			}
		}
	}
}

// namedField is how the loader sees any Named[T].
type namedField interface {
	setSpec(string) error
	flaggable() bool
	inherit(top map[string]func() any)
}

// PathError is a decoding error at a key path inside a value (NAME.KEY).
type PathError struct {
	Path string
	Err  error
}

func (e *PathError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *PathError) Unwrap() error { return e.Err }

func prefixPath(prefix string, err error) error {
	var pe *PathError
	if errors.As(err, &pe) {
		return &PathError{Path: prefix + "." + pe.Path, Err: pe.Err}
	}
	return &PathError{Path: prefix, Err: err}
}

// decodeStrict decodes an object into v key by key, refusing unknown keys,
// so that every error names its key.
func decodeStrict(data []byte, v any) error {
	obj, order, err := ObjectInOrder(data)
	if err != nil {
		return err
	}
	fields := jsonFields(v)
	for _, key := range order {
		f, ok := fields[key]
		if !ok {
			return &PathError{Path: key, Err: fmt.Errorf("unknown key %q", key)}
		}
		if err := decodeValue(obj[key], f); err != nil {
			return prefixPath(key, err)
		}
	}
	return nil
}

func decodeValue(raw []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return describeJSONError(raw, err)
	}
	return nil
}

// ObjectInOrder decodes a JSON object, keeping the order of its keys.
// Duplicate keys and data after the object are errors.
func ObjectInOrder(raw []byte) (map[string]json.RawMessage, []string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, fmt.Errorf("invalid JSON: %w", describeJSONError(raw, err))
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, nil, fmt.Errorf("want a JSON object, got %s", describeToken(tok))
	}
	obj := map[string]json.RawMessage{}
	var order []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, fmt.Errorf("invalid JSON: %w", describeJSONError(raw, err))
		}
		key := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, fmt.Errorf("%s: invalid JSON: %w", key, describeJSONError(raw, err))
		}
		if _, dup := obj[key]; dup {
			return nil, nil, &PathError{Path: key, Err: errors.New("key given twice")}
		}
		obj[key] = v
		order = append(order, key)
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, fmt.Errorf("invalid JSON: %w", describeJSONError(raw, err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, errors.New("invalid JSON: data after the object")
	}
	return obj, order, nil
}

func describeToken(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		return string(v)
	case string:
		return strconv.Quote(v)
	case nil:
		return "null"
	default:
		return fmt.Sprint(v)
	}
}
