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
	fs        *flag.FlagSet
	cfg       any
	fields    map[string]field // key → field, in the order of the struct
	keys      []string
	file      string
	fileFixed bool
	set       map[string]string // flags given on the command line: key → raw value
	lists     map[string][]string
}

// field is one configuration key.
type field struct {
	v       reflect.Value
	flag    string // "" when file-only
	usage   string
	named   namedField
	inherit bool
}

// New registers a flag for every field of *cfg on fs, plus --config.
// cfg must point to a struct already holding the defaults. Embedded
// structs contribute their fields as if they were declared in place.
func New(fs *flag.FlagSet, cfg any) *Loader {
	l := &Loader{fs: fs, cfg: cfg, fields: map[string]field{}, set: map[string]string{}, lists: map[string][]string{}}
	fs.StringVar(&l.file, "config", "", "JSON configuration `file` (keys as the flags, with underscores)")
	l.collect(reflect.ValueOf(cfg).Elem())
	for _, key := range l.keys {
		f := l.fields[key]
		if f.flag == "" {
			continue
		}
		def := ""
		if f.named == nil && !f.v.IsZero() {
			def = fmt.Sprint(f.v.Interface())
		}
		list := f.v.Kind() == reflect.Slice || f.named != nil
		fs.Var(&rawFlag{l: l, key: key, def: def, list: list}, f.flag, f.usage)
	}
	return l
}

func (l *Loader) collect(v reflect.Value) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if sf.Anonymous && sf.Type.Kind() == reflect.Struct && sf.Tag.Get("json") == "" {
			l.collect(v.Field(i))
			continue
		}
		key := jsonKey(sf)
		if key == "" {
			continue
		}
		f := field{v: v.Field(i), usage: sf.Tag.Get("usage"), inherit: sf.Tag.Get("inherit") == "true"}
		f.named, _ = f.v.Addr().Interface().(namedField)
		switch name := sf.Tag.Get("flag"); {
		case name == "-":
		case f.named != nil && !f.named.flaggable():
		case name != "":
			f.flag = name
		default:
			f.flag = strings.ReplaceAll(key, "_", "-")
		}
		l.fields[key] = f
		l.keys = append(l.keys, key)
	}
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

// jsonFields maps the json keys of the struct *v to its fields' addresses.
func jsonFields(v any) map[string]any {
	out := map[string]any{}
	var walk func(rv reflect.Value)
	walk = func(rv reflect.Value) {
		t := rv.Type()
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			if sf.Anonymous && sf.Type.Kind() == reflect.Struct && sf.Tag.Get("json") == "" {
				walk(rv.Field(i))
				continue
			}
			if key := jsonKey(sf); key != "" {
				out[key] = rv.Field(i).Addr().Interface()
			}
		}
	}
	walk(reflect.ValueOf(v).Elem())
	return out
}

// fieldSetters maps the json keys of *v to functions that set the field
// from a value of the same type.
func fieldSetters(v any) map[string]func(any) {
	out := map[string]func(any){}
	for key, p := range jsonFields(v) {
		fv := reflect.ValueOf(p).Elem()
		out[key] = func(x any) {
			if xv := reflect.ValueOf(x); xv.Type() == fv.Type() {
				fv.Set(xv)
			}
		}
	}
	return out
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
	f := r.l.fields[r.key]
	if f.named != nil {
		// Check the value now so that flag reports the bad flag itself.
		probe := reflect.New(f.v.Type()).Interface().(namedField)
		if err := probe.setSpec(s); err != nil {
			return err
		}
	}
	if r.list {
		r.l.lists[r.key] = append(r.l.lists[r.key], s)
		return nil
	}
	probe := reflect.New(f.v.Type()).Elem()
	if err := setValue(probe, s); err != nil {
		return err
	}
	r.l.set[r.key] = s
	return nil
}

func (r *rawFlag) IsBoolFlag() bool {
	return r.l.fields[r.key].v.Kind() == reflect.Bool
}

// Load parses args, then applies the file (--config, or HULY_CONFIG), the
// flags and the environment (getenv, usually os.Getenv) to the
// configuration.
func (l *Loader) Load(args []string, getenv func(string) string) error {
	if err := l.fs.Parse(args); err != nil {
		return &Error{Source: "command line", Err: err}
	}
	return l.Apply(getenv)
}

// SetFile names the configuration file, overriding --config and HULY_CONFIG.
func (l *Loader) SetFile(path string) {
	l.file = path
	l.fileFixed = true
}

