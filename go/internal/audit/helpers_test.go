package audit

import (
	"errors"
	"fmt"
	"testing"

	logtest "github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/auth"
)

func TestRefusedPicksTheEvent(t *testing.T) {
	log, _ := logtest.NewNullLogger()
	rec := &recorder{}
	a := New(log, "huly_network", WithJournal(rec.send))
	k := key(t)

	denied := fmt.Errorf("get: %w", &auth.DeniedError{Key: k, Name: "alice", Action: auth.ActionGet, Kind: "db", Reason: "the key's kinds are echo"})
	require.True(t, a.Refused(denied, "127.0.0.1:1", false))
	require.True(t, a.Refused(&auth.DeniedError{Key: auth.NullKey, Name: "NULL", Action: "connect to the network", Reason: "not in --allow-null-from"}, "10.0.0.1:2", true))
	b := auth.NewBindings(0)
	_, err := b.Bind("agent-1", k)
	require.NoError(t, err)
	_, err = b.Bind("agent-1", auth.NullKey)
	require.True(t, a.Refused(err, "127.0.0.1:3", false))
	assert.False(t, a.Refused(errors.New("timeout"), "x", false), "not a refusal")

	require.Len(t, rec.got, 3)
	assert.Equal(t, "denied", rec.got[0].fields[FieldEvent])
	assert.Equal(t, "alice", rec.got[0].fields[FieldKeyName])
	assert.Equal(t, "handshake_refused", rec.got[1].fields[FieldEvent])
	assert.Equal(t, "NULL", rec.got[1].fields[FieldKey])
	assert.Equal(t, "agent_refused", rec.got[2].fields[FieldEvent])
	assert.Equal(t, "agent-1", rec.got[2].fields[FieldAgentID])
	assert.Equal(t, "NULL", rec.got[2].fields[FieldKey])
}

func TestReloadAndSessionEvents(t *testing.T) {
	log, _ := logtest.NewNullLogger()
	rec := &recorder{}
	a := New(log, "huly_network", WithJournal(rec.send))
	k := key(t)
	a.Reloaded("/etc/huly-net/keys", auth.Diff{Removed: []auth.Entry{{Key: k, Name: "old-laptop"}}})
	a.ReloadFailed("/etc/huly-net/keys", errors.New("keys:3: bad key"))
	a.SessionClosed(k, "old-laptop", "127.0.0.1:9")
	a.AgentBound("agent-7", k, "build-host", "127.0.0.1:8")

	require.Len(t, rec.got, 4)
	assert.Equal(t, "0 added, 1 removed, 0 changed; removed: old-laptop", rec.got[0].fields[FieldReason])
	assert.Equal(t, "keys_reload_failed", rec.got[1].fields[FieldEvent])
	assert.Contains(t, rec.got[1].fields[FieldReason], "previous keys stay in force: keys:3: bad key")
	assert.Equal(t, "session_closed", rec.got[2].fields[FieldEvent])
	assert.Equal(t, "old-laptop", rec.got[2].fields[FieldKeyName])
	assert.Equal(t, "agent_bound", rec.got[3].fields[FieldEvent])
	assert.Equal(t, "build-host", rec.got[3].fields[FieldKeyName])
}
