package backrpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/huly-net/huly-net/go/transport"
)

// Fuzz inputs encode messages as bytes: frames separated by 0xFF and, for
// the dispatch target, messages separated by 0xFE (neither byte occurs in
// UTF-8 text, so transcript frames never contain them). The seeds are the
// captured transcripts; `go test` runs them, and
//
//	go test -run '^$' -fuzz=FuzzServerDispatch -fuzztime=5m -fuzzminimizetime=5s ./backrpc
//
// explores (the seeds are long sessions: minimising a new input with the
// default 60 s shows as minutes without progress).

const (
	frameSep   = 0xFF
	messageSep = 0xFE
)

func joinFrames(fr [][]byte) []byte { return bytes.Join(fr, []byte{frameSep}) }

func splitFrames(b []byte) [][]byte { return bytes.Split(b, []byte{frameSep}) }

func transcriptBodies(f *testing.F) [][][]byte {
	var out [][][]byte
	for _, tf := range loadTranscripts(f) {
		for _, l := range tf.Lines {
			out = append(out, l.Body())
		}
	}
	return out
}

func FuzzDecodeFrames(f *testing.F) {
	for _, body := range transcriptBodies(f) {
		f.Add(joinFrames(body))
	}
	f.Add([]byte{})
	f.Add([]byte("1\xff\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := splitFrames(data)
		m, err := Decode(fr)
		if err != nil {
			return
		}
		if !m.Op.Valid() {
			t.Fatalf("decoded invalid op %d", m.Op)
		}
		for _, enc := range [][][]byte{EncodeClient(m), EncodeServer(m)} {
			again, err := Decode(enc)
			if err != nil {
				t.Fatalf("re-encoded message does not decode: %v", err)
			}
			if again.Op != m.Op || again.ID != m.ID || !bytes.Equal(again.Payload, m.Payload) {
				t.Fatalf("round trip changed %+v into %+v", m, again)
			}
		}
		// The payload helpers take anything without panicking.
		if method, params, err := DecodeRequestPayload(m.Payload); err == nil {
			p, err := EncodeRequestPayload(method, params)
			if err != nil {
				t.Fatalf("re-encode request: %v", err)
			}
			if !json.Valid(p) {
				t.Fatalf("re-encoded request is not JSON: %q", p)
			}
		}
		_ = DecodeErrorPayload(m.Payload).Error()
		if d, ok := ParseHelloPayload(m.Payload); ok && d <= 0 {
			t.Fatalf("non-positive alive timeout %v", d)
		}
		if n := ParseRetryPayload(m.Payload); n < 1 {
			t.Fatalf("retry of %d ticks", n)
		}
		_, _ = ParseJSON(m.Payload)
	})
}

// sink records what a server sends, without bound or blocking.
type sink struct {
	mu   sync.Mutex
	msgs []sent
}

func (s *sink) Send(peer transport.PeerID, frames ...[]byte) error {
	if len(frames) == 0 {
		return transport.ErrNoFrames
	}
	s.mu.Lock()
	s.msgs = append(s.msgs, sent{peer, frames})
	s.mu.Unlock()
	return nil
}

func FuzzServerDispatch(f *testing.F) {
	// Seeds: each transcript's client → server messages as one session.
	for _, tf := range loadTranscripts(f) {
		var msgs [][]byte
		for _, l := range tf.Lines {
			if clientToServer(l) {
				// The first byte picks the peer: two peers per session.
				peer := byte(l.SID)
				msgs = append(msgs, append([]byte{peer}, joinFrames(l.Body())...))
			}
			if len(msgs) == 64 {
				break
			}
		}
		f.Add(bytes.Join(msgs, []byte{messageSep}))
	}
	f.Add([]byte("\x000\xffc\xff{\"aliveTimeout\":1}\xfe\x001\xffc-0\xff[\"x\",1]\xfe\x001\xffc-0\xff[\"x\",1]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		out := &sink{}
		s := NewServer(ServerOptions{MaxInflight: 4, DrainTimeout: 5 * time.Second}, ServerHandler{
			HandleRequest: func(ctx context.Context, c ClientInfo, method string, params json.RawMessage) (any, error) {
				switch method {
				case "err":
					return nil, errors.New("boom")
				case "panic":
					panic("fuzzed panic")
				}
				return params, nil
			},
		})
		s.serveWith(out)
		for _, msg := range bytes.Split(data, []byte{messageSep}) {
			if len(msg) == 0 {
				continue
			}
			peer := transport.PeerID([]byte{msg[0] & 1})
			s.handleMessage(peer, splitFrames(msg[1:]))
		}
		if err := s.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		out.mu.Lock()
		defer out.mu.Unlock()
		for _, m := range out.msgs {
			if len(m.frames) != 3 {
				t.Fatalf("server sent %d frames", len(m.frames))
			}
			dm, err := Decode(m.frames)
			if err != nil {
				t.Fatalf("server sent an undecodable message: %v", err)
			}
			switch dm.Op {
			case OpHello, OpPong, OpAskHello:
				if dm.ID != s.ID() {
					t.Fatalf("%s with id %q", dm.Op, dm.ID)
				}
			case OpResponse:
				if !json.Valid(dm.Payload) {
					t.Fatalf("response payload is not JSON: %q", dm.Payload)
				}
			case OpResponseError:
				var e struct {
					Message *string `json:"message"`
					Stack   *string `json:"stack"`
				}
				if err := json.Unmarshal(dm.Payload, &e); err != nil || e.Message == nil || e.Stack == nil {
					t.Fatalf("responseError payload %q", dm.Payload)
				}
			case OpRetry:
				if string(dm.Payload) != "1" {
					t.Fatalf("retry %q", dm.Payload)
				}
			default:
				t.Fatalf("server sent %s", dm.Op)
			}
		}
	})
}
