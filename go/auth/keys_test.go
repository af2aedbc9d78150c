package auth

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/curve"
)

// Public keys from libzmq's test suite.
const (
	keyA = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"
	keyB = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"
	keyC = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
)

func mustKey(t testing.TB, s string) curve.Key {
	t.Helper()
	k, err := curve.ParseKey(s)
	require.NoError(t, err)
	return k
}

func parse(t testing.TB, text string) *Policy {
	t.Helper()
	p, err := Parse(strings.NewReader(text), "keys")
	require.NoError(t, err)
	return p
}

// The three lines the format must accept, with and without names.
func TestParseRequiredLines(t *testing.T) {
	p := parse(t, "# the network's keys\n\n"+
		"agent "+keyA+" kinds=echo\n"+
		"  client\t"+keyB+" kinds=echo   # alice-laptop\n"+
		"admin "+keyC+"\n")
	require.Equal(t, 3, p.Len())

	a, ok := p.Lookup(mustKey(t, keyA))
	require.True(t, ok)
	assert.Equal(t, RoleAgent, a.Roles)
	assert.Equal(t, []string{"echo"}, a.Kinds)
	assert.Equal(t, keyA[:8]+"…", a.Name, "unnamed keys are named by their first characters")
	assert.Equal(t, 3, a.Line)

	b, _ := p.Lookup(mustKey(t, keyB))
	assert.Equal(t, "alice-laptop", b.Name)
	assert.Equal(t, RoleClient, b.Roles)

	c, _ := p.Lookup(mustKey(t, keyC))
	assert.Equal(t, RoleAdmin, c.Roles)
	assert.True(t, p.HasAdmin())
	assert.Equal(t, "alice-laptop", p.Name(mustKey(t, keyB)))
}

func TestParseOptions(t *testing.T) {
	p := parse(t, "agent,client "+keyA+" kinds=db,echo,cache # build host #1\n"+
		"client "+keyB+" kinds=*\n"+
		"client NULL kinds=echo # local TS\n")
	a, _ := p.Lookup(mustKey(t, keyA))
	assert.Equal(t, RoleAgent|RoleClient, a.Roles)
	assert.Equal(t, []string{"cache", "db", "echo"}, a.Kinds, "kinds are sorted")
	assert.Equal(t, "build host #1", a.Name, "a name may hold '#'")
	b, _ := p.Lookup(mustKey(t, keyB))
	assert.True(t, b.AllKinds)
	assert.True(t, b.CoversKind("anything"))
	n, ok := p.Lookup(NullKey)
	require.True(t, ok)
	assert.Equal(t, RoleClient, n.Roles)
	assert.Equal(t, "local TS", n.Name)
	assert.False(t, p.HasAdmin())
}

// A key may hold '#' (it is in the Z85 alphabet): it is not a comment.
func TestParseKeyWithHash(t *testing.T) {
	var k curve.Key
	for i := 0; i < 1000 && !strings.Contains(k.String(), "#"); i++ {
		kp, err := curve.GenerateKeyPair()
		require.NoError(t, err)
		k = kp.Public
	}
	require.Contains(t, k.String(), "#")
	p := parse(t, "client "+k.String()+" kinds=echo #named\n")
	e, ok := p.Lookup(k)
	require.True(t, ok)
	assert.Equal(t, "named", e.Name)
}

