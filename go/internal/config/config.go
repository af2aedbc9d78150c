// Package config loads a daemon's configuration the same way for every
// huly-net daemon: defaults, then the JSON file named by --config, then the
// command-line flags, then HULY_* environment variables (the environment
// wins, so a unit's Environment= can adjust a packaged configuration).
//
// A configuration is a struct whose exported fields carry a `json` tag (the
// snake_case key) and a `usage` tag. Each field becomes a flag named after
// its key with dashes (max_frame_size → --max-frame-size) and an environment
// variable HULY_<KEY> (HULY_MAX_FRAME_SIZE). Supported field types: string,
// bool, int, int64, float64, Duration, []string (repeatable flag; comma
// separated in the environment). Fields tagged `flag:"-"` are file-only.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written as a Go duration string ("3s") in JSON.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String implements flag.Value.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON accepts a duration string ("1.5s", "250ms").
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration string such as \"3s\", got %s", string(b))
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Error is a configuration problem; daemons exit with status 2 on it.
type Error struct {
	Source string // "--config FILE", "flag --x", "HULY_X"
	Key    string
	Err    error
}

func (e *Error) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("%s: %v", e.Source, e.Err)
	}
	return fmt.Sprintf("%s: %s: %v", e.Source, e.Key, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Loader binds a configuration struct to a flag set.
type Loader struct {
	fs     *flag.FlagSet
	cfg    any
	fields map[string]reflect.Value // key → field
	file   string
	set    map[string]string // flags given on the command line: key → raw value
	lists  map[string][]string
}

// New registers a flag for every field of *cfg on fs, plus --config.
// cfg must point to a struct already holding the defaults.
func New(fs *flag.FlagSet, cfg any) *Loader {
	l := &Loader{fs: fs, cfg: cfg, fields: map[string]reflect.Value{}, set: map[string]string{}, lists: map[string][]string{}}
	fs.StringVar(&l.file, "config", "", "JSON configuration `file` (keys as the flags, with underscores)")
	v := reflect.ValueOf(cfg).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		key := jsonKey(f)
		if key == "" {
			continue
		}
		l.fields[key] = v.Field(i)
		if f.Tag.Get("flag") == "-" {
			continue
		}
		name := strings.ReplaceAll(key, "_", "-")
		def := ""
		if fv := v.Field(i); !fv.IsZero() {
			def = fmt.Sprint(fv.Interface())
		}
		fs.Var(&rawFlag{l: l, key: key, def: def, list: f.Type.Kind() == reflect.Slice}, name, f.Tag.Get("usage"))
	}
	return l
}

func jsonKey(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag := f.Tag.Get("json")
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" || name == "" {
		return ""
	}
	return name
}

// rawFlag records what was given; values are applied after the file.
type rawFlag struct {
	l    *Loader
	key  string
	def  string
	list bool
}

func (r *rawFlag) String() string {
	if r == nil {
		return ""
	}
	return r.def
}

func (r *rawFlag) Set(s string) error {
	if r.list {
		r.l.lists[r.key] = append(r.l.lists[r.key], s)
		return nil
	}
	// Check the value now so that flag reports the bad flag itself.
	probe := reflect.New(r.l.fields[r.key].Type()).Elem()
	if err := setValue(probe, s); err != nil {
		return err
	}
	r.l.set[r.key] = s
	return nil
}

func (r *rawFlag) IsBoolFlag() bool {
	return r.l.fields[r.key].Kind() == reflect.Bool
}

// Load parses args, then applies the file, the flags and the environment
// (getenv, usually os.Getenv) to the configuration.
func (l *Loader) Load(args []string, getenv func(string) string) error {
	if err := l.fs.Parse(args); err != nil {
		return &Error{Source: "command line", Err: err}
	}
	if l.fs.NArg() > 0 {
		return &Error{Source: "command line", Err: fmt.Errorf("unexpected argument %q", l.fs.Arg(0))}
	}
	if l.file != "" {
		if err := l.loadFile(l.file); err != nil {
			return err
		}
	}
	for key, raw := range l.set {
		if err := setValue(l.fields[key], raw); err != nil {
			return &Error{Source: "flag --" + strings.ReplaceAll(key, "_", "-"), Err: err}
		}
	}
	for key, vals := range l.lists {
		l.fields[key].Set(reflect.ValueOf(append([]string(nil), vals...)))
	}
	for key, field := range l.fields {
		env := "HULY_" + strings.ToUpper(key)
		raw := getenv(env)
		if raw == "" {
			continue
		}
		if field.Kind() == reflect.Slice {
			field.Set(reflect.ValueOf(splitList(raw)))
			continue
		}
		if err := setValue(field, raw); err != nil {
			return &Error{Source: env, Err: err}
		}
	}
	return nil
}

// File is the --config path given, if any.
func (l *Loader) File() string { return l.file }

// Given reports whether the flag for key was set on the command line.
func (l *Loader) Given(key string) bool {
	_, ok := l.set[key]
	_, okList := l.lists[key]
	return ok || okList
}

func (l *Loader) loadFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return &Error{Source: "--config " + path, Err: err}
	}
	// Decode key by key, so that every error names the key it is about.
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return &Error{Source: "--config " + path, Err: describeJSONError(data, err)}
	}
	for key, raw := range top {
		field, ok := l.fields[key]
		if !ok {
			return &Error{Source: "--config " + path, Err: fmt.Errorf("unknown key %q", key)}
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(field.Addr().Interface()); err != nil {
			return &Error{Source: "--config " + path, Key: key, Err: describeJSONError(raw, err)}
		}
	}
	return nil
}

func describeJSONError(data []byte, err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		line := 1 + bytes.Count(data[:syn.Offset], []byte("\n"))
		return fmt.Errorf("line %d: %w", line, err)
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		if typ.Field != "" {
			return fmt.Errorf("%s: want %s, got JSON %s", typ.Field, typ.Type, typ.Value)
		}
		return fmt.Errorf("want %s, got JSON %s", typ.Type, typ.Value)
	}
	if strings.HasPrefix(err.Error(), "json: unknown field ") {
		return fmt.Errorf("unknown key %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return err
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

var durationType = reflect.TypeOf(Duration(0))

func setValue(v reflect.Value, s string) error {
	if v.Type() == durationType {
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("want a duration such as 3s: %w", err)
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", s)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("want an integer, got %q", s)
		}
		v.SetInt(n)
	case reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("want a number, got %q", s)
		}
		v.SetFloat(f)
	case reflect.Slice:
		v.Set(reflect.ValueOf(splitList(s)))
	default:
		return fmt.Errorf("unsupported configuration type %s", v.Type())
	}
	return nil
}
