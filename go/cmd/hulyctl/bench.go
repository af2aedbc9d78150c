package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/network"
)

// benchReport is bench's result. The first eight keys are the contract
// scripts rely on; the rest describe the run.
type benchReport struct {
	GetSeconds        float64 `json:"get_seconds"`
	Requests          int     `json:"requests"`
	RequestsPerSecond float64 `json:"requests_per_second"`
	P50MS             float64 `json:"p50_ms"`
	P95MS             float64 `json:"p95_ms"`
	P99MS             float64 `json:"p99_ms"`
	MaxMS             float64 `json:"max_ms"`
	Errors            int     `json:"errors"`

	Network        string  `json:"network"`
	Mode           string  `json:"mode"`
	Kind           string  `json:"kind"`
	Containers     int     `json:"containers"`
	Parallel       int     `json:"parallel"`
	PayloadBytes   int     `json:"payload_bytes"`
	ConnectSeconds float64 `json:"connect_seconds,omitempty"`
	Seconds        float64 `json:"seconds"`
	FirstError     string  `json:"first_error,omitempty"`
}

type benchFlags struct {
	containers   int
	rounds       int
	duration     time.Duration
	parallel     int
	mode         string
	payloadBytes int
	kind         string
}

func (a *app) benchCommand() *cobra.Command {
	f := benchFlags{containers: 10, rounds: 100, parallel: 10, mode: "routed", payloadBytes: 16, kind: "echo"}
	cmd := &cobra.Command{
		Use:   "bench [--containers N] [--rounds R | --duration D] [--parallel P] [--mode routed|direct]",
		Short: "Measure requests to echo containers",
		Long: `Get N echo containers (uuids bench-0 … bench-N-1, one after the other),
then send them requests from P workers, each waiting for its answer before
sending the next, spread over the containers in turn: R rounds of one
request per container, or as many as fit in --duration. Any network works
(ours or the TypeScript one); the agent side is 'hulyctl serve-echo' or any
agent offering --kind with echo semantics.

--mode routed sends each request through the network and the agent (cs);
--mode direct connects to every container first (through its agent's
endpoint, or its own) and sends the requests there.

Prints the time of the N gets, requests per second (of the answered ones),
latency p50/p95/p99/max and the errors. --timeout bounds each get and each
request. --json prints one object with get_seconds, requests,
requests_per_second, p50_ms, p95_ms, p99_ms, max_ms and errors (and more).`,
		Args: exactArgs(0),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			if err := f.validate(cmd); err != nil {
				return err
			}
			rep, err := a.bench(cmd.Context(), f)
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(rep)
			}
			return a.benchText(rep)
		}),
	}
	fl := cmd.Flags()
	fl.IntVar(&f.containers, "containers", f.containers, "number of containers (N)")
	fl.IntVar(&f.rounds, "rounds", f.rounds, "rounds of one request per container (R)")
	fl.DurationVar(&f.duration, "duration", 0, "run for this long instead of --rounds")
	fl.IntVar(&f.parallel, "parallel", f.parallel, "requests in flight at once (P)")
	fl.StringVar(&f.mode, "mode", f.mode, "routed (through the network) or direct (connections)")
	fl.IntVar(&f.payloadBytes, "payload-bytes", f.payloadBytes, "size of the string each request carries")
	fl.StringVar(&f.kind, "kind", f.kind, "kind of the containers")
	return cmd
}

func (f *benchFlags) validate(cmd *cobra.Command) error {
	switch {
	case f.containers < 1:
		return usageError("--containers must be at least 1")
	case f.parallel < 1:
		return usageError("--parallel must be at least 1")
	case f.payloadBytes < 0:
		return usageError("--payload-bytes must not be negative")
	case f.mode != "routed" && f.mode != "direct":
		return usageError("--mode must be routed or direct, got %q", f.mode)
	case f.kind == "":
		return usageError("--kind must not be empty")
	case f.duration < 0:
		return usageError("--duration must not be negative")
	case f.duration > 0 && cmd.Flags().Changed("rounds"):
		return usageError("give --rounds or --duration, not both")
	case f.duration == 0 && f.rounds < 1:
		return usageError("--rounds must be at least 1")
	}
	return nil
}

// benchTarget is what a worker sends to: a reference (routed) or a
// connection (direct).
type benchTarget interface {
	Request(ctx context.Context, op string, data any) (json.RawMessage, error)
}

type routedTarget struct {
	c    *client.Client
	uuid string
}

func (t routedTarget) Request(ctx context.Context, op string, data any) (json.RawMessage, error) {
	return t.c.Request(ctx, t.uuid, op, data)
}

