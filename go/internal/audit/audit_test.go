package audit

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/auth"
	"github.com/huly-net/huly-net/go/curve"
)

type sent struct {
	msg    string
	pri    journal.Priority
	fields map[string]string
}

type recorder struct {
	mu   sync.Mutex
	got  []sent
	fail error
}

func (r *recorder) send(msg string, pri journal.Priority, vars map[string]string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.got = append(r.got, sent{msg, pri, vars})
	return nil
}

func key(t *testing.T) curve.Key {
	t.Helper()
	k, err := curve.ParseKey("Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID")
	require.NoError(t, err)
	return k
}

func TestDeniedGoesToTheJournalWithStableFields(t *testing.T) {
	log, hook := logtest.NewNullLogger()
	rec := &recorder{}
	a := New(log, "huly_network", WithJournal(rec.send))
	denied := &auth.DeniedError{Key: key(t), Name: "alice-laptop", Action: auth.ActionRequest, Kind: "db", Reason: "the key's kinds are echo"}
	a.Record(FromDenied(denied, "127.0.0.1:5000"))

	require.Len(t, rec.got, 1)
	assert.Equal(t, map[string]string{
		"SECURITY_EVENT": "denied",
		"KEY":            "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID",
		"KEY_NAME":       "alice-laptop",
		"PEER_ADDR":      "127.0.0.1:5000",
		"ACTION":         "request",
		"KIND":           "db",
		"REASON":         "the key's kinds are echo",
	}, rec.got[0].fields)
	assert.Equal(t, journal.PriWarning, rec.got[0].pri)
	assert.Equal(t, "security: denied key=alice-laptop peer=127.0.0.1:5000 action=request kind=db: the key's kinds are echo", rec.got[0].msg)
	assert.Empty(t, hook.AllEntries(), "sent to the journal, not logged twice")
	assert.Equal(t, 1.0, testutil.ToFloat64(a.counter.WithLabelValues("denied")))
}

func TestFallbackToLogWithSameFields(t *testing.T) {
	log, hook := logtest.NewNullLogger()
	rec := &recorder{fail: errors.New("no journal")}
	a := New(log, "huly_network", WithJournal(rec.send))
	a.Record(Record{Event: HandshakeRefused, Key: auth.NullKey, HasKey: true, KeyName: "NULL", Peer: "10.0.0.9:4000", Reason: "not in --allow-null-from"})
	a.Record(Record{Event: KeysReloaded, Reason: "1 added, 0 removed, 0 changed"})

	entries := hook.AllEntries()
	require.Len(t, entries, 2)
	assert.Equal(t, logrus.WarnLevel, entries[0].Level)
	assert.Equal(t, "handshake_refused", entries[0].Data["SECURITY_EVENT"])
	assert.Equal(t, "NULL", entries[0].Data["KEY"])
	assert.Equal(t, "10.0.0.9:4000", entries[0].Data["PEER_ADDR"])
	assert.Equal(t, logrus.InfoLevel, entries[1].Level)
	assert.Equal(t, "keys_reloaded", entries[1].Data["SECURITY_EVENT"])
	assert.NotContains(t, entries[1].Data, "KEY", "no key on a reload")

	a2 := New(log, "huly_agent", WithoutJournal())
	hook.Reset()
	a2.Record(Record{Event: AgentRefused, AgentID: "agent-1"})
	require.Len(t, hook.AllEntries(), 1)
	assert.Equal(t, "agent-1", hook.LastEntry().Data["AGENT_ID"])
}

func TestFieldsAreBounded(t *testing.T) {
	r := Record{Event: Denied, Kind: strings.Repeat("é", 1000), Reason: "x"}
	f := r.Fields()
	assert.LessOrEqual(t, len(f["KIND"]), maxFieldLen+len("…"))
	assert.True(t, strings.HasSuffix(f["KIND"], "…"))
	assert.NotContains(t, f, "KEY")
	assert.LessOrEqual(t, len(r.Message()), 3*maxFieldLen)
}

func TestMetricsListEveryEvent(t *testing.T) {
	log, _ := logtest.NewNullLogger()
	a := New(log, "huly_network", WithoutJournal())
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(a))
	a.Record(Record{Event: AgentBound, AgentID: "a"})
	a.Record(Record{Event: AgentBound, AgentID: "b"})
	n, err := testutil.GatherAndCount(reg, "huly_network_security_events_total")
	require.NoError(t, err)
	assert.Equal(t, len(Events), n, "every event type is exported from the start")
	assert.Equal(t, 2.0, testutil.ToFloat64(a.counter.WithLabelValues("agent_bound")))
	assert.Equal(t, 0.0, testutil.ToFloat64(a.counter.WithLabelValues("denied")))
}