func TestParseErrorsNameTheLine(t *testing.T) {
	cases := map[string]string{
		"agent " + keyA:                                             "keys:2: agent needs kinds=",
		"client " + keyA + " kinds=":                                "kinds= is empty",
		"client " + keyA + " kinds=a,,b":                            "empty kind",
		"client " + keyA + " kinds=a,a":                             `kind "a" listed twice`,
		"client " + keyA + " kinds=a,*":                             "* stands alone",
		"client " + keyA + " kinds=a kinds=b":                       "kinds= given twice",
		"admin " + keyA + " kinds=echo":                             "admin covers every kind",
		"root " + keyA:                                              `unknown role "root"`,
		"agent,agent " + keyA + " kinds=a":                          `role "agent" given twice`,
		"client short kinds=echo":                                   `bad key "short"`,
		"client " + keyA + " kind=echo":                             `unknown option "kind=echo"`,
		"client " + keyA + " echo":                                  `unknown option "echo"`,
		"admin":                                                     "want ROLE KEY",
		"admin # " + keyA:                                           "want ROLE KEY",
		"admin " + strings.Repeat("0", 40):                          "all-zero key",
		"client " + keyA + " kinds=x # " + strings.Repeat("n", 200): "name longer",
		"client " + keyA + " kinds=x # a\x1b[31mred":                "control character",
		"client " + keyA + " kinds=x # \xff":                        "invalid UTF-8",
	}
	for line, want := range cases {
		_, err := Parse(strings.NewReader("# header\n"+line+"\n"), "keys")
		if assert.Error(t, err, line) {
			assert.Contains(t, err.Error(), want, line)
			assert.Contains(t, err.Error(), "keys:2: ", line)
		}
	}
}

func TestParseReportsEveryBadLineAndDuplicates(t *testing.T) {
	_, err := Parse(strings.NewReader("admin "+keyA+"\nbogus\nclient "+keyA+" kinds=x\nagent "+keyB+"\n"), "f")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "f:2: ")
	assert.Contains(t, err.Error(), "f:3: key "+keyA[:8]+"… is already listed on line 1")
	assert.Contains(t, err.Error(), "f:4: agent needs kinds=")
	var pe *ParseError
	assert.ErrorAs(t, err, &pe)
}

func TestParseLongLine(t *testing.T) {
	_, err := Parse(strings.NewReader("admin "+keyA+"\nclient "+keyB+" kinds="+strings.Repeat("k", maxLineLen)+"\n"), "f")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "f:2: line longer than")
}

func TestParseFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "authorized_keys")
	require.NoError(t, os.WriteFile(path, []byte("admin "+keyA+" # ops\n"), 0o644))
	p, err := ParseFile(path)
	require.NoError(t, err)
	assert.Equal(t, "ops", p.Name(mustKey(t, keyA)))
	_, err = ParseFile(filepath.Join(dir, "missing"))
	assert.ErrorContains(t, err, "authorized keys: open")
	require.NoError(t, os.WriteFile(path, []byte("admin x\n"), 0o644))
	_, err = ParseFile(path)
	assert.ErrorContains(t, err, path+":1: bad key")
}

func FuzzParse(f *testing.F) {
	f.Add("agent " + keyA + " kinds=echo\nclient " + keyB + " kinds=echo # alice-laptop\nadmin " + keyC + "\n")
	f.Add("agent,client NULL kinds=* # x\n# c\n\n")
	f.Add("client " + keyA + " kinds=a,,b #\n")
	f.Add("admin " + keyA + " #" + keyB + "\n")
	f.Fuzz(func(t *testing.T, text string) {
		p, err := Parse(strings.NewReader(text), "fuzz")
		if err != nil {
			assert.ErrorIs(t, err, err) // errors are values, never panics
			return
		}
		// Every accepted entry round-trips through its own line.
		for _, e := range p.Entries() {
			key := "NULL"
			if !e.IsNull() {
				key = e.Key.String()
			}
			line := e.Roles.String() + " " + key
			if ks := e.KindsString(); ks != "" {
				line += " kinds=" + ks
			}
			line += " # " + e.Name
			p2, err := Parse(strings.NewReader(line), "again")
			require.NoError(t, err, line)
			e2, ok := p2.Lookup(e.Key)
			require.True(t, ok)
			assert.True(t, e.same(e2), line)
			assert.Equal(t, e.Name, e2.Name)
			// Allow never panics and agrees with CoversKind.
			for _, k := range e.Kinds {
				assert.NoError(t, e.Allow(ActionList, k))
			}
			_ = p.Allow(e.Key, ActionRequest, "x")
		}
		_ = p.Allow(NullKey, ActionGet, "echo")
		assert.False(t, (NullAllowList{}).Admits(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}))
	})
}