func (a *app) bench(ctx context.Context, f benchFlags) (benchReport, error) {
	rep := benchReport{
		Network: a.network, Mode: f.mode, Kind: f.kind,
		Containers: f.containers, Parallel: f.parallel, PayloadBytes: f.payloadBytes,
	}
	c, err := a.dial(ctx)
	if err != nil {
		return rep, err
	}
	defer a.close(c)

	start := time.Now()
	refs := make([]*client.ContainerRef, f.containers)
	for i := range refs {
		gctx, cancel := a.call(ctx)
		uuid := "bench-" + strconv.Itoa(i)
		refs[i], err = c.Get(gctx, f.kind, client.GetOptions{UUID: network.ContainerUUID(uuid)})
		cancel()
		if err != nil {
			return rep, a.callError("get "+uuid, err)
		}
	}
	rep.GetSeconds = time.Since(start).Seconds()

	targets := make([]benchTarget, f.containers)
	if f.mode == "direct" {
		start := time.Now()
		for i, r := range refs {
			cctx, cancel := a.call(ctx)
			conn, err := r.Connect(cctx)
			cancel()
			if err != nil {
				return rep, a.callError("", err)
			}
			defer func() { _ = conn.Close() }()
			targets[i] = conn
		}
		rep.ConnectSeconds = time.Since(start).Seconds()
	} else {
		for i, r := range refs {
			targets[i] = routedTarget{c: c, uuid: r.UUID()}
		}
	}

	// The payload is encoded once: the bench measures the network, not
	// our JSON encoder.
	payload, err := json.Marshal(strings.Repeat("x", f.payloadBytes))
	if err != nil {
		return rep, fmt.Errorf("encode payload: %w", err)
	}
	total := int64(-1)
	if f.duration == 0 {
		total = int64(f.rounds) * int64(f.containers)
	}
	runCtx := ctx
	if f.duration > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, f.duration)
		defer cancel()
	}

	var (
		done     atomic.Int64
		next     atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		all      []time.Duration
		errCount int
		firstErr error
	)
	start = time.Now()
	stopProgress := a.benchProgress(progressInterval, start, total, &done)
	for w := 0; w < f.parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat, errs, first := a.benchWorker(runCtx, f, targets, payload, total, &next, &done)
			mu.Lock()
			all = append(all, lat...)
			errCount += errs
			if firstErr == nil {
				firstErr = first
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	stopProgress()
	elapsed := time.Since(start)
	if f.duration == 0 && ctx.Err() != nil {
		return rep, fmt.Errorf("bench interrupted: %w", ctx.Err())
	}

	rep.Seconds = elapsed.Seconds()
	rep.Errors = errCount
	rep.Requests = len(all) + errCount
	if firstErr != nil {
		rep.FirstError = oneLine(firstErr.Error())
	}
	if elapsed > 0 {
		rep.RequestsPerSecond = round(float64(len(all))/elapsed.Seconds(), 1)
	}
	slices.Sort(all)
	rep.P50MS = percentileMS(all, 50)
	rep.P95MS = percentileMS(all, 95)
	rep.P99MS = percentileMS(all, 99)
	if len(all) > 0 {
		rep.MaxMS = durMS(all[len(all)-1])
	}
	rep.GetSeconds = round(rep.GetSeconds, 6)
	rep.ConnectSeconds = round(rep.ConnectSeconds, 6)
	rep.Seconds = round(rep.Seconds, 6)
	return rep, nil
}

// benchWorker sends requests until the run's count or duration is used
// up, returning the latencies of the answered ones, the number of errors
// and the first error.
func (a *app) benchWorker(runCtx context.Context, f benchFlags, targets []benchTarget, payload []byte, total int64, next, done *atomic.Int64) (lat []time.Duration, errs int, first error) {
	lat = make([]time.Duration, 0, 1024)
	for runCtx.Err() == nil {
		i := next.Add(1) - 1
		if total >= 0 && i >= total {
			break
		}
		rctx, cancel := a.call(runCtx)
		t0 := time.Now()
		_, err := targets[i%int64(len(targets))].Request(rctx, "echo", json.RawMessage(payload))
		d := time.Since(t0)
		cancel()
		done.Add(1)
		if err != nil {
			// A request cut by the end of --duration is not an error.
			if f.duration > 0 && runCtx.Err() != nil {
				break
			}
			errs++
			if first == nil {
				first = err
			}
			continue
		}
		lat = append(lat, d)
	}
	return lat, errs, first
}

// progressInterval is how often a long bench says how far it is, on
// stderr (stdout keeps only the report).
const progressInterval = 5 * time.Second

// benchProgress reports the requests done so far every progressInterval
// until the returned function is called; a short run prints nothing.
func (a *app) benchProgress(every time.Duration, start time.Time, total int64, done *atomic.Int64) func() {
	stop := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				n := done.Load()
				of := ""
				if total >= 0 {
					of = fmt.Sprintf(" of %d", total)
				}
				elapsed := time.Since(start).Truncate(time.Second)
				fmt.Fprintf(a.stderr, "bench: %s, %d%s requests (%.0f/s)\n", elapsed, n, of, float64(n)/time.Since(start).Seconds())
			}
		}
	}()
	return func() {
		close(stop)
		<-finished
	}
}

// percentileMS is the nearest-rank percentile of sorted latencies.
func percentileMS(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return durMS(sorted[rank])
}

func durMS(d time.Duration) float64 { return round(float64(d.Nanoseconds())/1e6, 3) }

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

func (a *app) benchText(rep benchReport) error {
	rows := [][]string{
		{"network", rep.Network},
		{"mode", rep.Mode},
		{"containers", fmt.Sprintf("%d %s (got in %.3f s)", rep.Containers, rep.Kind, rep.GetSeconds)},
	}
	if rep.Mode == "direct" {
		rows = append(rows, []string{"connections", fmt.Sprintf("%d (opened in %.3f s)", rep.Containers, rep.ConnectSeconds)})
	}
	rows = append(rows,
		[]string{"parallel", strconv.Itoa(rep.Parallel)},
		[]string{"payload", fmt.Sprintf("%d bytes", rep.PayloadBytes)},
		[]string{"requests", fmt.Sprintf("%d in %.3f s, %d errors", rep.Requests, rep.Seconds, rep.Errors)},
		[]string{"requests/s", fmt.Sprintf("%.0f", rep.RequestsPerSecond)},
		[]string{"latency", fmt.Sprintf("p50 %.3f ms  p95 %.3f ms  p99 %.3f ms  max %.3f ms", rep.P50MS, rep.P95MS, rep.P99MS, rep.MaxMS)},
	)
	if rep.FirstError != "" {
		rows = append(rows, []string{"first error", rep.FirstError})
	}
	return a.table(rows)
}
