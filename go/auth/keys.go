// Package auth decides what a peer of a secured huly network may do.
//
// With security on, a peer is its CURVE public key. The authorized-keys file
// gives each key one or more roles and the container kinds they cover:
//
//	# ROLE[,ROLE] KEY [kinds=KIND[,KIND...]|*] [# NAME]
//	agent  Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID kinds=echo    # build-host-1
//	client rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7 kinds=echo,db # alice-laptop
//	admin  JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6  # ops
//	agent,client NULL kinds=echo                                # local TS agent
//
// Roles:
//   - agent: may register agents whose containers are of its kinds only;
//   - client: may get, request and connect to containers of its kinds only;
//   - admin: may do everything, on every kind: list and watch the whole
//     network, use any container, and run operator commands.
//
// Agents and clients may also list and watch, but only entries of their
// kinds: the server asks Allow(key, ActionList, kind) per entry and leaves
// out the ones refused.
//
// "kinds=*" covers every kind. Agent and client lines must say kinds=
// (an empty list is never implied); admin lines must not. The text after a
// '#' that follows the key is the key's name, used in logs, metrics and
// answers; without one the name is the key's first eight characters.
//
// The key NULL stands for peers without a key (ZMTP NULL mechanism) that an
// allow-list admitted (see NullAllowList); without a NULL line they get
// roles agent,client on every kind (what they could do with security off,
// except listing and watching everything and operator commands).
package auth

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/huly-net/huly-net/go/curve"
)

// Role is a set of roles (bits).
type Role uint8

// The roles a key may have.
const (
	RoleAgent Role = 1 << iota
	RoleClient
	RoleAdmin
)

var roleNames = []struct {
	r    Role
	name string
}{{RoleAgent, "agent"}, {RoleClient, "client"}, {RoleAdmin, "admin"}}