// Apply is Load for a flag set that was parsed already.
func (l *Loader) Apply(getenv func(string) string) error {
	if l.fs.NArg() > 0 {
		return &Error{Source: "command line", Err: fmt.Errorf("unexpected argument %q", l.fs.Arg(0))}
	}
	if env := getenv("HULY_CONFIG"); env != "" && !l.fileFixed {
		l.file = env
	}
	if l.file != "" {
		if err := l.loadFile(l.file); err != nil {
			return err
		}
	}
	for _, key := range l.keys {
		f := l.fields[key]
		if raw, ok := l.set[key]; ok {
			if err := setValue(f.v, raw); err != nil {
				return &Error{Source: "flag --" + f.flag, Err: err}
			}
		}
		vals, ok := l.lists[key]
		switch {
		case !ok:
		case f.named != nil:
			for _, s := range vals {
				if err := f.named.setSpec(s); err != nil {
					return &Error{Source: "flag --" + f.flag, Err: fmt.Errorf("%q: %w", s, err)}
				}
			}
		default:
			f.v.Set(reflect.ValueOf(append([]string(nil), vals...)))
		}
	}
	for _, key := range l.keys {
		f := l.fields[key]
		env := EnvName(key)
		raw := getenv(env)
		switch {
		case raw == "" || (f.flag == "" && f.named == nil):
		case f.named != nil:
			if !f.named.flaggable() {
				continue
			}
			for _, s := range strings.Split(raw, ";") {
				if s = strings.TrimSpace(s); s == "" {
					continue
				}
				if err := f.named.setSpec(s); err != nil {
					return &Error{Source: env, Err: fmt.Errorf("entry %q: %w", s, err)}
				}
			}
		case f.v.Kind() == reflect.Slice:
			f.v.Set(reflect.ValueOf(splitList(raw)))
		default:
			if err := setValue(f.v, raw); err != nil {
				return &Error{Source: env, Err: err}
			}
		}
	}
	top := map[string]func() any{}
	for key, f := range l.fields {
		top[key] = f.v.Interface
	}
	for _, f := range l.fields {
		if f.inherit && f.named != nil {
			f.named.inherit(top)
		}
	}
	return nil
}

// EnvName is the environment variable of a key: HULY_ and the key in upper case.
func EnvName(key string) string { return "HULY_" + strings.ToUpper(key) }

// EnvVars lists the environment variables the configuration reads, with
// their usage text, in the order of the struct.
func (l *Loader) EnvVars() [][2]string {
	out := [][2]string{{"HULY_CONFIG", "the configuration file, as --config"}}
	for _, key := range l.keys {
		f := l.fields[key]
		switch {
		case f.named != nil && f.named.flaggable():
			out = append(out, [2]string{EnvName(key), f.usage + " (entries separated by ;)"})
		case f.flag != "":
			u := f.usage
			if f.v.Kind() == reflect.Slice {
				u += " (comma separated)"
			}
			out = append(out, [2]string{EnvName(key), u})
		}
	}
	return out
}

// File is the configuration file given, if any.
func (l *Loader) File() string { return l.file }

// Given reports whether the flag for key was set on the command line.
func (l *Loader) Given(key string) bool {
	_, ok := l.set[key]
	_, okList := l.lists[key]
	return ok || okList
}

func (l *Loader) loadFile(path string) error {
	src := "--config " + path
	data, err := os.ReadFile(path)
	if err != nil {
		return &Error{Source: src, Err: err}
	}
	// Decode key by key, so that every error names the key it is about.
	top, order, err := ObjectInOrder(data)
	if err != nil {
		return fileError(src, err)
	}
	for _, key := range order {
		f, ok := l.fields[key]
		if !ok {
			return &Error{Source: src, Key: key, Err: fmt.Errorf("unknown key %q (known: %s)", key, strings.Join(l.keys, ", "))}
		}
		if err := decodeValue(top[key], f.v.Addr().Interface()); err != nil {
			return fileError(src, prefixPath(key, err))
		}
	}
	return nil
}

func fileError(src string, err error) error {
	var pe *PathError
	if errors.As(err, &pe) {
		return &Error{Source: src, Key: pe.Path, Err: pe.Err}
	}
	return &Error{Source: src, Err: err}
}

func describeJSONError(data []byte, err error) error {
	var pe *PathError
	if errors.As(err, &pe) {
		return err
	}
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		line := 1 + bytes.Count(data[:syn.Offset], []byte("\n"))
		return fmt.Errorf("line %d: %w", line, err)
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		if typ.Field != "" {
			return &PathError{Path: typ.Field, Err: fmt.Errorf("want %s, got JSON %s", typeWord(typ.Type), typ.Value)}
		}
		return fmt.Errorf("want %s, got JSON %s", typeWord(typ.Type), typ.Value)
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fmt.Errorf("unknown key %s", f)
	}
	return err
}

// typeWord names a Go type the way a configuration's author thinks of it.
func typeWord(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return t.String()
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
