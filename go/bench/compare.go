package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

// Build is one build of the daemons under comparison: its network server
// and the hulyctl that hosts the echo agent (serve-echo).
type Build struct {
	Name    string `json:"name"`
	Network string `json:"network"`
	Agent   string `json:"agent"`
}

// CompareOptions configure RunCompare. Zero values take the defaults of
// `just bench --baseline REF`.
type CompareOptions struct {
	// This is the build being measured, Baseline what it is compared with.
	This, Baseline Build
	// Load is the hulyctl and Bench the huly-bench that generate the load
	// against both builds (one client library for both).
	Load, Bench string
	Runs        int           // 3
	RowFor      time.Duration // sequential rows and each phase of the floor; 3s
	Containers  int           // of the rounds shape; 100
	Rounds      int           // rounds of the rounds shape; 300
	Gets        int           // sequential gets; 1000
	Connects    int           // sequential client connects; 1000
	// ProfileDir, when set, receives the CPU profiles of the three
	// processes of one extra rounds run of each build.
	ProfileDir string
	Version    string
	Progress   io.Writer `json:"-"`
}

func (o *CompareOptions) defaults() {
	if o.Runs <= 0 {
		o.Runs = 3
	}
	if o.RowFor <= 0 {
		o.RowFor = 3 * time.Second
	}
	if o.Containers <= 0 {
		o.Containers = 100
	}
	if o.Rounds <= 0 {
		o.Rounds = 300
	}
	if o.Gets <= 0 {
		o.Gets = 1000
	}
	if o.Connects <= 0 {
		o.Connects = 1000
	}
	if o.This.Name == "" {
		o.This.Name = "this tree"
	}
	if o.Baseline.Name == "" {
		o.Baseline.Name = "baseline"
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

// Shapes of a comparison, in the order they run within a round.
const (
	ShRounds    = "rounds"
	ShRoutedSeq = "routed-seq"
	ShDirectSeq = "direct-seq"
	ShGets      = "gets"
	ShConnect   = "connect"
)

// CompareResult is everything the comparison report is written from.
type CompareResult struct {
	Options   CompareOptions
	Started   time.Time
	Finished  time.Time
	LoadStart [3]float64
	LoadEnd   [3]float64
	Floor     *ScenarioResult
	// This and Baseline hold the runs of every shape, by shape id; run i
	// of one build ran next to run i of the other.
	This, Baseline map[string]*ScenarioResult
	// Profiles lists the CPU profiles written to ProfileDir.
	Profiles   []string
	ProfileErr string
}

func (c *CompareResult) shape(build map[string]*ScenarioResult, id string) *ScenarioResult {
	if s := build[id]; s != nil {
		return s
	}
	return &ScenarioResult{ID: id}
}

type shape struct {
	id  string
	run func(m *matrix, ctx context.Context) (Run, error)
}

// RunCompare runs every shape against both builds, Runs times: in every
// round the floor once, then each shape against one build and right after
// against the other, the order alternating, every run against freshly
// started daemons. The load generators are the same for both builds.
func RunCompare(ctx context.Context, o CompareOptions) (*CompareResult, error) {
	o.defaults()
	for _, p := range []string{o.This.Network, o.This.Agent, o.Baseline.Network, o.Baseline.Agent, o.Load, o.Bench} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("benchmark binary: %w", err)
		}
	}
	mo := func(b Build) *matrix {
		m := &matrix{o: MatrixOptions{
			Bin:  Binaries{Network: b.Network, Ctl: b.Agent, Bench: o.Bench, Load: o.Load},
			Runs: o.Runs, RowFor: o.RowFor, Connects: o.Connects,
			Version: o.Version, Progress: o.Progress,
		}}
		m.o.defaults()
		return m
	}
	builds := []struct {
		b   Build
		m   *matrix
		out map[string]*ScenarioResult
	}{{o.This, mo(o.This), map[string]*ScenarioResult{}}, {o.Baseline, mo(o.Baseline), map[string]*ScenarioResult{}}}
	res := &CompareResult{Options: o, Started: time.Now(), LoadStart: LoadAverage(),
		Floor: &ScenarioResult{ID: ScFloor}, This: builds[0].out, Baseline: builds[1].out}
	shapes := []shape{
		{ShRounds, func(m *matrix, ctx context.Context) (Run, error) { return m.rounds(ctx, o.Containers, o.Rounds) }},
		{ShRoutedSeq, func(m *matrix, ctx context.Context) (Run, error) { return m.hulyctlBench(1, 1, "routed")(ctx) }},
		{ShDirectSeq, func(m *matrix, ctx context.Context) (Run, error) { return m.hulyctlBench(1, 1, "direct")(ctx) }},
		{ShGets, func(m *matrix, ctx context.Context) (Run, error) { return m.gets(ctx, o.Gets) }},
		{ShConnect, func(m *matrix, ctx context.Context) (Run, error) { return m.connect(ctx) }},
	}
	record := func(into *ScenarioResult, load float64, r Run, err error) {
		if err != nil {
			r.Error = oneLine(err.Error())
			fmt.Fprintf(o.Progress, "  failed: %s\n", r.Error)
		}
		if r.Metrics == nil {
			r.Metrics = map[string]float64{}
		}
		r.Metrics["load1"] = load
		into.Runs = append(into.Runs, r)
	}
	for round := 1; round <= o.Runs; round++ {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		load := LoadAverage()[0]
		fmt.Fprintf(o.Progress, "run %d/%d: floor (load %.2f) …\n", round, o.Runs, load)
		r, err := builds[0].m.floor(ctx)
		record(res.Floor, load, r, err)
		for i, sh := range shapes {
			order := []int{0, 1}
			if (round+i)%2 == 0 {
				order = []int{1, 0}
			}
			for _, k := range order {
				if err := ctx.Err(); err != nil {
					return res, err
				}
				bd := builds[k]
				load := LoadAverage()[0]
				fmt.Fprintf(o.Progress, "run %d/%d: %s, %s (load %.2f) …\n", round, o.Runs, sh.id, bd.b.Name, load)
				s := bd.out[sh.id]
				if s == nil {
					s = &ScenarioResult{ID: sh.id}
					bd.out[sh.id] = s
				}
				r, err := sh.run(bd.m, ctx)
				record(s, load, r, err)
			}
		}
	}
	if o.ProfileDir != "" && ctx.Err() == nil {
		for _, bd := range builds {
			fmt.Fprintf(o.Progress, "profile: %s, rounds …\n", bd.b.Name)
			files, err := bd.m.profileRounds(ctx, o.ProfileDir, fileSafe(bd.b.Name), o.Containers, o.Rounds)
			res.Profiles = append(res.Profiles, files...)
			if err != nil && res.ProfileErr == "" {
				res.ProfileErr = oneLine(err.Error())
				fmt.Fprintf(o.Progress, "  profile failed: %s\n", res.ProfileErr)
			}
		}
	}
	res.Finished = time.Now()
	res.LoadEnd = LoadAverage()
	return res, ctx.Err()
}

