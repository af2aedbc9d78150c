package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/network"
)

// RoundsOptions configure RunRounds.
type RoundsOptions struct {
	// Containers is the number of containers (uuids bench-0 …) and the
	// number of requests in flight in every round. Default 100.
	Containers int
	// Rounds of one request to every container. Default 300.
	Rounds int
	// For, when positive, runs rounds for this long instead of Rounds.
	For         time.Duration
	Kind        string
	CallTimeout time.Duration
}

// RoundsResult is what RunRounds measured.
type RoundsResult struct {
	Containers int     `json:"containers"`
	Rounds     int     `json:"rounds"`
	GetSeconds float64 `json:"get_seconds"`
	Requests   int     `json:"requests"`
	Seconds    float64 `json:"seconds"`
	// RequestsPerSecond counts answered requests over the rounds' time.
	RequestsPerSecond float64 `json:"requests_per_second"`
	// Round is the time of a whole round: its slowest request.
	Round Latency `json:"round"`
	// Request is the time of every request from the round's start.
	Request    Latency `json:"request"`
	Errors     int     `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
}

// RunRounds is the TypeScript network's own benchmark shape (network-tool
// bench): one client gets Containers containers one after another, then
// runs Rounds rounds; a round sends one request to every container at once
// and waits for all answers before the next round starts, so a round lasts
// as long as its slowest request. Each request carries a small object
// ({"hello":"world","index":i,"request":r}) routed through the network
// and the agent.
func RunRounds(ctx context.Context, addr string, o RoundsOptions) (RoundsResult, error) {
	if o.Containers <= 0 {
		o.Containers = 100
	}
	if o.Rounds <= 0 {
		o.Rounds = 300
	}
	if o.Kind == "" {
		o.Kind = "echo"
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	res := RoundsResult{Containers: o.Containers, Rounds: o.Rounds}
	c, err := dialOne(ctx, addr, o.CallTimeout)
	if err != nil {
		return res, fmt.Errorf("connect: %w", err)
	}
	defer closeAll([]*client.Client{c}, o.CallTimeout)

	uuids := make([]string, o.Containers)
	start := time.Now()
	for i := range uuids {
		gctx, cancel := context.WithTimeout(ctx, o.CallTimeout)
		ref, err := c.Get(gctx, o.Kind, client.GetOptions{UUID: network.ContainerUUID("bench-" + strconv.Itoa(i))})
		cancel()
		if err != nil {
			return res, fmt.Errorf("get bench-%d: %w", i, err)
		}
		uuids[i] = ref.UUID()
	}
	res.GetSeconds = roundTo(time.Since(start).Seconds(), 6)

	var errs errorTally
	roundLat := make([]time.Duration, 0, o.Rounds)
	reqLat := make([]time.Duration, 0, o.Containers*o.Rounds)
	var wg sync.WaitGroup
	start = time.Now()
	rounds := o.Rounds
	var until time.Time
	if o.For > 0 {
		rounds = math.MaxInt
		until = start.Add(o.For)
	}
	// One goroutine per container, started once and told when a round
	// starts: a new goroutine per request would grow its stack again for
	// every request, a cost of the load generator, not of the network.
	var (
		t0  time.Time
		lat []time.Duration
		r   int
	)
	starts := make([]chan struct{}, len(uuids))
	var workers sync.WaitGroup
	for i := range uuids {
		starts[i] = make(chan struct{}, 1)
		workers.Add(1)
		go func() {
			defer workers.Done()
			payload := make([]byte, 0, 64)
			for range starts[i] {
				payload = append(payload[:0], `{"hello":"world","index":`...)
				payload = strconv.AppendInt(payload, int64(i), 10)
				payload = append(payload, `,"request":`...)
				payload = strconv.AppendInt(payload, int64(r), 10)
				payload = append(payload, '}')
				rctx, cancel := context.WithTimeout(ctx, o.CallTimeout)
				_, err := c.Request(rctx, uuids[i], "echo", json.RawMessage(payload))
				cancel()
				if err != nil {
					errs.add(err)
					lat[i] = -1
				} else {
					lat[i] = time.Since(t0)
				}
				wg.Done()
			}
		}()
	}
	for r = 0; r < rounds && ctx.Err() == nil && (until.IsZero() || time.Now().Before(until)); r++ {
		base := len(reqLat)
		reqLat = append(reqLat, make([]time.Duration, o.Containers)...)
		lat = reqLat[base:]
		t0 = time.Now()
		wg.Add(len(uuids))
		for _, st := range starts {
			st <- struct{}{}
		}
		wg.Wait()
		roundLat = append(roundLat, time.Since(t0))
	}
	for _, st := range starts {
		close(st)
	}
	workers.Wait()
	elapsed := time.Since(start)
	ok := reqLat[:0]
	for _, d := range reqLat {
		if d >= 0 {
			ok = append(ok, d)
		}
	}
	res.Rounds = len(roundLat)
	res.Seconds = roundTo(elapsed.Seconds(), 6)
	res.Requests = len(roundLat) * o.Containers
	if elapsed > 0 {
		res.RequestsPerSecond = roundTo(float64(len(ok))/elapsed.Seconds(), 1)
	}
	res.Round = Summarize(roundLat)
	res.Request = Summarize(ok)
	res.Errors, res.FirstError = errs.count(), errs.firstText()
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("rounds: %w", err)
	}
	return res, nil
}
