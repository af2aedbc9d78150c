package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Binaries are the programs the matrix runs.
type Binaries struct {
	Network string // huly-network
	Ctl     string // hulyctl
	Bench   string // huly-bench (this package's command)
	// Load is the hulyctl whose bench command generates the load;
	// default Ctl. Comparisons of two builds run both with the same one.
	Load string
}

func (b Binaries) load() string {
	if b.Load != "" {
		return b.Load
	}
	return b.Ctl
}

// MatrixOptions configure RunMatrix. Zero values take the defaults of
// `just bench`.
type MatrixOptions struct {
	Bin  Binaries
	Runs int // 3
	// RowFor is how long each throughput or latency row sends requests,
	// and each phase of the floor. Default 3s.
	RowFor time.Duration
	// Connects is the number of sequential client connects. Default 1000.
	Connects int
	// The scale row: clients, containers and agents. Defaults 1000,
	// 10000, 10; ScaleFor is how long its clients send requests
	// (default RowFor).
	ScaleClients, ScaleContainers, ScaleAgents int
	ScaleFor                                   time.Duration
	// ProfileFor, when positive, adds one extra (uncounted) routed run
	// with 100 parallel requests over 100 containers, during which the
	// server's CPU profile is taken for this long into ProfileDir.
	ProfileFor time.Duration
	ProfileDir string
	// Version names the build in the report.
	Version string
	// Progress receives one line per step; nil discards.
	Progress io.Writer `json:"-"`
}

func (o *MatrixOptions) defaults() {
	if o.Runs <= 0 {
		o.Runs = 3
	}
	if o.RowFor <= 0 {
		o.RowFor = 3 * time.Second
	}
	if o.Connects <= 0 {
		o.Connects = 1000
	}
	if o.ScaleClients <= 0 {
		o.ScaleClients = 1000
	}
	if o.ScaleContainers <= 0 {
		o.ScaleContainers = 10000
	}
	if o.ScaleAgents <= 0 {
		o.ScaleAgents = 10
	}
	if o.ScaleFor <= 0 {
		o.ScaleFor = o.RowFor
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

// Run is one run of one scenario: its metrics, or why it failed.
type Run struct {
	Metrics map[string]float64 `json:"metrics"`
	Error   string             `json:"error,omitempty"`
	// Detail is the scenario's own output (the bench tool's JSON).
	Detail any `json:"detail,omitempty"`
}

// ScenarioResult collects the runs of one scenario.
type ScenarioResult struct {
	ID   string `json:"id"`
	Runs []Run  `json:"runs"`
}

// Metric returns the spread of one metric over the successful runs.
func (s *ScenarioResult) Metric(key string) Spread {
	var v []float64
	for _, r := range s.Runs {
		if r.Error != "" {
			continue
		}
		if x, ok := r.Metrics[key]; ok {
			v = append(v, x)
		}
	}
	return SpreadOf(v)
}

// Failures are the error texts of the failed runs.
func (s *ScenarioResult) Failures() []string {
	var out []string
	for _, r := range s.Runs {
		if r.Error != "" {
			out = append(out, r.Error)
		}
	}
	return out
}

// MatrixResult is everything the report is written from.
type MatrixResult struct {
	Options   MatrixOptions
	Started   time.Time
	Finished  time.Time
	LoadStart [3]float64
	LoadEnd   [3]float64
	Scenarios map[string]*ScenarioResult
	// ProfileTop is `go tool pprof -top` of the server's CPU profile
	// under the 100-parallel load; ProfileFile is where it was saved.
	ProfileTop  string
	ProfileFile string
	ProfileErr  string
}

// Scenario returns the result of a scenario (empty when it did not run).
func (m *MatrixResult) Scenario(id string) *ScenarioResult {
	if s := m.Scenarios[id]; s != nil {
		return s
	}
	return &ScenarioResult{ID: id}
}

// Scenario ids, in the order they run within a round.
const (
	ScFloor       = "floor"
	ScRoutedN1    = "routed-n1"
	ScRoutedN100  = "routed-n100"
	ScRoutedN1000 = "routed-n1000"
	ScRoutedSeq   = "routed-seq"
	ScDirectSeq   = "direct-seq"
	ScConnect     = "connect"
	ScScale       = "scale"
)

type scenario struct {
	id  string
	run func(ctx context.Context) (Run, error)
}

type matrix struct {
	o MatrixOptions
}

// RunMatrix runs every scenario Runs times, interleaved (round after
// round, so that a change in the machine's load touches every row alike),
// each run against a freshly started server.
func RunMatrix(ctx context.Context, o MatrixOptions) (*MatrixResult, error) {
	o.defaults()
	for _, p := range []string{o.Bin.Network, o.Bin.Ctl, o.Bin.Bench} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("benchmark binary: %w", err)
		}
	}
	m := &matrix{o: o}
	res := &MatrixResult{Options: o, Started: time.Now(), LoadStart: LoadAverage(), Scenarios: map[string]*ScenarioResult{}}
	scenarios := []scenario{
		{ScFloor, m.floor},
		{ScRoutedN1, m.hulyctlBench(1, 100, "routed")},
		{ScRoutedN100, m.hulyctlBench(100, 100, "routed")},
		{ScRoutedN1000, m.hulyctlBench(1000, 100, "routed")},
		{ScRoutedSeq, m.hulyctlBench(1, 1, "routed")},
		{ScDirectSeq, m.hulyctlBench(1, 1, "direct")},
		{ScConnect, m.connect},
		{ScScale, m.scale},
	}
	for round := 1; round <= o.Runs; round++ {
		for _, sc := range scenarios {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			fmt.Fprintf(o.Progress, "run %d/%d: %s (load %.2f) …\n", round, o.Runs, sc.id, LoadAverage()[0])
			load := LoadAverage()[0]
			r, err := sc.run(ctx)
			if err != nil {
				r.Error = oneLine(err.Error())
				fmt.Fprintf(o.Progress, "  failed: %s\n", r.Error)
			}
			if r.Metrics == nil {
				r.Metrics = map[string]float64{}
			}
			r.Metrics["load1"] = load
			s := res.Scenarios[sc.id]
			if s == nil {
				s = &ScenarioResult{ID: sc.id}
				res.Scenarios[sc.id] = s
			}
			s.Runs = append(s.Runs, r)
		}
	}
	if o.ProfileFor > 0 && ctx.Err() == nil {
		fmt.Fprintf(o.Progress, "profile: server CPU for %s under 100 parallel routed requests …\n", o.ProfileFor)
		file, top, err := m.profile(ctx)
		res.ProfileFile, res.ProfileTop = file, top
		if err != nil {
			res.ProfileErr = oneLine(err.Error())
			fmt.Fprintf(o.Progress, "  profile failed: %s\n", res.ProfileErr)
		}
	}
	res.Finished = time.Now()
	res.LoadEnd = LoadAverage()
	return res, ctx.Err()
}

