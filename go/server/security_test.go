package server

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/auth"
	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/curve"
	"github.com/huly-net/huly-net/go/internal/audit"
	"github.com/huly-net/huly-net/go/network"
)

// journalRecorder keeps the audit's journal entries.
type journalRecorder struct {
	mu      sync.Mutex
	entries []map[string]string
}

func (r *journalRecorder) send(_ string, _ journal.Priority, vars map[string]string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.entries = append(r.entries, vars)
	return nil
}

// has reports whether an entry has every given field.
func (r *journalRecorder) has(fields map[string]string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.entries {
		match := true
		for k, v := range fields {
			if !strings.Contains(e[k], v) {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

// requireEntry waits for an audit entry with the fields (handshake
// refusals are recorded on the server's side of a handshake the client may
// have given up already).
func (n *secureNet) requireEntry(t *testing.T, fields map[string]string) {
	t.Helper()
	require.Eventually(t, func() bool { return n.journal.has(fields) }, waitFor, 10*time.Millisecond, "audit entry %v", fields)
}

// secureNet is a network server with security on, and the keys of its
// peers.
type secureNet struct {
	s        *Server
	server   curve.KeyPair
	keys     map[string]curve.KeyPair // by name in the authorized keys
	keysFile string
	journal  *journalRecorder
}

func genKey(t *testing.T) curve.KeyPair {
	t.Helper()
	kp, err := curve.GenerateKeyPair()
	require.NoError(t, err)
	return kp
}

// startSecure runs a secured server; lines are authorized-keys lines with
// KEY:NAME standing for the public key of the peer NAME (made here).
func startSecure(t *testing.T, allowNull []string, lines ...string) *secureNet {
	t.Helper()
	return startSecureMax(t, 100, allowNull, lines...)
}

// startSecureMax is startSecure with max_agent_ids_per_key.
func startSecureMax(t *testing.T, maxAgentIDs int, allowNull []string, lines ...string) *secureNet {
	t.Helper()
	dir := t.TempDir()
	n := &secureNet{server: genKey(t), keys: map[string]curve.KeyPair{}, journal: &journalRecorder{}}
	require.NoError(t, curve.WriteKeyPair(filepath.Join(dir, "network"), n.server))
	n.keysFile = filepath.Join(dir, "authorized_keys")
	n.writeKeys(t, lines...)
	sec, err := auth.LoadServer(filepath.Join(dir, "network.key"), n.keysFile, allowNull, maxAgentIDs, func(string) string { return "" })
	require.NoError(t, err)
	n.s = New(Options{
		AliveTimeout:  800 * time.Millisecond,
		UnusedTimeout: 300 * time.Millisecond,
		PingInterval:  100 * time.Millisecond,
		Logger:        quiet(),
		Security:      &Security{Auth: sec, Audit: audit.New(quiet(), "huly_network", audit.WithJournal(n.journal.send))},
	})
	require.NoError(t, n.s.Listen("tcp://127.0.0.1:0"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.s.Run(ctx, time.Second) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return n
}

// writeKeys writes the authorized-keys file, making the named keys.
func (n *secureNet) writeKeys(t *testing.T, lines ...string) {
	t.Helper()
	var b strings.Builder
	for _, l := range lines {
		fields := strings.Fields(l)
		for i, f := range fields {
			name, ok := strings.CutPrefix(f, "KEY:")
			if !ok {
				continue
			}
			kp, have := n.keys[name]
			if !have {
				kp = genKey(t)
				n.keys[name] = kp
			}
			fields[i] = kp.Public.String()
			fields = append(fields, "#", name)
		}
		b.WriteString(strings.Join(fields, " ") + "\n")
	}
	require.NoError(t, os.WriteFile(n.keysFile, []byte(b.String()), 0o600))
}

// dialAs connects with the named key ("" for a NULL peer, "?NAME" for a
// key the network does not list). It does not wait for the session.
func (n *secureNet) dialAs(t *testing.T, name string, h backrpc.ClientHandler) *backrpc.Client {
	t.Helper()
	opts := backrpc.ClientOptions{AliveTimeout: 800 * time.Millisecond, PingInterval: 100 * time.Millisecond, Logger: quiet()}
	if name != "" {
		kp, ok := n.keys[name]
		if !ok {
			kp = genKey(t)
			n.keys[name] = kp
		}
		opts.Transport.CurveClient = &kp
		opts.Transport.CurveServerKey = n.server.Public
	}
	c, err := backrpc.Dial(n.s.Addr().String(), opts, h)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		_ = c.Close(ctx)
	})
	return c
}

func (n *secureNet) connectAs(t *testing.T, name string, h backrpc.ClientHandler) *backrpc.Client {
	t.Helper()
	c := n.dialAs(t, name, h)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, c.WaitConnected(ctx), "connect as %s", name)
	return c
}

func (n *secureNet) registerEcho(t *testing.T, keyName, agentID string) (*echoAgent, *backrpc.Client) {
	t.Helper()
	a := &echoAgent{id: agentID, terminated: make(chan string, 4)}
	c := n.connectAs(t, keyName, backrpc.ClientHandler{HandleRequest: a.handle})
	request(t, c, "ar", map[string]any{"uuid": a.id, "containers": []any{}, "kinds": []string{"echo"}, "endpoint": nil})
	return a, c
}

func tryRequest(c *backrpc.Client, method string, params any) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	return c.Request(ctx, method, params)
}

func waitRefused(t *testing.T, c *backrpc.Client) *backrpc.RefusedError {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	err := c.WaitConnected(ctx)
	var re *backrpc.RefusedError
	require.ErrorAs(t, err, &re, "want a refusal, not %v", err)
	return re
}

func TestSecurityRefusesUnknownKey(t *testing.T) {
	n := startSecure(t, nil, "admin KEY:ops")
	c := n.dialAs(t, "stranger", backrpc.ClientHandler{})
	re := waitRefused(t, c)
	assert.True(t, re.Keyed)
	assert.Contains(t, re.Error(), "network refused our key: ")
	assert.Contains(t, re.Error(), "not in the authorized keys")
	// Calls fail at once with it, rather than wait for a session.
	_, err := tryRequest(c, "al", struct{}{})
	assert.ErrorAs(t, err, &re)
	n.requireEntry(t, map[string]string{audit.FieldEvent: "handshake_refused", audit.FieldKey: n.keys["stranger"].Public.String()})
	assert.Equal(t, 0, n.s.Stats().RPC.Clients)
}

func TestSecurityRefusesNullPeerWithoutAllowList(t *testing.T) {
	n := startSecure(t, nil, "admin KEY:ops")
	c := n.dialAs(t, "", backrpc.ClientHandler{})
	re := waitRefused(t, c)
	assert.False(t, re.Keyed)
	assert.Contains(t, re.Error(), "network refused us: ")
	n.requireEntry(t, map[string]string{audit.FieldEvent: "handshake_refused", audit.FieldKey: "NULL", audit.FieldPeerAddr: "127.0.0.1"})
	assert.Equal(t, 0, n.s.Stats().RPC.Clients)
}

func TestSecurityRefusesNullPeerOutsideAllowList(t *testing.T) {
	n := startSecure(t, []string{"10.0.0.0/8"}, "admin KEY:ops")
	re := waitRefused(t, n.dialAs(t, "", backrpc.ClientHandler{}))
	assert.Contains(t, re.Reason, "127.0.0.1")
}

func TestSecurityAgentKeyRegistersItsKindsOnly(t *testing.T) {
	n := startSecure(t, nil, "agent KEY:build kinds=echo")
	c := n.connectAs(t, "build", backrpc.ClientHandler{})
	_, err := tryRequest(c, "ar", map[string]any{"uuid": "agent-1", "containers": []any{}, "kinds": []string{"echo", "db"}, "endpoint": nil})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `not authorized: key build may not register kind "db": the key's kinds are echo`)
	// A container of another kind cannot be squatted either.
	_, err = tryRequest(c, "ar", map[string]any{"uuid": "agent-1", "kinds": []string{"echo"}, "endpoint": nil,
		"containers": []any{map[string]any{"uuid": "db-main", "kind": "db", "endpoint": "", "lastVisit": 0, "agentId": "agent-1"}}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `may not register kind "db"`)
	assert.Empty(t, n.s.Network().Agents(), "nothing of a refused registration is kept")
	n.requireEntry(t, map[string]string{audit.FieldEvent: "denied", audit.FieldKeyName: "build", audit.FieldAction: "register", audit.FieldKind: "db"})
	// Its own kind is fine.
	request(t, c, "ar", map[string]any{"uuid": "agent-1", "containers": []any{}, "kinds": []string{"echo"}, "endpoint": nil})
	assert.Len(t, n.s.Network().Agents(), 1)
}

func TestSecurityClientKeyUsesItsKindsOnly(t *testing.T) {
	n := startSecure(t, nil, "agent KEY:build kinds=echo,db", "client KEY:alice kinds=db", "client KEY:bob kinds=echo")
	n.registerEcho(t, "build", "agent-1")
	bob := n.connectAs(t, "bob", backrpc.ClientHandler{})
	var got []string
	require.NoError(t, json.Unmarshal(request(t, bob, "gg", map[string]any{"kind": "echo", "request": map[string]any{}}), &got))
	require.Len(t, got, 2)

	alice := n.connectAs(t, "alice", backrpc.ClientHandler{})
	_, err := tryRequest(alice, "gg", map[string]any{"kind": "echo", "request": map[string]any{}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `not authorized: key alice may not get kind "echo": the key's kinds are db`)
	// Nor through a kind it has, naming the echo container's uuid.
	_, err = tryRequest(alice, "gg", map[string]any{"kind": "db", "request": map[string]any{"uuid": got[0]}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `may not get kind "echo"`)
	_, err = tryRequest(alice, "cs", []any{got[0], "echo", map[string]any{"x": 1}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `key alice may not request kind "echo"`)
	_, err = tryRequest(alice, "cl", map[string]any{"kind": "echo"})
	require.Error(t, err)
	// Lists show it only its kinds: the agent offers echo and... only echo.
	assert.JSONEq(t, `[]`, string(request(t, alice, "al", struct{}{})))
	assert.JSONEq(t, `[]`, string(request(t, alice, "ak", struct{}{})))
	assert.JSONEq(t, `[]`, string(request(t, alice, "cl", map[string]any{"kind": nil})))
	n.requireEntry(t, map[string]string{audit.FieldEvent: "denied", audit.FieldKeyName: "alice", audit.FieldAction: "request", audit.FieldKind: "echo"})

	// bob may.
	res := request(t, bob, "cs", []any{got[0], "echo", map[string]any{"x": 1}})
	assert.JSONEq(t, `{"op":"echo","data":{"x":1}}`, string(res))
	assert.Contains(t, string(request(t, bob, "cl", map[string]any{"kind": nil})), got[0])
	// Operator methods are the admin's.
	_, err = tryRequest(bob, "zz", struct{}{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "may not operate")
}

func TestSecurityBindsAgentIDToItsKey(t *testing.T) {
	n := startSecure(t, nil, "agent KEY:build-1 kinds=echo", "agent KEY:build-2 kinds=echo")
	_, first := n.registerEcho(t, "build-1", "agent-1")
	// The first session closes: the network rule (owned while the session
	// lives) would let anyone take the id; the binding does not.
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, first.Close(ctx))
	other := n.connectAs(t, "build-2", backrpc.ClientHandler{})
	_, err := tryRequest(other, "ar", map[string]any{"uuid": "agent-1", "containers": []any{}, "kinds": []string{"echo"}, "endpoint": nil})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `agent id "agent-1" is bound to another key`)
	_, err = tryRequest(other, "au", map[string]any{"uuid": "agent-1"})
	require.Error(t, err)
	n.requireEntry(t, map[string]string{audit.FieldEvent: "agent_refused", audit.FieldAgentID: "agent-1"})
	n.requireEntry(t, map[string]string{audit.FieldEvent: "agent_bound", audit.FieldAgentID: "agent-1", audit.FieldKeyName: "build-1"})
	// The owner may come back.
	n.registerEcho(t, "build-1", "agent-1")
}

func TestSecuritySessionBelongsToItsKey(t *testing.T) {
	n := startSecure(t, nil, "client KEY:alice kinds=echo", "client KEY:mallory kinds=echo")
	alice := n.connectAs(t, "alice", backrpc.ClientHandler{})
	// mallory says hello with alice's client id.
	kp := n.keys["mallory"]
	opts := backrpc.ClientOptions{ClientID: alice.ID(), Logger: quiet()}
	opts.Transport.CurveClient = &kp
	opts.Transport.CurveServerKey = n.server.Public
	m, err := backrpc.Dial(n.s.Addr().String(), opts, backrpc.ClientHandler{})
	require.NoError(t, err)
	defer m.Close(context.Background()) //nolint:errcheck
	require.Eventually(t, func() bool { return n.s.Stats().RPC.SessionKeyRefusals > 0 }, waitFor, 10*time.Millisecond)
	info, ok := n.s.Client(alice.ID())
	require.True(t, ok)
	assert.Equal(t, n.keys["alice"].Public, info.Key, "the session stays alice's")
	request(t, alice, "ak", struct{}{})
}

func TestSecurityReloadClosesRemovedKeysOnly(t *testing.T) {
	n := startSecure(t, nil, "agent KEY:build kinds=echo", "client KEY:alice kinds=echo", "client KEY:bob kinds=echo")
	n.registerEcho(t, "build", "agent-1")
	alice := n.connectAs(t, "alice", backrpc.ClientHandler{})
	bob := n.connectAs(t, "bob", backrpc.ClientHandler{})
	request(t, bob, "gg", map[string]any{"kind": "echo", "request": map[string]any{}})
	conns := alice.Stats().Connections

	n.writeKeys(t, "agent KEY:build kinds=echo", "client KEY:alice kinds=echo")
	d, err := n.s.ReloadKeys()
	require.NoError(t, err)
	require.Len(t, d.Removed, 1)
	assert.Equal(t, "bob", d.Removed[0].Name)

	_, stillThere := n.s.Client(bob.ID())
	assert.False(t, stillThere, "bob's session is closed")
	// Its next call meets the refusal of its reconnection.
	_, err = tryRequest(bob, "ak", struct{}{})
	var re *backrpc.RefusedError
	require.ErrorAs(t, err, &re)
	assert.Contains(t, re.Reason, "not in the authorized keys")
	n.requireEntry(t, map[string]string{audit.FieldEvent: "session_closed", audit.FieldKeyName: "bob"})
	n.requireEntry(t, map[string]string{audit.FieldEvent: "keys_reloaded", audit.FieldReason: "removed: bob"})

	// alice keeps her session and connection.
	request(t, alice, "gg", map[string]any{"kind": "echo", "request": map[string]any{}})
	assert.Equal(t, conns, alice.Stats().Connections)

	// A bad file keeps the keys in force.
	require.NoError(t, os.WriteFile(n.keysFile, []byte("nonsense\n"), 0o600))
	_, err = n.s.ReloadKeys()
	require.Error(t, err)
	n.requireEntry(t, map[string]string{audit.FieldEvent: "keys_reload_failed"})
	request(t, alice, "ak", struct{}{})
}

func TestSecurityReloadClosesAgentsWhoseKindWasWithdrawn(t *testing.T) {
	n := startSecure(t, nil, "agent KEY:build kinds=echo,db", "admin KEY:ops")
	_, agent := n.registerEcho(t, "build", "agent-1")
	ops := n.connectAs(t, "ops", backrpc.ClientHandler{})
	n.writeKeys(t, "agent KEY:build kinds=db", "admin KEY:ops")
	d, err := n.s.ReloadKeys()
	require.NoError(t, err)
	require.Len(t, d.Changed, 1)
	_, ok := n.s.Client(agent.ID())
	assert.False(t, ok, "the agent's session is closed: it offers echo")
	_, ok = n.s.Client(ops.ID())
	assert.True(t, ok)
}

func TestSecurityKeyedAgentAndClientEndToEnd(t *testing.T) {
	n := startSecure(t, nil, "agent KEY:build kinds=echo", "client KEY:alice kinds=echo", "client KEY:carol kinds=db", "admin KEY:ops")
	alice := &eventSink{}
	carol := &eventSink{}
	ops := &eventSink{}
	ac := n.connectAs(t, "alice", backrpc.ClientHandler{OnEvent: alice.on})
	n.connectAs(t, "carol", backrpc.ClientHandler{OnEvent: carol.on})
	oc := n.connectAs(t, "ops", backrpc.ClientHandler{OnEvent: ops.on})
	n.registerEcho(t, "build", "agent-1")

	var got []string
	require.NoError(t, json.Unmarshal(request(t, ac, "gg", map[string]any{"kind": "echo", "request": map[string]any{}}), &got))
	res := request(t, ac, "cs", []any{got[0], "echo", "hi"})
	assert.JSONEq(t, `{"op":"echo","data":"hi"}`, string(res))
	require.Eventually(t, func() bool { return alice.sawContainer(got[0], network.EventAdded) }, waitFor, 10*time.Millisecond)
	require.Eventually(t, func() bool { return ops.sawAgent("agent-1", network.EventAdded) }, waitFor, 10*time.Millisecond)
	assert.False(t, carol.sawAgent("agent-1", network.EventAdded), "carol does not watch echo")
	assert.False(t, carol.sawContainer(got[0], network.EventAdded))
	// The admin lists everything.
	assert.Contains(t, string(request(t, oc, "al", struct{}{})), "agent-1")
	// The server names keys by their comment.
	info, ok := n.s.Client(ac.ID())
	require.True(t, ok)
	assert.Equal(t, "alice", n.s.sec.name(info.Key))
}

func TestSecurityAdmitsNullPeerFromAllowList(t *testing.T) {
	// A TypeScript-style peer (no key) on an admitted network works as
	// with security off: registers, gets, requests, lists its kinds.
	n := startSecure(t, []string{"127.0.0.1/32"}, "admin KEY:ops")
	a := &echoAgent{id: "ts-agent", terminated: make(chan string, 4)}
	ag := n.connectAs(t, "", backrpc.ClientHandler{HandleRequest: a.handle})
	request(t, ag, "ar", map[string]any{"uuid": a.id, "containers": []any{}, "kinds": []string{"echo"}, "endpoint": nil})
	cl := n.connectAs(t, "", backrpc.ClientHandler{})
	var got []string
	require.NoError(t, json.Unmarshal(request(t, cl, "gg", map[string]any{"kind": "echo", "request": map[string]any{}}), &got))
	assert.JSONEq(t, `{"op":"ping","data":1}`, string(request(t, cl, "cs", []any{got[0], "ping", 1})))
	assert.Contains(t, string(request(t, cl, "cl", map[string]any{"kind": nil})), got[0])
	assert.Contains(t, string(request(t, cl, "al", struct{}{})), "ts-agent")
	// Its agent id is bound to NULL: a keyed agent cannot take it.
	n.writeKeys(t, "admin KEY:ops", "agent KEY:build kinds=echo")
	_, err := n.s.ReloadKeys()
	require.NoError(t, err)
	b := n.connectAs(t, "build", backrpc.ClientHandler{})
	_, err = tryRequest(b, "ar", map[string]any{"uuid": "ts-agent", "containers": []any{}, "kinds": []string{"echo"}, "endpoint": nil})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "bound to another key")
}

func TestSecurityLimitsAgentIDsPerKey(t *testing.T) {
	n := startSecureMax(t, 2, nil, "agent KEY:build kinds=echo")
	c := n.connectAs(t, "build", backrpc.ClientHandler{})
	for _, id := range []string{"agent-1", "agent-2"} {
		request(t, c, "ar", map[string]any{"uuid": id, "containers": []any{}, "kinds": []string{"echo"}, "endpoint": nil})
	}
	_, err := tryRequest(c, "ar", map[string]any{"uuid": "agent-3", "containers": []any{}, "kinds": []string{"echo"}, "endpoint": nil})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "already has 2 agent ids bound (max_agent_ids_per_key)")
	n.requireEntry(t, map[string]string{audit.FieldEvent: "agent_refused", audit.FieldAgentID: "agent-3", audit.FieldKeyName: "build"})
	assert.Len(t, n.s.Network().Agents(), 2)
}
