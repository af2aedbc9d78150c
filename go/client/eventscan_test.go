package client

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/network"
)

const sampleEvent = `{"agents":[{"id":"a1","kinds":["echo"],"event":0}],"containers":[
 {"container":{"agentId":"a1","uuid":"c1","kind":"echo","endpoint":"e1","lastVisit":1},"event":0},
 {"container":{"agentId":"a1","uuid":"c2","kind":"echo","endpoint":"e2","lastVisit":2,"labels":["x"],"extra":{"k":"}]\""}},"event":0},
 {"event":2,"container":{"agentId":"a1","uuid":"c3","kind":"echo","endpoint":"","lastVisit":3}},
 {"container":{"agentId":"a1","uuid":"c4","kind":"echo","endpoint":"e4","lastVisit":4},"event":1}]}`

func all([]byte) bool { return true }

func TestScanEventKeepsWhatTheClientNeeds(t *testing.T) {
	ev, err := scanEvent([]byte(sampleEvent), func(u []byte) bool { return string(u) == "c2" })
	require.NoError(t, err)
	require.Len(t, ev.Agents, 1)
	assert.Equal(t, []string{"echo"}, ev.Agents[0].Kinds)
	var uuids []string
	for _, ce := range ev.Containers {
		uuids = append(uuids, string(ce.Container.UUID))
	}
	// c1: an addition nobody wants; c2 wanted; c3 removed, c4 updated.
	assert.Equal(t, []string{"c2", "c3", "c4"}, uuids)
	assert.JSONEq(t, `{"k":"}]\""}`, string(ev.Containers[0].Container.Extra))
	assert.Equal(t, network.EventRemoved, ev.Containers[1].Event)
}

func TestScanEventWantingAllEqualsFullDecode(t *testing.T) {
	for _, in := range scanInputs {
		checkScanAgrees(t, []byte(in))
	}
}

func TestScanEventRejectsWhatIsNotAnEvent(t *testing.T) {
	for _, in := range []string{``, `[]`, `{"containers":5}`, `{"containers":[1]}`, `{"containers":[{"container":{"uuid":"x"},"event":"0"}]}`, `{"agents":{}}`, `{"containers":[{"container":{"uuid":"a"}`, `{"a":}`} {
		_, err := scanEvent([]byte(in), all)
		assert.ErrorIs(t, err, errBadEvent, "%q", in)
	}
	// Additions nobody wants are not even looked at beyond their uuid.
	ev, err := scanEvent([]byte(`{"containers":[{"container":{"uuid":"x","lastVisit":"soon"},"event":0}]}`), func([]byte) bool { return false })
	require.NoError(t, err)
	assert.True(t, ev.Empty())
}

var scanInputs = []string{
	sampleEvent, `{}`, `null`, `{"agents":[],"containers":[]}`, `{"agents":null,"containers":null}`,
	`{"Containers":[{"Container":{"UUID":"u"},"Event":0}]}`, `{"containers":[{"event":0}]}`,
	`{"containers":[{"container":{"uuid":"a"}}],"containers":[{"container":{"uuid":"b"}}]}`,
	`{"cont\u0061iners":[{"container":{"uuid":"esc"},"event":1}]}`, `{"x":[{"}":"{"}],"containers":[]}`,
}

// checkScanAgrees: wherever encoding/json decodes an event, scanEvent
// asked for every container must give the same event.
func checkScanAgrees(t *testing.T, in []byte) {
	var want network.Event
	if json.Unmarshal(in, &want) != nil {
		_, _ = scanEvent(in, all) // must not panic
		return
	}
	got, err := scanEvent(in, all)
	if err != nil {
		t.Fatalf("%q: encoding/json decodes it, scanEvent: %v", in, err)
	}
	if len(got.Agents) != len(want.Agents) || len(got.Containers) != len(want.Containers) {
		t.Fatalf("%q: got %+v, want %+v", in, got, want)
	}
	for i := range want.Containers {
		g, w := got.Containers[i], want.Containers[i]
		if g.Event != w.Event || g.Container.UUID != w.Container.UUID || g.Container.Endpoint != w.Container.Endpoint {
			t.Fatalf("%q: container %d: got %+v, want %+v", in, i, g, w)
		}
	}
	for i := range want.Agents {
		if got.Agents[i].ID != want.Agents[i].ID || len(got.Agents[i].Kinds) != len(want.Agents[i].Kinds) {
			t.Fatalf("%q: agent %d: got %+v, want %+v", in, i, got.Agents[i], want.Agents[i])
		}
	}
}

func FuzzScanEvent(f *testing.F) {
	for _, in := range scanInputs {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, in []byte) { checkScanAgrees(t, in) })
}

func BenchmarkScanEvent(b *testing.B) {
	ev := network.Event{}
	for i := range 1000 {
		ev.Containers = append(ev.Containers, network.ContainerEvent{Container: network.ContainerRecord{
			AgentID: "5f1c9f3e-0b7a-4b7e-9a55-1d2c3b4a5e6f", UUID: network.ContainerUUID("scale-" + string(rune('a'+i%26))),
			Kind: "echo", Endpoint: `{"kind":2,"agentId":"5f1c9f3e-0b7a-4b7e-9a55-1d2c3b4a5e6f","uuid":"x"}`, LastVisit: 1700000000000,
		}})
	}
	payload, err := json.Marshal(ev)
	require.NoError(b, err)
	b.Run("scan", func(b *testing.B) {
		b.SetBytes(int64(len(payload)))
		for range b.N {
			if _, err := scanEvent(payload, func([]byte) bool { return false }); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(len(payload)))
		for range b.N {
			var e network.Event
			if !json.Valid(payload) || json.Unmarshal(payload, &e) != nil {
				b.Fatal("decode")
			}
		}
	})
}