// ---- the network under test ----

type netEnv struct {
	srv    *process
	addr   string
	pprof  string
	agents []*process
	idle   Memory
}

const readyTimeout = 30 * time.Second

// startNetwork starts a server and agents echo agents (hulyctl
// serve-echo), waits until every agent is registered and records the
// server's idle memory.
func (m *matrix) startNetwork(ctx context.Context, agents int, pprof bool) (*netEnv, error) {
	args := []string{"--listen", "tcp://127.0.0.1:0", "--log-format", "json", "--log-level", "info"}
	if pprof {
		args = append(args, "--pprof-listen", "127.0.0.1:0")
	}
	srv, err := startProcess("huly-network", m.o.Bin.Network, args...)
	if err != nil {
		return nil, err
	}
	env := &netEnv{srv: srv}
	line, err := srv.waitLine(ctx, readyTimeout, func(l string) bool { return strings.Contains(l, "huly-network listening") })
	if err != nil {
		env.stop()
		return nil, err
	}
	env.addr, _ = jsonField(line, "listen")
	if env.addr == "" {
		env.stop()
		return nil, fmt.Errorf("huly-network listening line names no address: %s", line)
	}
	if pprof {
		line, err := srv.waitLine(ctx, readyTimeout, func(l string) bool { return strings.Contains(l, "serving pprof") })
		if err != nil {
			env.stop()
			return nil, err
		}
		env.pprof, _ = jsonField(line, "pprof")
	}
	for i := 0; i < agents; i++ {
		a, err := startProcess("hulyctl serve-echo", m.o.Bin.Ctl, "--network", env.addr, "--json", "--timeout", "30s", "serve-echo")
		if err != nil {
			env.stop()
			return nil, err
		}
		env.agents = append(env.agents, a)
	}
	for _, a := range env.agents {
		if _, err := a.waitLine(ctx, readyTimeout, func(l string) bool { return strings.Contains(l, `"agent_id"`) }); err != nil {
			env.stop()
			return nil, err
		}
	}
	if env.idle, err = ReadMemory(srv.pid()); err != nil {
		env.stop()
		return nil, fmt.Errorf("server memory: %w", err)
	}
	return env, nil
}

