package network

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Payloads below are copied from frames of the TypeScript 0.7 network.
const (
	tsRegistrationHA = `{"uuid":"dd3fa2cc-ff70-4710-b8ed-414d1757804a","containers":[{"agentId":"dd3fa2cc-ff70-4710-b8ed-414d1757804a","uuid":"leader-1","endpoint":"{\"kind\":0,\"host\":\"127.0.0.1\",\"port\":3738,\"agentId\":\"dd3fa2cc-ff70-4710-b8ed-414d1757804a\",\"uuid\":\"leader-1\"}","kind":"leader","lastVisit":1795362984130}],"kinds":[],"endpoint":"{\"host\":\"127.0.0.1\",\"port\":3738,\"kind\":1,\"agentId\":\"dd3fa2cc-ff70-4710-b8ed-414d1757804a\"}"}`
	tsListAnswer     = `[{"uuid":"12391901-9204-4c1b-8f28-4b174c9fa0ee","agentId":"5133cccb-106b-4b55-86a9-b446c2f2c12c","kind":"echo","lastVisit":317.702522,"endpoint":"","labels":null,"extra":null},{"uuid":"fixed-uuid-1","agentId":"5133cccb-106b-4b55-86a9-b446c2f2c12c","kind":"echo","lastVisit":320.79001,"endpoint":"","labels":["a","b"],"extra":{"tenant":"t1"}}]`
	tsAgentsAnswer   = `[{"agentId":"5133cccb-106b-4b55-86a9-b446c2f2c12c","endpoint":"{\"host\":\"127.0.0.1\",\"port\":3738,\"kind\":1,\"agentId\":\"5133cccb-106b-4b55-86a9-b446c2f2c12c\"}","kinds":["echo"],"containers":0}]`
	tsEventHA        = `{"agents":[{"id":"dd3fa2cc-ff70-4710-b8ed-414d1757804a","kinds":[],"event":2},{"id":"2607237c-b359-4ed1-997b-4dd139e5edc0","kinds":[],"event":0}],"containers":[{"container":{"agentId":"dd3fa2cc-ff70-4710-b8ed-414d1757804a","uuid":"leader-1","endpoint":"{\"kind\":0,\"host\":\"127.0.0.1\",\"port\":3738,\"agentId\":\"dd3fa2cc-ff70-4710-b8ed-414d1757804a\",\"uuid\":\"leader-1\"}","kind":"leader","lastVisit":1795362984130},"event":2}]}`
)

func TestDecodeRegistrationFromTheReference(t *testing.T) {
	reg, err := DecodeRegistration([]byte(tsRegistrationHA))
	require.NoError(t, err)
	assert.Equal(t, AgentID("dd3fa2cc-ff70-4710-b8ed-414d1757804a"), reg.UUID)
	assert.Equal(t, `{"host":"127.0.0.1","port":3738,"kind":1,"agentId":"dd3fa2cc-ff70-4710-b8ed-414d1757804a"}`, reg.Endpoint)
	assert.Equal(t, []string{}, reg.Kinds)
	require.Len(t, reg.Containers, 1)
	assert.Equal(t, ContainerRecord{
		AgentID:   "dd3fa2cc-ff70-4710-b8ed-414d1757804a",
		UUID:      "leader-1",
		Kind:      "leader",
		Endpoint:  `{"kind":0,"host":"127.0.0.1","port":3738,"agentId":"dd3fa2cc-ff70-4710-b8ed-414d1757804a","uuid":"leader-1"}`,
		LastVisit: 1795362984130,
	}, reg.Containers[0])

	out, err := json.Marshal(reg)
	require.NoError(t, err)
	assert.JSONEq(t, tsRegistrationHA, string(out))
}

func TestRegistrationNullsAndMarshalling(t *testing.T) {
	reg, err := DecodeRegistration([]byte(`{"uuid":"a1","containers":null,"kinds":null,"endpoint":null}`))
	require.NoError(t, err)
	assert.Equal(t, AgentRegistration{UUID: "a1"}, reg)
	out, err := json.Marshal(reg)
	require.NoError(t, err)
	assert.Equal(t, `{"uuid":"a1","containers":[],"kinds":[],"endpoint":null}`, string(out))

	for _, bad := range []string{`{"containers":[]}`, `{"uuid":"a","containers":[{"kind":"x"}]}`, `{"uuid":"a","containers":[null]}`, `[]`, `{"uuid":5}`, `{"uuid":"a","containers":[{"uuid":"c","lastVisit":"yesterday"}]}`, ``} {
		_, err := DecodeRegistration([]byte(bad))
		assert.ErrorIs(t, err, ErrInvalidRegistration, "input %q", bad)
	}
}

