package network

import (
	"context"
	"encoding/json"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// benchCaller answers back-requests at once and remembers nothing, so the
// benchmarks measure the network's own decisions.
type benchCaller struct{ next atomic.Int64 }

func (c *benchCaller) GetContainer(_ context.Context, to AgentTarget, _ string, opts GetOptions) (ContainerUUID, string, error) {
	uuid := opts.UUID
	if uuid == "" {
		uuid = ContainerUUID("c-" + strconv.FormatInt(c.next.Add(1), 10))
	}
	return uuid, string(to.Agent) + "/" + string(uuid), nil
}

func (*benchCaller) TerminateContainer(context.Context, AgentTarget, ContainerUUID) error {
	return nil
}

func (*benchCaller) ContainerRequest(_ context.Context, _ AgentTarget, _ ContainerUUID, _ string, data json.RawMessage) (json.RawMessage, error) {
	return data, nil
}

// benchNetwork has 10 agents offering "echo" with 1,000 containers each.
func benchNetwork(b *testing.B, clock Clock) (*Network, []ContainerUUID) {
	b.Helper()
	n := New(Options{Clock: clock, Caller: &benchCaller{}, Logger: quietLogger()})
	var uuids []ContainerUUID
	for a := 0; a < 10; a++ {
		id := AgentID("agent-" + strconv.Itoa(a))
		recs := make([]ContainerRecord, 1000)
		for i := range recs {
			uuid := ContainerUUID("bench-" + strconv.Itoa(a*1000+i))
			recs[i] = ContainerRecord{UUID: uuid, Kind: "echo"}
			uuids = append(uuids, uuid)
		}
		if _, err := n.RegisterAgent(ClientID("host-"+strconv.Itoa(a)), AgentRegistration{
			UUID: id, Kinds: []string{"echo"}, Containers: recs, Endpoint: AgentDirectRef("127.0.0.1", 3738+a, id),
		}); err != nil {
			b.Fatal(err)
		}
	}
	n.Tick(context.Background())
	return n, uuids
}

func BenchmarkGet(b *testing.B) {
	clients := make([]ClientID, 1000)
	for i := range clients {
		clients[i] = ClientID("client-" + strconv.Itoa(i))
	}
	ctx := context.Background()

	b.Run("existing-uuid", func(b *testing.B) {
		n, uuids := benchNetwork(b, SystemClock())
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, _, err := n.Get(ctx, clients[i%len(clients)], "echo", GetOptions{UUID: uuids[i%len(uuids)]}); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("existing-uuid-parallel", func(b *testing.B) {
		n, uuids := benchNetwork(b, SystemClock())
		var seq atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := int(seq.Add(1))
				if _, _, err := n.Get(ctx, clients[i%len(clients)], "echo", GetOptions{UUID: uuids[i%len(uuids)]}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})

	// A start through an agent, then its release; orphans are swept every
	// 1,000 gets so the tables stay the size of a busy network.
	b.Run("start-release", func(b *testing.B) {
		clock := NewFakeClock(time.Unix(1_800_000_000, 0))
		n, _ := benchNetwork(b, clock)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			cl := clients[i%len(clients)]
			uuid, _, err := n.Get(ctx, cl, "echo", GetOptions{})
			if err != nil {
				b.Fatal(err)
			}
			n.Release(cl, uuid)
			if i%1000 == 999 {
				clock.Advance(6 * time.Second)
				for a := 0; a < 10; a++ {
					n.ClientSeen(ClientID("host-" + strconv.Itoa(a)))
				}
				n.Tick(ctx)
			}
		}
	})
}

func BenchmarkRouteLookup(b *testing.B) {
	ctx := context.Background()
	data := json.RawMessage(`{"hello":"world"}`)

	b.Run("serial", func(b *testing.B) {
		n, uuids := benchNetwork(b, SystemClock())
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := n.Route(ctx, uuids[i%len(uuids)], "echo", data); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("parallel", func(b *testing.B) {
		n, uuids := benchNetwork(b, SystemClock())
		var seq atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := n.Route(ctx, uuids[int(seq.Add(1))%len(uuids)], "echo", data); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})

	// ClientSeen runs for every incoming message, so it shares the hot path.
	b.Run("client-seen", func(b *testing.B) {
		n, _ := benchNetwork(b, SystemClock())
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			n.ClientSeen(ClientID("host-" + strconv.Itoa(i%10)))
		}
	})
}

func BenchmarkEventMerge(b *testing.B) {
	// One check period of a busy network: 1,000 events about 100
	// containers and 10 agents, every kind of transition.
	events := make([]Event, 1000)
	for i := range events {
		kind := EventKind(i % 3)
		events[i] = Event{
			Containers: []ContainerEvent{{Container: ContainerRecord{UUID: ContainerUUID("c-" + strconv.Itoa(i%100)), Kind: "echo"}, Event: kind}},
		}
		if i%10 == 0 {
			events[i].Agents = []AgentEvent{{ID: AgentID("a-" + strconv.Itoa(i%10)), Kinds: []string{"echo"}, Event: kind}}
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if e := MergeEvents(events...); len(e.Containers) != 100 {
			b.Fatalf("merged into %d container entries, want 100", len(e.Containers))
		}
	}
}