func (e *netEnv) stop() {
	var wg sync.WaitGroup
	for _, a := range e.agents {
		wg.Add(1)
		go func() { defer wg.Done(); a.stop(10 * time.Second) }()
	}
	wg.Wait()
	e.srv.stop(10 * time.Second)
}

// measured runs load against env and adds the server's memory (idle,
// peak, at the end) and CPU per request to the run's metrics.
func (e *netEnv) measured(load func(r *Run) (requests float64, err error)) (Run, error) {
	r := Run{Metrics: map[string]float64{"rss_idle_mb": e.idle.VmRSSMB}}
	cpu0, cpuErr := cpuSeconds(e.srv.pid())
	rd0, wr0, ioErr := ioSyscalls(e.srv.pid())
	requests, err := load(&r)
	if err != nil {
		return r, err
	}
	cpu1, cpuErr1 := cpuSeconds(e.srv.pid())
	rd1, wr1, ioErr1 := ioSyscalls(e.srv.pid())
	if cpuErr == nil && cpuErr1 == nil {
		r.Metrics["server_cpu_s"] = roundTo(cpu1-cpu0, 2)
		if requests > 0 {
			r.Metrics["server_cpu_us_per_req"] = roundTo((cpu1-cpu0)/requests*1e6, 2)
		}
	}
	if ioErr == nil && ioErr1 == nil && requests > 0 {
		// System calls per request: a write (or read) per message is
		// what batching saves.
		r.Metrics["server_reads_per_req"] = roundTo((rd1-rd0)/requests, 3)
		r.Metrics["server_writes_per_req"] = roundTo((wr1-wr0)/requests, 3)
	}
	mem, err := ReadMemory(e.srv.pid())
	if err != nil {
		return r, fmt.Errorf("server memory: %w", err)
	}
	r.Metrics["rss_end_mb"] = mem.VmRSSMB
	r.Metrics["hwm_mb"] = mem.VmHWMMB
	return r, nil
}

// ---- scenarios ----

// hulyctlReport is the part of `hulyctl bench --json` the matrix reads.
type hulyctlReport struct {
	GetSeconds        float64 `json:"get_seconds"`
	Requests          int     `json:"requests"`
	RequestsPerSecond float64 `json:"requests_per_second"`
	P50MS             float64 `json:"p50_ms"`
	P95MS             float64 `json:"p95_ms"`
	P99MS             float64 `json:"p99_ms"`
	MaxMS             float64 `json:"max_ms"`
	Errors            int     `json:"errors"`
	ConnectSeconds    float64 `json:"connect_seconds,omitempty"`
	FirstError        string  `json:"first_error,omitempty"`
}

func (m *matrix) benchArgs(addr string, containers, parallel int, mode string, d time.Duration) []string {
	return []string{
		"--network", addr, "--json", "--timeout", "10s", "bench",
		"--containers", strconv.Itoa(containers), "--parallel", strconv.Itoa(parallel),
		"--mode", mode, "--duration", d.String(),
	}
}