func TestContainerRecordsParseByKey(t *testing.T) {
	var recs []ContainerRecord
	require.NoError(t, json.Unmarshal([]byte(tsListAnswer), &recs))
	require.Len(t, recs, 2)
	assert.Equal(t, ContainerRecord{
		AgentID:   "5133cccb-106b-4b55-86a9-b446c2f2c12c",
		UUID:      "12391901-9204-4c1b-8f28-4b174c9fa0ee",
		Kind:      "echo",
		LastVisit: 317,
	}, recs[0], "fractional lastVisit, null labels and extra")
	assert.Equal(t, []string{"a", "b"}, recs[1].Labels)
	assert.JSONEq(t, `{"tenant":"t1"}`, string(recs[1].Extra))

	var r ContainerRecord
	require.NoError(t, json.Unmarshal([]byte(`{"uuid":"u","lastVisit":null,"extra":null}`), &r))
	assert.Equal(t, ContainerRecord{UUID: "u"}, r)
	require.NoError(t, json.Unmarshal([]byte(`{"uuid":"u","lastVisit":1e300}`), &r))
	assert.Equal(t, int64(9223372036854775807), r.LastVisit, "out of range clamps")
}

func TestContainerRecordMarshalsInWireKeyOrder(t *testing.T) {
	r := ContainerRecord{AgentID: "a1", UUID: "c1", Kind: "echo", Endpoint: "ref", LastVisit: 1795362984130}
	out, err := json.Marshal(r)
	require.NoError(t, err)
	assert.Equal(t, `{"agentId":"a1","uuid":"c1","kind":"echo","endpoint":"ref","lastVisit":1795362984130}`, string(out))

	r.Labels = []string{"x"}
	r.Extra = json.RawMessage(`{"k":1}`)
	out, err = json.Marshal(r)
	require.NoError(t, err)
	assert.Equal(t, `{"agentId":"a1","uuid":"c1","kind":"echo","endpoint":"ref","lastVisit":1795362984130,"labels":["x"],"extra":{"k":1}}`, string(out))
}

func TestAgentInfoMatchesTheReferenceBytes(t *testing.T) {
	infos := []AgentInfo{{
		AgentID:  "5133cccb-106b-4b55-86a9-b446c2f2c12c",
		Endpoint: AgentDirectRef("127.0.0.1", 3738, "5133cccb-106b-4b55-86a9-b446c2f2c12c"),
		Kinds:    []string{"echo"},
	}}
	out, err := json.Marshal(infos)
	require.NoError(t, err)
	assert.Equal(t, tsAgentsAnswer, string(out))

	var back []AgentInfo
	require.NoError(t, json.Unmarshal(out, &back))
	assert.Equal(t, infos, back)

	out, err = json.Marshal(AgentInfo{AgentID: "a"})
	require.NoError(t, err)
	assert.Equal(t, `{"agentId":"a","endpoint":null,"kinds":[],"containers":0}`, string(out))
	var info AgentInfo
	require.NoError(t, json.Unmarshal(out, &info))
	assert.Equal(t, AgentInfo{AgentID: "a", Kinds: []string{}}, info)
}

func TestEventMarshalling(t *testing.T) {
	var ev Event
	require.NoError(t, json.Unmarshal([]byte(tsEventHA), &ev))
	require.Len(t, ev.Agents, 2)
	assert.Equal(t, EventRemoved, ev.Agents[0].Event)
	assert.Equal(t, EventAdded, ev.Agents[1].Event)
	require.Len(t, ev.Containers, 1)
	assert.Equal(t, ContainerUUID("leader-1"), ev.Containers[0].Container.UUID)

	out, err := json.Marshal(ev)
	require.NoError(t, err)
	assert.JSONEq(t, tsEventHA, string(out))

	out, err = json.Marshal(Event{})
	require.NoError(t, err)
	assert.Equal(t, `{"agents":[],"containers":[]}`, string(out))

	out, err = json.Marshal(Event{
		Agents:     []AgentEvent{{ID: "a1", Event: EventUpdated}},
		Containers: []ContainerEvent{{Container: ContainerRecord{AgentID: "a1", UUID: "c1", Kind: "k", Endpoint: "e", LastVisit: 5}, Event: EventRemoved}},
	})
	require.NoError(t, err)
	assert.Equal(t, `{"agents":[{"id":"a1","kinds":[],"event":1}],"containers":[{"container":{"agentId":"a1","uuid":"c1","kind":"k","endpoint":"e","lastVisit":5},"event":2}]}`, string(out))
	assert.Equal(t, "removed", EventRemoved.String())
	assert.Equal(t, "EventKind(9)", EventKind(9).String())
}

func TestGetOptionsJSON(t *testing.T) {
	var o GetOptions
	require.NoError(t, json.Unmarshal([]byte(`{"uuid":null,"extra":null,"labels":null}`), &o))
	assert.Equal(t, GetOptions{}, o)
	out, err := json.Marshal(o)
	require.NoError(t, err)
	assert.Equal(t, `{}`, string(out), "the back-request gg sends [kind, {}] for no options")

	o = GetOptions{UUID: "u", Extra: json.RawMessage(`{"a":1}`), Labels: []string{"l"}}
	out, err = json.Marshal(o)
	require.NoError(t, err)
	assert.Equal(t, `{"uuid":"u","extra":{"a":1},"labels":["l"]}`, string(out))
	require.Error(t, json.Unmarshal([]byte(`{"labels":"l"}`), &o))
}
