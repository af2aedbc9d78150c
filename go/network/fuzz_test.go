package network

import (
	"context"
	"encoding/json"
	"testing"
)

// FuzzDecodeRegistration feeds arbitrary ar params through decoding and into
// a network: nothing may panic, an accepted registration must survive a
// marshal/decode round trip, and the network must stay consistent.
func FuzzDecodeRegistration(f *testing.F) {
	for _, seed := range []string{
		tsRegistrationHA,
		`{"uuid":"5133cccb-106b-4b55-86a9-b446c2f2c12c","containers":[],"kinds":["echo"],"endpoint":"{\"host\":\"127.0.0.1\",\"port\":3738,\"kind\":1,\"agentId\":\"5133cccb-106b-4b55-86a9-b446c2f2c12c\"}"}`,
		`{"uuid":"a","containers":null,"kinds":null,"endpoint":null}`,
		`{"uuid":"a","containers":[{"uuid":"c","lastVisit":317.702522,"labels":null,"extra":null},{"uuid":"c","kind":"k","labels":["x"],"extra":{"t":1}}]}`,
		`{"uuid":"a","endpoint":"{\"kind\":2,\"agentId\":\"a\",\"host\":\"\",\"port\":0}","containers":[{"uuid":"c"}]}`,
		`{"uuid":"a","containers":[{"uuid":"c","lastVisit":-1e309}]}`,
		`[]`,
		`null`,
		`{"uuid":"\u0000","kinds":["",""]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		reg, err := DecodeRegistration(data)
		if err != nil {
			return
		}
		out, err := json.Marshal(reg)
		if err != nil {
			t.Fatalf("marshal an accepted registration: %v", err)
		}
		again, err := DecodeRegistration(out)
		if err != nil {
			t.Fatalf("decode our own output %s: %v", out, err)
		}
		if len(again.Containers) != len(reg.Containers) || again.UUID != reg.UUID || again.Endpoint != reg.Endpoint {
			t.Fatalf("round trip changed the registration: %s", out)
		}

		n := New(Options{Caller: &benchCaller{}, Logger: quietLogger()})
		if _, err := n.RegisterAgent("c1", reg); err != nil {
			t.Fatalf("a decoded registration was refused: %v", err)
		}
		if _, err := n.RegisterAgent("c2", reg); err != nil {
			t.Fatalf("second registration: %v", err)
		}
		for _, rec := range n.Containers("") {
			if rec.AgentID != reg.UUID {
				t.Fatalf("container %q owned by %q, want %q", rec.UUID, rec.AgentID, reg.UUID)
			}
		}
		if _, err := json.Marshal(n.Tick(context.Background())); err != nil {
			t.Fatalf("marshal event: %v", err)
		}
		if err := n.UnregisterAgent("c2", reg.UUID); err != nil {
			t.Fatal(err)
		}
		if st := n.Stats(); st.Agents != 0 || st.Containers != 0 {
			t.Fatalf("state left after unregister: %+v", st)
		}
	})
}

// FuzzParseEndpointRef: a parsed reference always writes a string that
// parses back to the same reference.
func FuzzParseEndpointRef(f *testing.F) {
	for _, seed := range []string{
		tsAgentRef,
		tsContainerRef,
		AgentNoConnectRef("a1"),
		ContainerDirectRef("h", 1, "c", "a"),
		`{"kind":1,"port":3738.0,"host":"\u2028<&>"}`,
		`{"kind":"1"}`,
		``,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseEndpointRef(s)
		if err != nil {
			return
		}
		back, err := ParseEndpointRef(r.String())
		if err != nil {
			t.Fatalf("our own string %q does not parse: %v", r.String(), err)
		}
		if back != r {
			t.Fatalf("round trip: %+v became %+v", r, back)
		}
	})
}