// String is the roles as written in the file: "agent,client".
func (r Role) String() string {
	var parts []string
	for _, rn := range roleNames {
		if r&rn.r != 0 {
			parts = append(parts, rn.name)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",")
}

// Has reports whether r includes every role of o.
func (r Role) Has(o Role) bool { return r&o == o }

// NullKey is the key that stands for a NULL-mechanism peer: the all-zero
// key, which is never a valid CURVE public key (X25519 refuses it).
var NullKey = curve.Key{}

// Entry is one line of an authorized-keys file.
type Entry struct {
	Key      curve.Key
	Roles    Role
	Kinds    []string // sorted; nil with AllKinds or for admin
	AllKinds bool
	Name     string
	Line     int // line number in its file, 0 for built-in entries
}

// IsNull reports whether the entry is the one for NULL peers.
func (e Entry) IsNull() bool { return e.Key == NullKey }

// CoversKind reports whether the entry's kinds include kind. Admin covers
// every kind.
func (e Entry) CoversKind(kind string) bool {
	if e.AllKinds || e.Roles.Has(RoleAdmin) {
		return true
	}
	i := sort.SearchStrings(e.Kinds, kind)
	return i < len(e.Kinds) && e.Kinds[i] == kind
}

// KindsString is the kinds as written in the file ("echo,db", "*", or ""
// for admin).
func (e Entry) KindsString() string {
	switch {
	case e.AllKinds:
		return "*"
	case e.Roles.Has(RoleAdmin) && len(e.Kinds) == 0:
		return ""
	}
	return strings.Join(e.Kinds, ",")
}

// same reports whether two entries grant the same rights.
func (e Entry) same(o Entry) bool {
	return e.Roles == o.Roles && e.AllKinds == o.AllKinds && e.KindsString() == o.KindsString()
}

// KeyName is the name of a key for logs when no entry names it: its first
// eight Z85 characters and an ellipsis, or "NULL".
func KeyName(k curve.Key) string {
	if k == NullKey {
		return "NULL"
	}
	return k.String()[:8] + "…"
}

// defaultNull is what an admitted NULL peer may do when the file has no
// NULL line.
var defaultNull = Entry{Key: NullKey, Roles: RoleAgent | RoleClient, AllKinds: true, Name: "NULL"}

// Limits of the file format: a line longer than maxLineLen or a file with
// more than maxEntries keys is refused (the file is the operator's, but a
// mistaken path must not exhaust memory).
const (
	maxLineLen = 4096
	maxEntries = 100000
	maxNameLen = 128
	maxFileLen = 64 << 20
)

// ParseError is a problem on one line of an authorized-keys file.
type ParseError struct {
	Source string
	Line   int
	Err    error
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("%s:%d: %v", e.Source, e.Line, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// Parse reads an authorized-keys file; source names it in errors. Every
// problem is reported, each with its line number.
func Parse(r io.Reader, source string) (*Policy, error) {
	p := &Policy{byKey: map[curve.Key]Entry{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1024), maxLineLen)
	var errs []error
	line := 0
	seen := map[curve.Key]int{}
	for sc.Scan() {
		line++
		e, ok, err := parseLine(sc.Text())
		if err != nil {
			errs = append(errs, &ParseError{source, line, err})
			continue
		}
		if !ok {
			continue
		}
		e.Line = line
		if first, dup := seen[e.Key]; dup {
			errs = append(errs, &ParseError{source, line, fmt.Errorf("key %s is already listed on line %d (one line per key; join roles as agent,client)", KeyName(e.Key), first)})
			continue
		}
		if len(p.byKey) >= maxEntries {
			errs = append(errs, &ParseError{source, line, fmt.Errorf("more than %d keys", maxEntries)})
			break
		}
		seen[e.Key] = line
		p.byKey[e.Key] = e
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("line longer than %d bytes", maxLineLen)
		}
		errs = append(errs, &ParseError{source, line + 1, err})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if _, ok := p.byKey[NullKey]; !ok {
		p.null = defaultNull
	} else {
		p.null = p.byKey[NullKey]
	}
	return p, nil
}

// ParseFile reads an authorized-keys file.
func ParseFile(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("authorized keys: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileLen+1))
	if err != nil {
		return nil, fmt.Errorf("authorized keys: read %s: %w", path, err)
	}
	if len(data) > maxFileLen {
		return nil, fmt.Errorf("authorized keys: %s is larger than %d bytes", path, maxFileLen)
	}
	p, err := Parse(bytes.NewReader(data), path)
	if err != nil {
		return nil, fmt.Errorf("authorized keys: %w", err)
	}
	return p, nil
}

// parseLine reads one line; ok is false for blank and comment lines.
func parseLine(line string) (e Entry, ok bool, err error) {
	rest := strings.TrimSpace(line)
	if rest == "" || rest[0] == '#' {
		return Entry{}, false, nil
	}
	for i, r := range rest {
		if r != '\t' && (unicode.IsControl(r) || r == utf8.RuneError) {
			return Entry{}, false, fmt.Errorf("control character or invalid UTF-8 at byte %d", i+1)
		}
	}
	roleText, rest := cutField(rest)
	keyText, rest := cutField(rest)
	if keyText == "" || strings.HasPrefix(keyText, "#") {
		return Entry{}, false, fmt.Errorf("want ROLE KEY [kinds=...] [# NAME], got only %q", roleText)
	}
	for _, part := range strings.Split(roleText, ",") {
		found := false
		for _, rn := range roleNames {
			if part == rn.name {
				if e.Roles&rn.r != 0 {
					return Entry{}, false, fmt.Errorf("role %q given twice", part)
				}
				e.Roles |= rn.r
				found = true
			}
		}
		if !found {
			return Entry{}, false, fmt.Errorf("unknown role %q (want agent, client or admin, or several joined with commas)", part)
		}
	}
	if keyText == "NULL" {
		e.Key = NullKey
		e.Name = "NULL"
	} else {
		k, err := curve.ParseKey(keyText)
		if err != nil {
			return Entry{}, false, fmt.Errorf("bad key %q: %w", abbreviate(keyText), err)
		}
		if k == NullKey {
			return Entry{}, false, errors.New("the all-zero key is not a key (write NULL for peers without a key)")
		}
		e.Key = k
		e.Name = KeyName(k)
	}
	kindsGiven := false
	for {
		rest = strings.TrimLeft(rest, " \t")
		if rest == "" {
			break
		}
		if rest[0] == '#' {
			name := strings.TrimSpace(rest[1:])
			if name != "" {
				if len(name) > maxNameLen {
					return Entry{}, false, fmt.Errorf("name longer than %d bytes", maxNameLen)
				}
				e.Name = name
			}
			break
		}
		var opt string
		opt, rest = cutField(rest)
		k, v, hasEq := strings.Cut(opt, "=")
		if !hasEq || k != "kinds" {
			return Entry{}, false, fmt.Errorf("unknown option %q (want kinds=KIND[,KIND...] or kinds=*, then an optional # NAME)", abbreviate(opt))
		}
		if kindsGiven {
			return Entry{}, false, errors.New("kinds= given twice")
		}
		kindsGiven = true
		if err := e.setKinds(v); err != nil {
			return Entry{}, false, err
		}
	}
	switch {
	case e.Roles.Has(RoleAdmin) && kindsGiven:
		return Entry{}, false, errors.New("admin covers every kind; drop kinds= (or give the key another line's roles without admin)")
	case !e.Roles.Has(RoleAdmin) && !kindsGiven:
		return Entry{}, false, fmt.Errorf("%s needs kinds=KIND[,KIND...] (or kinds=* for every kind)", e.Roles)
	}
	return e, true, nil
}

func (e *Entry) setKinds(v string) error {
	if v == "*" {
		e.AllKinds = true
		return nil
	}
	if v == "" {
		return errors.New("kinds= is empty (list kinds, or * for every kind)")
	}
	seen := map[string]bool{}
	for _, k := range strings.Split(v, ",") {
		switch {
		case k == "":
			return fmt.Errorf("empty kind in kinds=%s", v)
		case k == "*":
			return errors.New("* stands alone: kinds=*")
		case seen[k]:
			return fmt.Errorf("kind %q listed twice", k)
		}
		seen[k] = true
		e.Kinds = append(e.Kinds, k)
	}
	sort.Strings(e.Kinds)
	return nil
}

// cutField splits off the first whitespace-separated field.
func cutField(s string) (field, rest string) {
	s = strings.TrimLeft(s, " \t")
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}

func abbreviate(s string) string {
	if len(s) > 48 {
		return s[:48] + "…"
	}
	return s
}
