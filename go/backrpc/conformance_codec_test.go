package backrpc

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/internal/transcript"
)

const transcriptDir = "testdata/transcripts"

func loadTranscripts(t testing.TB) []transcript.File {
	t.Helper()
	files, err := transcript.LoadDir(transcriptDir)
	require.NoError(t, err)
	require.Len(t, files, 8, "the eight captured scenarios")
	return files
}

// handMade reports the client → server lines of scenario 08, whose frames
// the raw peer built by hand to probe the server: not what a client encodes.
func handMade(f transcript.File, l transcript.Line) bool {
	return f.Name == "08-raw-peer-server-edge-cases" && clientToServer(l)
}

// clientToServer reports whether a line carries a client → server message
// (a DEALER sending or a ROUTER receiving).
func clientToServer(l transcript.Line) bool {
	return (l.Router() && l.Dir == "in") || (!l.Router() && l.Dir == "out")
}

// TestTranscriptFramesRoundTrip is conformance (a): every captured frame
// decodes with our codec and re-encodes to the same bytes.
func TestTranscriptFramesRoundTrip(t *testing.T) {
	total := 0
	for _, f := range loadTranscripts(t) {
		t.Run(f.Name, func(t *testing.T) {
			for _, l := range f.Lines {
				body := l.Body()
				m, err := Decode(body)
				if len(body) < 3 {
					// 08 sends a request without a payload on purpose.
					require.True(t, handMade(f, l), "line %d: short message from %s", l.Num, l.Proc)
					assert.ErrorIs(t, err, ErrShortMessage, "line %d", l.Num)
					assert.Equal(t, OpRequest, m.Op, "line %d", l.Num)
					assert.NotEmpty(t, m.ID, "line %d: the id survives", l.Num)
					continue
				}
				require.NoError(t, err, "line %d", l.Num)
				var again [][]byte
				if clientToServer(l) {
					again = EncodeClient(m)
				} else {
					again = EncodeServer(m)
				}
				total++
				if handMade(f, l) {
					// Three-frame pings and hellos: the first three frames
					// must still match.
					assert.Equal(t, body[:3], again[:3], "line %d", l.Num)
					continue
				}
				assert.Equal(t, body, again, "line %d: %s %s", l.Num, l.Proc, m.Op)
			}
		})
	}
	assert.Greater(t, total, 1000, "every transcript line was checked")
}

// TestTranscriptPayloadsDecode checks the JSON helpers on every captured
// payload of their kind.
func TestTranscriptPayloadsDecode(t *testing.T) {
	counts := map[Op]int{}
	for _, f := range loadTranscripts(t) {
		for _, l := range f.Lines {
			m, err := Decode(l.Body())
			if err != nil {
				continue
			}
			switch m.Op {
			case OpRequest:
				if _, ok := ParseJSON(m.Payload); !ok {
					require.True(t, handMade(f, l), "%s line %d: bad JSON from %s", f.Name, l.Num, l.Proc)
					continue
				}
				method, _, err := DecodeRequestPayload(m.Payload)
				require.NoError(t, err, "%s line %d", f.Name, l.Num)
				assert.Len(t, method, 2, "%s line %d: methods are two letters", f.Name, l.Num)
				assert.Regexp(t, `-\d+$`, m.ID, "%s line %d: request id CLIENTID-N", f.Name, l.Num)
			case OpResponseError:
				re := DecodeErrorPayload(m.Payload)
				assert.NotEmpty(t, re.Message, "%s line %d", f.Name, l.Num)
				assert.NotEmpty(t, re.Stack, "%s line %d", f.Name, l.Num)
			case OpHello:
				if clientToServer(l) {
					d, ok := ParseHelloPayload(m.Payload)
					require.True(t, ok, "%s line %d", f.Name, l.Num)
					assert.Positive(t, d)
				} else {
					assert.Empty(t, m.Payload, "%s line %d: server hello has no payload", f.Name, l.Num)
				}
			case OpRetry:
				assert.GreaterOrEqual(t, ParseRetryPayload(m.Payload), 1)
			}
			counts[m.Op]++
		}
	}
	for _, op := range []Op{OpHello, OpRequest, OpResponse, OpResponseError, OpEvent, OpPing, OpPong, OpRetry, OpClose, OpAskHello} {
		assert.Positive(t, counts[op], "the transcripts exercise %s", op)
	}
}