func (m *matrix) hulyctlBench(containers, parallel int, mode string) func(context.Context) (Run, error) {
	return func(ctx context.Context) (Run, error) {
		env, err := m.startNetwork(ctx, 1, false)
		if err != nil {
			return Run{}, err
		}
		defer env.stop()
		return env.measured(func(r *Run) (float64, error) {
			var rep hulyctlReport
			timeout := m.o.RowFor + 2*time.Minute
			if err := runJSON(ctx, timeout, &rep, m.o.Bin.load(), m.benchArgs(env.addr, containers, parallel, mode, m.o.RowFor)...); err != nil {
				return 0, err
			}
			r.Detail = rep
			r.Metrics["rps"] = rep.RequestsPerSecond
			r.Metrics["p50_ms"] = rep.P50MS
			r.Metrics["p95_ms"] = rep.P95MS
			r.Metrics["p99_ms"] = rep.P99MS
			r.Metrics["max_ms"] = rep.MaxMS
			r.Metrics["errors"] = float64(rep.Errors)
			r.Metrics["requests"] = float64(rep.Requests)
			r.Metrics["get_s"] = rep.GetSeconds
			if rep.Errors > 0 {
				return float64(rep.Requests), fmt.Errorf("%d errors, first: %s", rep.Errors, rep.FirstError)
			}
			return float64(rep.Requests), nil
		})
	}
}

func (m *matrix) floor(ctx context.Context) (Run, error) {
	srv, err := startProcess("huly-bench tcp-echo", m.o.Bin.Bench, "tcp-echo", "--listen", "127.0.0.1:0")
	if err != nil {
		return Run{}, err
	}
	defer srv.stop(5 * time.Second)
	line, err := srv.waitLine(ctx, readyTimeout, func(l string) bool { return strings.Contains(l, `"listen"`) })
	if err != nil {
		return Run{}, err
	}
	addr, _ := jsonField(line, "listen")
	var fr FloorResult
	err = runJSON(ctx, 3*m.o.RowFor+2*time.Minute, &fr, m.o.Bin.Bench, "floor", "--addr", addr,
		"--parallel", "100", "--for", m.o.RowFor.String(), "--sequential-for", m.o.RowFor.String(),
		"--connects", strconv.Itoa(m.o.Connects))
	if err != nil {
		return Run{}, err
	}
	return Run{Detail: fr, Metrics: map[string]float64{
		"rps":             fr.RequestsPerSecond,
		"par_p50_ms":      fr.ParallelLatency.P50MS,
		"p50_ms":          fr.Sequential.P50MS,
		"p95_ms":          fr.Sequential.P95MS,
		"p99_ms":          fr.Sequential.P99MS,
		"max_ms":          fr.Sequential.MaxMS,
		"connect_mean_ms": fr.Connect.MeanMS,
	}}, nil
}

func (m *matrix) connect(ctx context.Context) (Run, error) {
	env, err := m.startNetwork(ctx, 0, false)
	if err != nil {
		return Run{}, err
	}
	defer env.stop()
	return env.measured(func(r *Run) (float64, error) {
		var cr ConnectResult
		err := runJSON(ctx, 5*time.Minute, &cr, m.o.Bin.Bench, "connect", "--network", env.addr,
			"--clients", strconv.Itoa(m.o.Connects), "--server-pid", strconv.Itoa(env.srv.pid()))
		if err != nil {
			return 0, err
		}
		r.Detail = cr
		r.Metrics["connect_mean_ms"] = cr.Connect.MeanMS
		r.Metrics["p50_ms"] = cr.Connect.P50MS
		r.Metrics["p99_ms"] = cr.Connect.P99MS
		r.Metrics["max_ms"] = cr.Connect.MaxMS
		r.Metrics["errors"] = float64(cr.Errors)
		if cr.ServerMemory != nil {
			r.Metrics["rss_clients_mb"] = cr.ServerMemory.VmRSSMB
		}
		if cr.Errors > 0 {
			return float64(cr.Clients), fmt.Errorf("%d connects failed, first: %s", cr.Errors, cr.FirstError)
		}
		return float64(cr.Clients), nil
	})
}

