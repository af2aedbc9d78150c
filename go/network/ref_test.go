package network

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The strings below are copied from frames the TypeScript 0.7 peers sent.
const (
	tsAgentRef     = `{"host":"127.0.0.1","port":3738,"kind":1,"agentId":"5133cccb-106b-4b55-86a9-b446c2f2c12c"}`
	tsContainerRef = `{"kind":0,"host":"127.0.0.1","port":3738,"agentId":"5133cccb-106b-4b55-86a9-b446c2f2c12c","uuid":"12391901-9204-4c1b-8f28-4b174c9fa0ee"}`
)

func TestRefConstructorsWriteTheReferenceKeyOrder(t *testing.T) {
	assert.Equal(t, `{"host":"127.0.0.1","port":3738,"kind":1,"agentId":"a1"}`, AgentDirectRef("127.0.0.1", 3738, "a1"))
	assert.Equal(t, tsAgentRef, AgentDirectRef("127.0.0.1", 3738, "5133cccb-106b-4b55-86a9-b446c2f2c12c"))
	assert.Equal(t, `{"kind":2,"agentId":"a1","host":"","port":0}`, AgentNoConnectRef("a1"))
	assert.Equal(t, `{"kind":1,"host":"10.1.2.3","port":4000,"uuid":"c1","agentId":"a1"}`, ContainerDirectRef("10.1.2.3", 4000, "c1", "a1"))

	agent, err := ParseEndpointRef(tsAgentRef)
	require.NoError(t, err)
	assert.Equal(t, tsContainerRef, ContainerOnAgentRef(agent, "12391901-9204-4c1b-8f28-4b174c9fa0ee"))

	noconn, err := ParseEndpointRef(AgentNoConnectRef("a1"))
	require.NoError(t, err)
	assert.Equal(t, `{"kind":2,"host":"","port":0,"agentId":"a1","uuid":"c1"}`, ContainerOnAgentRef(noconn, "c1"))
}

func TestParseEndpointRefAcceptsAnyKeyOrder(t *testing.T) {
	want := EndpointRef{Kind: RefRouted, Host: "127.0.0.1", Port: 3738, AgentID: "5133cccb-106b-4b55-86a9-b446c2f2c12c", UUID: "12391901-9204-4c1b-8f28-4b174c9fa0ee"}
	got, err := ParseEndpointRef(tsContainerRef)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	assert.True(t, got.IsContainer())

	got, err = ParseEndpointRef(`{"uuid":"12391901-9204-4c1b-8f28-4b174c9fa0ee","agentId":"5133cccb-106b-4b55-86a9-b446c2f2c12c","port":3738.0,"host":"127.0.0.1","kind":0,"extra":true}`)
	require.NoError(t, err)
	assert.Equal(t, want, got)

	got, err = ParseEndpointRef(`{"kind":2,"agentId":"a1","host":null}`)
	require.NoError(t, err)
	assert.Equal(t, EndpointRef{Kind: RefNoConnect, AgentID: "a1"}, got)
	assert.False(t, got.IsContainer())
}

func TestParseEndpointRefRejectsBadInput(t *testing.T) {
	for _, in := range []string{
		``,
		`{`,
		`[]`,
		`"str"`,
		`{"host":"h","port":1}`,
		`{"kind":3}`,
		`{"kind":-1}`,
		`{"kind":1.5}`,
		`{"kind":"x"}`,
		`{"kind":1,"port":70000}`,
		`{"kind":1,"port":1.5}`,
		`{"kind":1,"host":5}`,
	} {
		_, err := ParseEndpointRef(in)
		assert.ErrorIs(t, err, ErrInvalidRef, "input %q", in)
	}
}

func TestEndpointRefStringRoundTrips(t *testing.T) {
	for _, s := range []string{
		tsAgentRef,
		tsContainerRef,
		AgentNoConnectRef("a1"),
		ContainerDirectRef("h", 1, "c", "a"),
		`{"kind":2,"host":"","port":0,"agentId":"a1","uuid":"c1"}`,
		`{"host":"h","port":7,"kind":0,"agentId":"a"}`,
	} {
		r, err := ParseEndpointRef(s)
		require.NoError(t, err, s)
		assert.Equal(t, s, r.String())
	}
	assert.Equal(t, "direct", RefDirect.String())
	assert.Equal(t, "RefKind(7)", RefKind(7).String())
}

func TestRefStringsAreEscapedLikeJavaScript(t *testing.T) {
	// JSON.stringify leaves <, >, & and U+2028 alone, escapes control
	// characters with lower-case hex, and writes other text verbatim.
	assert.Equal(t,
		"{\"host\":\"<a&b>\u2028é\",\"port\":1,\"kind\":1,\"agentId\":\"q\\\"b\\\\s\\n\\u001f\\t\"}",
		AgentDirectRef("<a&b>\u2028é", 1, "q\"b\\s\n\x1f\t"))
	// Invalid UTF-8 cannot be written as is; it becomes U+FFFD.
	s := AgentNoConnectRef("a\xffb")
	assert.Equal(t, "{\"kind\":2,\"agentId\":\"a\uFFFDb\",\"host\":\"\",\"port\":0}", s)
	r, err := ParseEndpointRef(s)
	require.NoError(t, err)
	assert.Equal(t, AgentID("a\uFFFDb"), r.AgentID)
}
