package auth

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/curve"
)

const policyText = "agent " + keyA + " kinds=echo # build-host\n" +
	"client " + keyB + " kinds=echo # alice-laptop\n" +
	"admin " + keyC + " # ops\n"

func TestAllowByRoleAndKind(t *testing.T) {
	p := parse(t, policyText)
	agent, client, admin := mustKey(t, keyA), mustKey(t, keyB), mustKey(t, keyC)
	stranger, err := curve.GenerateKeyPair()
	require.NoError(t, err)

	type q struct {
		key    curve.Key
		action Action
		kind   string
	}
	allowed := []q{
		{agent, ActionRegister, "echo"},
		{agent, ActionList, "echo"},
		{client, ActionGet, "echo"},
		{client, ActionRequest, "echo"},
		{client, ActionConnect, "echo"},
		{client, ActionWatch, "echo"},
		{admin, ActionRegister, "db"},
		{admin, ActionRequest, "db"},
		{admin, ActionList, ""},
		{admin, ActionWatch, ""},
		{admin, ActionOperate, ""},
		// Without a NULL line, admitted NULL peers are agent,client on every kind.
		{NullKey, ActionRegister, "db"},
		{NullKey, ActionRequest, "db"},
	}
	for _, c := range allowed {
		assert.NoError(t, p.Allow(c.key, c.action, c.kind), "%s %s %s", p.Name(c.key), c.action, c.kind)
	}
	refused := map[q]string{
		{agent, ActionRegister, "db"}:           `not authorized: key build-host may not register kind "db": the key's kinds are echo`,
		{agent, ActionRequest, "echo"}:          `key build-host may not request kind "echo": role agent does not allow it (needs client,admin)`,
		{client, ActionRegister, "echo"}:        `role client does not allow it (needs agent,admin)`,
		{client, ActionRequest, "db"}:           `key alice-laptop may not request kind "db": the key's kinds are echo`,
		{client, ActionConnect, "db"}:           `the key's kinds are echo`,
		{client, ActionList, ""}:                `only admin may list the whole network`,
		{client, ActionWatch, ""}:               `only admin may watch the whole network`,
		{client, ActionOperate, ""}:             `role client does not allow it`,
		{stranger.Public, ActionGet, "echo"}:    `the key is not in the authorized keys`,
		{NullKey, ActionList, ""}:               `a peer without a key may not list`,
		{client, Action("format-disk"), "echo"}: `unknown action`,
	}
	for c, want := range refused {
		err := p.Allow(c.key, c.action, c.kind)
		if assert.Error(t, err, "%s %s %s", p.Name(c.key), c.action, c.kind) {
			assert.Contains(t, err.Error(), want)
			assert.ErrorIs(t, err, ErrDenied)
			var de *DeniedError
			require.ErrorAs(t, err, &de)
			assert.Equal(t, c.key, de.Key)
			assert.Equal(t, c.action, de.Action)
		}
	}
}

func TestNullLineSetsNullRights(t *testing.T) {
	p := parse(t, policyText+"client NULL kinds=echo # local\n")
	assert.NoError(t, p.Allow(NullKey, ActionRequest, "echo"))
	assert.ErrorContains(t, p.Allow(NullKey, ActionRegister, "echo"), "role client does not allow it")
	assert.ErrorContains(t, p.Allow(NullKey, ActionRequest, "db"), "kinds are echo")
	assert.Equal(t, "local", p.Name(NullKey))
}

func TestHolderAuthenticate(t *testing.T) {
	h := NewHolder("", parse(t, policyText))
	assert.NoError(t, h.Authenticate(context.Background(), mustKey(t, keyB), nil))
	stranger, err := curve.GenerateKeyPair()
	require.NoError(t, err)
	err = h.Authenticate(context.Background(), stranger.Public, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1})
	assert.ErrorIs(t, err, ErrDenied)
	assert.ErrorContains(t, err, "not in the authorized keys")
	assert.ErrorIs(t, h.Authenticate(context.Background(), NullKey, nil), ErrDenied)
	_, err = h.Reload()
	assert.ErrorContains(t, err, "no file to reload")
}

func TestHolderReloadReportsRemovedKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "authorized_keys")
	require.NoError(t, os.WriteFile(path, []byte(policyText), 0o644))
	h, err := LoadHolder(path)
	require.NoError(t, err)
	assert.Equal(t, path, h.Path())
	before := h.Policy()

	newClient, err := curve.GenerateKeyPair()
	require.NoError(t, err)
	// keyA removed, keyB's kinds changed, keyC unchanged, a new key added,
	// NULL rights narrowed.
	next := "client " + keyB + " kinds=echo,db # alice-laptop\n" +
		"admin " + keyC + " # ops\n" +
		"client " + newClient.Public.String() + " kinds=echo # bob\n" +
		"client NULL kinds=echo\n"
	require.NoError(t, os.WriteFile(path, []byte(next), 0o644))
	d, err := h.Reload()
	require.NoError(t, err)
	require.Len(t, d.Removed, 1)
	assert.Equal(t, mustKey(t, keyA), d.Removed[0].Key)
	assert.Equal(t, "build-host", d.Removed[0].Name, "removed keys keep their old name for the log")
	require.Len(t, d.Added, 1)
	assert.Equal(t, "bob", d.Added[0].Name)
	require.Len(t, d.Changed, 2)
	assert.Equal(t, mustKey(t, keyB), d.Changed[0].Key)
	assert.True(t, d.Changed[1].IsNull())
	assert.Equal(t, "1 added, 1 removed, 2 changed", d.String())

	assert.ErrorIs(t, h.Allow(mustKey(t, keyA), ActionRegister, "echo"), ErrDenied)
	assert.NoError(t, h.Allow(mustKey(t, keyB), ActionRequest, "db"))
	assert.NoError(t, before.Allow(mustKey(t, keyA), ActionRegister, "echo"), "a policy is immutable")

	// A broken file keeps the current policy.
	require.NoError(t, os.WriteFile(path, []byte("client "+keyB+"\n"), 0o644))
	_, err = h.Reload()
	assert.ErrorContains(t, err, path+":1: client needs kinds=")
	assert.NoError(t, h.Allow(mustKey(t, keyB), ActionRequest, "db"))

	// Same file again: nothing changed.
	require.NoError(t, os.WriteFile(path, []byte(next), 0o644))
	d, err = h.Reload()
	require.NoError(t, err)
	assert.True(t, d.Empty())

	// Dropping the NULL line restores the default NULL rights: a change.
	require.NoError(t, os.WriteFile(path, []byte("admin "+keyC+"\n"), 0o644))
	d, err = h.Reload()
	require.NoError(t, err)
	assert.Len(t, d.Removed, 2)
	require.Len(t, d.Changed, 1)
	assert.True(t, d.Changed[0].IsNull())
	assert.NoError(t, h.Allow(NullKey, ActionRegister, "db"))
}

func TestHolderConcurrentReadsAndSwaps(t *testing.T) {
	a, b := parse(t, policyText), parse(t, "admin "+keyC+"\n")
	h := NewHolder("", a)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 500; j++ {
				_ = h.Allow(mustKey(t, keyB), ActionRequest, "echo")
			}
		}()
	}
	for j := 0; j < 100; j++ {
		if j%2 == 0 {
			h.Swap(b)
		} else {
			h.Swap(a)
		}
	}
	wg.Wait()
	assert.NoError(t, h.Allow(mustKey(t, keyC), ActionOperate, ""))
}

func TestNullAllowList(t *testing.T) {
	l, err := ParseNullAllowList([]string{"127.0.0.0/8", "10.1.2.3", " ::1/128 ", "", "::ffff:192.168.0.0/112"})
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.0/8,10.1.2.3/32,::1/128,192.168.0.0/16", l.String())
	tcp := func(ip string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 5555} }
	for _, ip := range []string{"127.0.0.1", "127.9.9.9", "10.1.2.3", "::1", "::ffff:127.0.0.1", "192.168.44.1"} {
		assert.True(t, l.Admits(tcp(ip)), ip)
		assert.NoError(t, l.Admit(tcp(ip)), ip)
	}
	for _, ip := range []string{"10.1.2.4", "128.0.0.1", "::2"} {
		assert.False(t, l.Admits(tcp(ip)), ip)
		err := l.Admit(tcp(ip))
		assert.ErrorIs(t, err, ErrDenied)
		assert.ErrorContains(t, err, "is not in --allow-null-from 127.0.0.0/8")
	}
	assert.False(t, l.Admits(nil))
	assert.False(t, l.Admits(&net.UnixAddr{Name: "/run/x.sock", Net: "unix"}))
	assert.True(t, l.Admits(stringAddr("127.0.0.1:80")), "any net.Addr with IP:port text")

	var none NullAllowList
	assert.True(t, none.Empty())
	assert.ErrorContains(t, none.Admit(tcp("127.0.0.1")), "no --allow-null-from network is configured")

	for _, bad := range []string{"localhost", "10.0.0.0/33", "fe80::1%eth0/64", "::ffff:0.0.0.0/8"} {
		_, err := ParseNullAllowList([]string{bad})
		assert.ErrorContains(t, err, "allow-null-from", bad)
	}
}

type stringAddr string

func (s stringAddr) Network() string { return "tcp" }
func (s stringAddr) String() string  { return string(s) }