func (m *matrix) scale(ctx context.Context) (Run, error) {
	env, err := m.startNetwork(ctx, m.o.ScaleAgents, false)
	if err != nil {
		return Run{}, err
	}
	defer env.stop()
	return env.measured(func(r *Run) (float64, error) {
		var sr ScaleResult
		err := runJSON(ctx, 10*time.Minute, &sr, m.o.Bin.Bench, "scale", "--network", env.addr,
			"--clients", strconv.Itoa(m.o.ScaleClients), "--containers", strconv.Itoa(m.o.ScaleContainers),
			"--for", m.o.ScaleFor.String(), "--server-pid", strconv.Itoa(env.srv.pid()))
		if err != nil {
			return 0, err
		}
		r.Detail = sr
		r.Metrics["errors"] = float64(sr.Errors)
		r.Metrics["connect_s"] = sr.ConnectSeconds
		r.Metrics["get_s"] = sr.GetSeconds
		r.Metrics["get_p50_ms"] = sr.Get.P50MS
		r.Metrics["rps"] = sr.RequestsPerSec
		r.Metrics["p50_ms"] = sr.Request.P50MS
		r.Metrics["p95_ms"] = sr.Request.P95MS
		r.Metrics["p99_ms"] = sr.Request.P99MS
		r.Metrics["max_ms"] = sr.Request.MaxMS
		r.Metrics["requests"] = float64(sr.Requests)
		r.Metrics["agents"] = float64(sr.Agents)
		r.Metrics["per_agent_min"] = float64(sr.PerAgentMin)
		r.Metrics["per_agent_max"] = float64(sr.PerAgentMax)
		if sr.ServerMemory != nil {
			r.Metrics["rss_loaded_mb"] = sr.ServerMemory.VmRSSMB
		}
		if sr.Errors > 0 {
			return float64(sr.Requests), fmt.Errorf("%d errors, first: %s", sr.Errors, sr.FirstError)
		}
		if sr.Agents != m.o.ScaleAgents {
			return float64(sr.Requests), fmt.Errorf("containers spread over %d agents, want %d", sr.Agents, m.o.ScaleAgents)
		}
		return float64(sr.Requests), nil
	})
}

// profile takes the server's CPU profile while hulyctl bench runs 100
// parallel routed requests over 100 containers.
func (m *matrix) profile(ctx context.Context) (file, top string, err error) {
	if m.o.ProfileDir == "" {
		return "", "", errors.New("no profile directory")
	}
	env, err := m.startNetwork(ctx, 1, true)
	if err != nil {
		return "", "", err
	}
	defer env.stop()
	if env.pprof == "" {
		return "", "", errors.New("the server did not say where it serves pprof")
	}
	// The load outlasts the profile by a margin on both sides, so that
	// the profile sees requests only, not the gets or the ramp.
	const margin = time.Second
	benchErr := make(chan error, 1)
	go func() {
		var rep hulyctlReport
		benchErr <- runJSON(ctx, m.o.ProfileFor+2*time.Minute, &rep, m.o.Bin.load(), m.benchArgs(env.addr, 100, 100, "routed", m.o.ProfileFor+3*margin)...)
	}()
	t := time.NewTimer(margin)
	select {
	case <-t.C:
	case err := <-benchErr:
		return "", "", fmt.Errorf("bench ended before the profile: %v", err)
	}
	file = filepath.Join(m.o.ProfileDir, "server-cpu.pprof")
	perr := fetchProfile(ctx, "http://"+env.pprof+"/debug/pprof/profile?seconds="+strconv.Itoa(int(m.o.ProfileFor.Seconds())), file, m.o.ProfileFor+time.Minute)
	if berr := <-benchErr; berr != nil && perr == nil {
		perr = fmt.Errorf("bench during the profile: %w", berr)
	}
	if perr != nil {
		return "", "", perr
	}
	top, err = pprofTop(ctx, m.o.Bin.Network, file)
	return file, top, err
}

func fetchProfile(ctx context.Context, url, file string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("fetch profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch profile: %s", resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return fmt.Errorf("save profile: %w", err)
	}
	return f.Close()
}

// pprofTop renders the profile with `go tool pprof -top`, when Go is here.
func pprofTop(ctx context.Context, binary, file string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("profile saved to %s; no go tool to render it", file)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var b strings.Builder
	// By own time (where the CPU goes) and by cumulative time (which
	// call paths it goes through).
	for _, sortBy := range []string{"-flat", "-cum"} {
		out, err := exec.CommandContext(ctx, goBin, "tool", "pprof", "-top", sortBy, "-nodecount=30", binary, file).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("go tool pprof: %w: %s", err, lastLines(string(out), 3))
		}
		if b.Len() > 0 {
			// The header repeats; keep the table only.
			if i := strings.Index(string(out), "      flat"); i >= 0 {
				out = out[i:]
			}
			b.WriteString("\n")
		}
		b.Write(out)
	}
	return b.String(), nil
}
