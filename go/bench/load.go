package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/network"
)

// DefaultCallTimeout bounds each connect, get and request of the load
// generators.
const DefaultCallTimeout = 10 * time.Second

func quietLogger() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// errorTally counts errors and keeps the first one's text.
type errorTally struct {
	n     atomic.Int64
	first atomic.Pointer[string]
}

func (e *errorTally) add(err error) {
	e.n.Add(1)
	s := oneLine(err.Error())
	e.first.CompareAndSwap(nil, &s)
}

func (e *errorTally) count() int { return int(e.n.Load()) }

func (e *errorTally) firstText() string {
	if p := e.first.Load(); p != nil {
		return *p
	}
	return ""
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// closeAll closes clients, a few at a time, each bounded.
func closeAll(clients []*client.Client, timeout time.Duration) {
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for _, c := range clients {
		if c == nil {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			_ = c.Close(ctx)
		}()
	}
	wg.Wait()
}

// dialOne connects a client and waits for its session (hello answered).
func dialOne(ctx context.Context, addr string, timeout time.Duration, opts ...client.Option) (*client.Client, error) {
	c, err := client.Dial(addr, append([]client.Option{client.WithLogger(quietLogger())}, opts...)...)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := c.WaitConnected(cctx); err != nil {
		closeAll([]*client.Client{c}, time.Second)
		return nil, err
	}
	return c, nil
}

// ConnectOptions configure RunConnect.
type ConnectOptions struct {
	Clients     int
	CallTimeout time.Duration
	// ServerPID, when set, is sampled while every client is connected.
	ServerPID int
	// Hold keeps every client connected this long after the last has
	// connected, e.g. to inspect the server meanwhile.
	Hold time.Duration
	// ClientOptions are given to every client (client.WithCurve for a
	// secured network).
	ClientOptions []client.Option
}

// ConnectResult is what RunConnect measured.
type ConnectResult struct {
	Clients    int     `json:"clients"`
	Seconds    float64 `json:"seconds"`
	Connect    Latency `json:"connect"`
	Errors     int     `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	// ServerMemory is the server's memory with every client connected.
	ServerMemory *Memory `json:"server_memory,omitempty"`
	// CPU time per connect: of this process (the client library), and of
	// the server when ServerPID is given.
	ClientCPUPerConnectMS float64 `json:"client_cpu_per_connect_ms"`
	ServerCPUPerConnectMS float64 `json:"server_cpu_per_connect_ms,omitempty"`
}

// RunConnect connects clients to the network server at addr one after
// another, each timed from Dial until the server has answered its hello;
// it keeps them all connected until the last, then closes them.
func RunConnect(ctx context.Context, addr string, o ConnectOptions) (ConnectResult, error) {
	if o.CallTimeout <= 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	res := ConnectResult{Clients: o.Clients}
	clients := make([]*client.Client, 0, o.Clients)
	defer func() { closeAll(clients, o.CallTimeout) }()
	var errs errorTally
	lat := make([]time.Duration, 0, o.Clients)
	selfCPU0 := selfCPUSeconds()
	var srvCPU0 float64
	if o.ServerPID > 0 {
		srvCPU0, _ = cpuSeconds(o.ServerPID)
	}
	start := time.Now()
	for i := 0; i < o.Clients; i++ {
		if ctx.Err() != nil {
			return res, fmt.Errorf("connect: %w", ctx.Err())
		}
		t0 := time.Now()
		c, err := dialOne(ctx, addr, o.CallTimeout, o.ClientOptions...)
		if err != nil {
			errs.add(err)
			continue
		}
		lat = append(lat, time.Since(t0))
		clients = append(clients, c)
	}
	res.Seconds = roundTo(time.Since(start).Seconds(), 6)
	if n := len(lat); n > 0 {
		res.ClientCPUPerConnectMS = roundTo((selfCPUSeconds()-selfCPU0)/float64(n)*1000, 4)
		if o.ServerPID > 0 {
			if c, err := cpuSeconds(o.ServerPID); err == nil {
				res.ServerCPUPerConnectMS = roundTo((c-srvCPU0)/float64(n)*1000, 4)
			}
		}
	}
	res.Connect = Summarize(lat)
	res.Errors, res.FirstError = errs.count(), errs.firstText()
	if o.ServerPID > 0 {
		if m, err := ReadMemory(o.ServerPID); err == nil {
			res.ServerMemory = &m
		}
	}
	if o.Hold > 0 {
		t := time.NewTimer(o.Hold)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
	return res, nil
}

// ScaleOptions configure RunScale.
type ScaleOptions struct {
	Clients    int
	Containers int
	Kind       string
	// RequestsFor is how long every client sends requests, one at a
	// time, to its containers in turn.
	RequestsFor  time.Duration
	PayloadBytes int
	CallTimeout  time.Duration
	// DialParallel bounds the clients connecting at once. Default 32.
	DialParallel int
	// ServerPID, when set, is sampled after the requests, with every
	// client still connected and every container referenced.
	ServerPID int
}

// ScaleResult is what RunScale measured.
type ScaleResult struct {
	Clients        int     `json:"clients"`
	Containers     int     `json:"containers"`
	Agents         int     `json:"agents"`
	PerAgentMin    int     `json:"containers_per_agent_min"`
	PerAgentMax    int     `json:"containers_per_agent_max"`
	ConnectSeconds float64 `json:"connect_seconds"`
	GetSeconds     float64 `json:"get_seconds"`
	Get            Latency `json:"get"`
	Requests       int     `json:"requests"`
	RequestSeconds float64 `json:"request_seconds"`
	RequestsPerSec float64 `json:"requests_per_second"`
	Request        Latency `json:"request"`
	ConnectErrors  int     `json:"connect_errors"`
	GetErrors      int     `json:"get_errors"`
	RequestErrors  int     `json:"request_errors"`
	// CheckErrors: the network's listing missed containers, or failed.
	CheckErrors  int     `json:"check_errors"`
	Errors       int     `json:"errors"`
	FirstError   string  `json:"first_error,omitempty"`
	ServerMemory *Memory `json:"server_memory,omitempty"`
}

// RunScale connects Clients clients, has them get Containers containers
// between them (uuids scale-0 …, container i held by client i mod
// Clients; the network spreads new containers over its agents), then has
// every client send requests to its containers, routed through the
// network, for RequestsFor. It checks afterwards that the network lists
// every container and reports how they spread over the agents.
func RunScale(ctx context.Context, addr string, o ScaleOptions) (ScaleResult, error) {
	if o.CallTimeout <= 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	if o.DialParallel <= 0 {
		o.DialParallel = 32
	}
	if o.Kind == "" {
		o.Kind = "echo"
	}
	if o.Clients < 1 || o.Containers < 1 {
		return ScaleResult{}, errors.New("scale: need at least one client and one container")
	}
	res := ScaleResult{Clients: o.Clients, Containers: o.Containers}
	var connErrs, getErrs, reqErrs, checkErrs errorTally

	// Connect.
	clients := make([]*client.Client, o.Clients)
	defer func() { closeAll(clients, o.CallTimeout) }()
	start := time.Now()
	sem := make(chan struct{}, o.DialParallel)
	var wg sync.WaitGroup
	for i := range clients {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			c, err := dialOne(ctx, addr, o.CallTimeout)
			if err != nil {
				connErrs.add(err)
				return
			}
			clients[i] = c
		}()
	}
	wg.Wait()
	res.ConnectSeconds = roundTo(time.Since(start).Seconds(), 6)
	if ctx.Err() != nil {
		return res, fmt.Errorf("scale: %w", ctx.Err())
	}

	// Get: every client its share, one after another; clients in parallel.
	owned := make([][]string, o.Clients)
	var getMu sync.Mutex
	var getLat []time.Duration
	start = time.Now()
	for i, c := range clients {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, o.Containers/o.Clients+1)
			for j := i; j < o.Containers; j += o.Clients {
				uuid := "scale-" + strconv.Itoa(j)
				gctx, cancel := context.WithTimeout(ctx, o.CallTimeout)
				t0 := time.Now()
				_, err := c.Get(gctx, o.Kind, client.GetOptions{UUID: network.ContainerUUID(uuid)})
				d := time.Since(t0)
				cancel()
				if err != nil {
					getErrs.add(fmt.Errorf("get %s: %w", uuid, err))
					continue
				}
				lat = append(lat, d)
				owned[i] = append(owned[i], uuid)
			}
			getMu.Lock()
			getLat = append(getLat, lat...)
			getMu.Unlock()
		}()
	}
	wg.Wait()
	res.GetSeconds = roundTo(time.Since(start).Seconds(), 6)
	res.Get = Summarize(getLat)
	if ctx.Err() != nil {
		return res, fmt.Errorf("scale: %w", ctx.Err())
	}

	// Requests.
	payload, err := json.Marshal(strings.Repeat("x", o.PayloadBytes))
	if err != nil {
		return res, fmt.Errorf("encode payload: %w", err)
	}
	runCtx, cancelRun := context.WithTimeout(ctx, o.RequestsFor)
	defer cancelRun()
	var reqMu sync.Mutex
	var reqLat []time.Duration
	start = time.Now()
	for i, c := range clients {
		if c == nil || len(owned[i]) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 256)
			for k := 0; runCtx.Err() == nil; k++ {
				uuid := owned[i][k%len(owned[i])]
				rctx, cancel := context.WithTimeout(runCtx, o.CallTimeout)
				t0 := time.Now()
				_, err := c.Request(rctx, uuid, "echo", json.RawMessage(payload))
				d := time.Since(t0)
				cancel()
				if err != nil {
					if runCtx.Err() != nil {
						break // cut by the end of the run, not an error
					}
					reqErrs.add(err)
					continue
				}
				lat = append(lat, d)
			}
			reqMu.Lock()
			reqLat = append(reqLat, lat...)
			reqMu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	res.RequestSeconds = roundTo(elapsed.Seconds(), 6)
	res.Request = Summarize(reqLat)
	res.Requests = len(reqLat) + reqErrs.count()
	res.RequestsPerSec = roundTo(float64(len(reqLat))/elapsed.Seconds(), 1)
	if ctx.Err() != nil {
		return res, fmt.Errorf("scale: %w", ctx.Err())
	}
	if o.ServerPID > 0 {
		if m, err := ReadMemory(o.ServerPID); err == nil {
			res.ServerMemory = &m
		}
	}

	// Check what the network holds.
	if err := res.countAgents(ctx, clients, o); err != nil {
		checkErrs.add(err)
	}
	res.ConnectErrors, res.GetErrors, res.RequestErrors, res.CheckErrors = connErrs.count(), getErrs.count(), reqErrs.count(), checkErrs.count()
	res.Errors = res.ConnectErrors + res.GetErrors + res.RequestErrors + res.CheckErrors
	for _, t := range []*errorTally{&connErrs, &getErrs, &reqErrs, &checkErrs} {
		if res.FirstError == "" {
			res.FirstError = t.firstText()
		}
	}
	return res, nil
}

// countAgents lists the network's containers of the run and counts them per
// agent; a container missing from the list is an error.
func (res *ScaleResult) countAgents(ctx context.Context, clients []*client.Client, o ScaleOptions) error {
	var c *client.Client
	for _, cl := range clients {
		if cl != nil {
			c = cl
			break
		}
	}
	if c == nil {
		return errors.New("scale: no client connected")
	}
	lctx, cancel := context.WithTimeout(ctx, o.CallTimeout)
	defer cancel()
	recs, err := c.List(lctx, o.Kind)
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	perAgent := map[network.AgentID]int{}
	found := 0
	for _, r := range recs {
		if strings.HasPrefix(string(r.UUID), "scale-") {
			perAgent[r.AgentID]++
			found++
		}
	}
	res.Agents = len(perAgent)
	for _, n := range perAgent {
		if res.PerAgentMin == 0 || n < res.PerAgentMin {
			res.PerAgentMin = n
		}
		res.PerAgentMax = max(res.PerAgentMax, n)
	}
	if found != o.Containers {
		return fmt.Errorf("the network lists %d of the %d containers", found, o.Containers)
	}
	return nil
}

// selfCPUSeconds is the user+system CPU time of this process so far.
func selfCPUSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