func fileSafe(s string) string {
	b := []byte(s)
	for i, c := range b {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' && c != '.' {
			b[i] = '-'
		}
	}
	return string(b)
}

// rounds runs `huly-bench rounds` against a fresh network with one agent.
func (m *matrix) rounds(ctx context.Context, containers, rounds int) (Run, error) {
	env, err := m.startNetwork(ctx, 1, false)
	if err != nil {
		return Run{}, err
	}
	defer env.stop()
	return env.measured(func(r *Run) (float64, error) {
		var rr RoundsResult
		if err := runJSON(ctx, 5*time.Minute, &rr, m.o.Bin.Bench, m.roundsArgs(env.addr, containers, rounds, "")...); err != nil {
			return 0, err
		}
		r.Detail = rr
		r.Metrics["rps"] = rr.RequestsPerSecond
		r.Metrics["round_p50_ms"] = rr.Round.P50MS
		r.Metrics["round_p99_ms"] = rr.Round.P99MS
		r.Metrics["p50_ms"] = rr.Request.P50MS
		r.Metrics["p99_ms"] = rr.Request.P99MS
		r.Metrics["errors"] = float64(rr.Errors)
		r.Metrics["get_s"] = rr.GetSeconds
		if rr.Errors > 0 {
			return float64(rr.Requests), fmt.Errorf("%d errors, first: %s", rr.Errors, rr.FirstError)
		}
		return float64(rr.Requests), nil
	})
}

func (m *matrix) roundsArgs(addr string, containers, rounds int, cpuprofile string) []string {
	args := []string{"rounds", "--network", addr, "--containers", strconv.Itoa(containers), "--rounds", strconv.Itoa(rounds)}
	if cpuprofile != "" {
		args = append(args, "--cpuprofile", cpuprofile)
	}
	return args
}

// gets times n sequential gets of new containers (hulyctl bench with one
// round of requests after them).
func (m *matrix) gets(ctx context.Context, n int) (Run, error) {
	env, err := m.startNetwork(ctx, 1, false)
	if err != nil {
		return Run{}, err
	}
	defer env.stop()
	return env.measured(func(r *Run) (float64, error) {
		var rep hulyctlReport
		args := []string{"--network", env.addr, "--json", "--timeout", "10s", "bench",
			"--containers", strconv.Itoa(n), "--parallel", "100", "--rounds", "1"}
		if err := runJSON(ctx, 5*time.Minute, &rep, m.o.Bin.load(), args...); err != nil {
			return 0, err
		}
		r.Detail = rep
		r.Metrics["get_s"] = rep.GetSeconds
		r.Metrics["get_mean_ms"] = roundTo(rep.GetSeconds/float64(n)*1000, 4)
		r.Metrics["errors"] = float64(rep.Errors)
		if rep.Errors > 0 {
			return float64(n), fmt.Errorf("%d errors, first: %s", rep.Errors, rep.FirstError)
		}
		return float64(n), nil
	})
}

// profileRounds runs the rounds shape once more with the CPU profiles of
// the load generator (huly-bench rounds --cpuprofile) and the server (its
// pprof listener), 3 s of rounds.
func (m *matrix) profileRounds(ctx context.Context, dir, name string, containers, rounds int) ([]string, error) {
	env, err := m.startNetwork(ctx, 1, true)
	if err != nil {
		return nil, err
	}
	defer env.stop()
	if env.pprof == "" {
		return nil, fmt.Errorf("the server did not say where it serves pprof")
	}
	clientFile := dir + "/" + name + "-client-cpu.pprof"
	serverFile := dir + "/" + name + "-server-cpu.pprof"
	profSecs := 3
	done := make(chan error, 1)
	go func() {
		var rr RoundsResult
		done <- runJSON(ctx, 5*time.Minute, &rr, m.o.Bin.Bench, append(m.roundsArgs(env.addr, containers, rounds, clientFile), "--for", (time.Duration(profSecs)*time.Second+time.Second).String())...)
	}()
	perr := fetchProfile(ctx, "http://"+env.pprof+"/debug/pprof/profile?seconds="+strconv.Itoa(profSecs), serverFile, time.Minute)
	berr := <-done
	files := []string{}
	if perr == nil {
		files = append(files, serverFile)
	}
	if berr == nil {
		files = append(files, clientFile)
	}
	if perr != nil {
		return files, perr
	}
	return files, berr
}
