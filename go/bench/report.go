package bench

import (
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strings"
)

// Target is one of the performance goals (issue "Benchmarks and
// performance"), with the TypeScript network 0.7's figure measured on the
// same kind of machine, for comparison.
type Target struct {
	Name       string
	Scenario   string
	Metric     string
	Unit       string
	Limit      float64
	AtLeast    bool // true: the value must be >= Limit; false: <= Limit
	TypeScript string
	// Judged is false when the run was smaller than the goal's setup
	// (huly-bench matrix with fewer connects, clients or containers).
	Judged bool
}

// Targets are the goals the report checks, named after the sizes o ran.
func Targets(o MatrixOptions) []Target {
	o.defaults()
	full := o.Connects >= 1000
	scaleFull := o.ScaleContainers >= 10000 && o.ScaleAgents >= 10 && o.ScaleClients >= 1000
	return []Target{
		{"Routed, 100 parallel over 100 containers", ScRoutedN100, "rps", "req/s", 25000, true, "≈4,800 (in-flight limit lifted)", true},
		{"Sequential routed latency p50", ScRoutedSeq, "p50_ms", "ms", 0.15, false, "0.50", true},
		{"Sequential routed latency p99", ScRoutedSeq, "p99_ms", "ms", 1, false, "4.1", true},
		{"Direct connection latency p50", ScDirectSeq, "p50_ms", "ms", 0.08, false, "0.28", true},
		{"1,000 gets one after another", ScRoutedN1000, "get_s", "s", 0.2, false, "1.6", true},
		{fmt.Sprintf("Client connect, average of %s", group(fmt.Sprint(o.Connects))), ScConnect, "connect_mean_ms", "ms", 0.3, false, "1.43", full},
		{"Server RSS idle", "", "rss_idle_mb", "MiB", 15, false, "52 MB", true},
		{fmt.Sprintf("Server RSS with %s clients (peak)", group(fmt.Sprint(o.Connects))), ScConnect, "hwm_mb", "MiB", 40, false, "90 MB", full},
		{scaleTitle(o) + ": errors", ScScale, "errors", "", 0, false, "—", scaleFull},
	}
}

func scaleTitle(o MatrixOptions) string {
	return fmt.Sprintf("%s containers / %d agents / %s clients", group(fmt.Sprint(o.ScaleContainers)), o.ScaleAgents, group(fmt.Sprint(o.ScaleClients)))
}

// networkScenarios start a network server; their idle memory is pooled.
var networkScenarios = []string{ScRoutedN1, ScRoutedN100, ScRoutedN1000, ScRoutedSeq, ScDirectSeq, ScConnect, ScScale}

// pooled is a metric over every run of the given scenarios.
func (m *MatrixResult) pooled(metric string, ids []string) Spread {
	var v []float64
	for _, id := range ids {
		for _, r := range m.Scenario(id).Runs {
			if x, ok := r.Metrics[metric]; ok && (r.Error == "" || metric == "rss_idle_mb") {
				v = append(v, x)
			}
		}
	}
	return SpreadOf(v)
}

// TargetValue is the measured spread of a target's metric.
func (m *MatrixResult) TargetValue(t Target) Spread {
	if t.Scenario == "" {
		return m.pooled(t.Metric, networkScenarios)
	}
	return m.Scenario(t.Scenario).Metric(t.Metric)
}

// Met reports whether the median meets the target; false without data,
// and false when any run of the scenario failed.
func (m *MatrixResult) Met(t Target) bool {
	s := m.TargetValue(t)
	if s.N == 0 {
		return false
	}
	if t.Scenario != "" && len(m.Scenario(t.Scenario).Failures()) > 0 {
		return false
	}
	if t.AtLeast {
		return s.Median >= t.Limit
	}
	return s.Median <= t.Limit
}

// rowDef is one line of the main table.
type rowDef struct {
	title string
	id    string
	// ratio: how the row compares with the floor, >1 faster than it.
	ratio func(m *MatrixResult) (float64, bool)
}

func ratioOf(m *MatrixResult, id, metric, floorMetric string, higherBetter bool) (float64, bool) {
	v := m.Scenario(id).Metric(metric)
	f := m.Scenario(ScFloor).Metric(floorMetric)
	if v.N == 0 || f.N == 0 || v.Median == 0 || f.Median == 0 {
		return 0, false
	}
	if higherBetter {
		return v.Median / f.Median, true
	}
	return f.Median / v.Median, true
}

func throughputRatio(id string) func(*MatrixResult) (float64, bool) {
	return func(m *MatrixResult) (float64, bool) { return ratioOf(m, id, "rps", "rps", true) }
}

func latencyRatio(id string) func(*MatrixResult) (float64, bool) {
	return func(m *MatrixResult) (float64, bool) { return ratioOf(m, id, "p50_ms", "p50_ms", false) }
}

func rows(o MatrixOptions) []rowDef {
	return []rowDef{
		{"Floor: plain Go TCP echo, 100 connections", ScFloor, func(m *MatrixResult) (float64, bool) { return 1, m.Scenario(ScFloor).Metric("rps").N > 0 }},
		{"Routed, N=1, 100 parallel", ScRoutedN1, throughputRatio(ScRoutedN1)},
		{"Routed, N=100, 100 parallel", ScRoutedN100, throughputRatio(ScRoutedN100)},
		{"Routed, N=1000, 100 parallel", ScRoutedN1000, throughputRatio(ScRoutedN1000)},
		{"Routed, sequential", ScRoutedSeq, latencyRatio(ScRoutedSeq)},
		{"Direct connection, sequential", ScDirectSeq, latencyRatio(ScDirectSeq)},
		{scaleTitle(o), ScScale, throughputRatio(ScScale)},
	}
}

// WriteReport writes the Markdown report.
func WriteReport(w io.Writer, m *MatrixResult) error {
	var b strings.Builder
	o := m.Options
	floorP50 := m.Scenario(ScFloor).Metric("p50_ms")

	fmt.Fprintf(&b, "# huly-net benchmark report\n\n")
	fmt.Fprintf(&b, "| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| Build | %s |\n", orDash(o.Version))
	fmt.Fprintf(&b, "| Started | %s (%s) |\n", m.Started.UTC().Format("2006-01-02 15:04:05 UTC"), m.Finished.Sub(m.Started).Round(1e9))
	fmt.Fprintf(&b, "| Machine | %s, %d logical CPUs, Linux %s |\n", cpuModel(), runtime.NumCPU(), kernel())
	fmt.Fprintf(&b, "| Tools | %s |\n", runtime.Version())
	fmt.Fprintf(&b, "| Load average (1, 5, 15 min) | start %s, end %s |\n", loadText(m.LoadStart), loadText(m.LoadEnd))
	fmt.Fprintf(&b, "| Runs | %d per row, interleaved; rows of %s; each run against a fresh server |\n\n", o.Runs, o.RowFor)
	fmt.Fprintf(&b, "Values are medians over the runs with the minimum–maximum in parentheses. ")
	fmt.Fprintf(&b, "*× floor* compares a row with the plain Go TCP echo measured in the same run (the floor): ")
	fmt.Fprintf(&b, "requests per second divided by the floor's with 100 connections, or the floor's sequential p50 divided by the row's p50; 1.00 would be as fast as plain TCP. ")
	fmt.Fprintf(&b, "The load average counts the benchmark's own processes too; a 1-minute load well above the CPU count at the start means other work shared the machine.\n\n")

	// Targets.
	fmt.Fprintf(&b, "## Targets\n\n| Target | Goal | Measured | × floor | TypeScript 0.7 | |\n|---|---|---|---|---|---|\n")
	for _, t := range Targets(o) {
		s := m.TargetValue(t)
		goal := "≤ " + num(t.Limit)
		if t.AtLeast {
			goal = "≥ " + num(t.Limit)
		}
		if t.Unit != "" {
			goal += " " + t.Unit
		}
		status := "missed"
		switch {
		case s.N == 0:
			status = "not measured"
		case !t.Judged:
			status = "not judged (smaller run)"
		case m.Met(t):
			status = "met"
		}
		ratio := "—"
		switch t.Metric {
		case "p50_ms", "p99_ms":
			if f := m.Scenario(ScFloor).Metric(t.Metric); f.N > 0 && s.Median > 0 {
				ratio = fmt.Sprintf("%.2f", f.Median/s.Median)
			}
		case "rps":
			if r, ok := throughputRatio(t.Scenario)(m); ok {
				ratio = fmt.Sprintf("%.2f", r)
			}
		case "connect_mean_ms":
			if f := m.Scenario(ScFloor).Metric("connect_mean_ms"); f.N > 0 && s.Median > 0 {
				ratio = fmt.Sprintf("%.2f", f.Median/s.Median)
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", t.Name, goal, spreadText(s), ratio, t.TypeScript, status)
	}
	b.WriteString("\nThe TypeScript figures are those of the issue (same machine kind), not measured by this run.\n\n")

	// Rows.
	fmt.Fprintf(&b, "## Requests\n\n| Row | req/s | p50 ms | p95 ms | p99 ms | max ms | errors | × floor | server CPU µs/req | load (1 min) |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows(o) {
		sc := m.Scenario(r.id)
		ratio := "—"
		if v, ok := r.ratio(m); ok {
			ratio = fmt.Sprintf("%.2f", v)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.title,
			spreadText(sc.Metric("rps")), spreadText(sc.Metric("p50_ms")), spreadText(sc.Metric("p95_ms")),
			spreadText(sc.Metric("p99_ms")), spreadText(sc.Metric("max_ms")), spreadText(sc.Metric("errors")),
			ratio, spreadText(sc.Metric("server_cpu_us_per_req")), spreadText(sc.Metric("load1")))
	}
	b.WriteString("\nThe floor's latencies are of one connection doing round trips one after another; its req/s is with 100 connections. " +
		"Server CPU per request is the server process's user+system time over the requests (and, for N=1000, its gets).\n\n")

	// Gets, connects, scale.
	fmt.Fprintf(&b, "## Gets, connects and scale\n\n| Measure | Value | × floor |\n|---|---|---|\n")
	gets := m.Scenario(ScRoutedN1000).Metric("get_s")
	getRatio := "—"
	if gets.N > 0 && floorP50.N > 0 && gets.Median > 0 {
		// 1,000 gets: the total in seconds is the mean per get in ms.
		getRatio = fmt.Sprintf("%.2f (mean get vs. floor p50)", floorP50.Median/gets.Median)
	}
	fmt.Fprintf(&b, "| 1,000 gets one after another, s | %s | %s |\n", spreadText(gets), getRatio)
	conn := m.Scenario(ScConnect)
	connRatio := "—"
	if f := m.Scenario(ScFloor).Metric("connect_mean_ms"); f.N > 0 {
		if c := conn.Metric("connect_mean_ms"); c.N > 0 && c.Median > 0 {
			connRatio = fmt.Sprintf("%.2f (vs. TCP dial + one round trip)", f.Median/c.Median)
		}
	}
	fmt.Fprintf(&b, "| Client connect (dial to hello answered), mean ms of %d | %s | %s |\n", o.Connects, spreadText(conn.Metric("connect_mean_ms")), connRatio)
	fmt.Fprintf(&b, "| Client connect p50 / p99 ms | %s / %s | |\n", spreadText(conn.Metric("p50_ms")), spreadText(conn.Metric("p99_ms")))
	fmt.Fprintf(&b, "| Floor: TCP dial + one round trip + close, mean ms | %s | 1.00 |\n", spreadText(m.Scenario(ScFloor).Metric("connect_mean_ms")))
	sc := m.Scenario(ScScale)
	fmt.Fprintf(&b, "| Scale: %d clients connected (32 at a time), s | %s | |\n", o.ScaleClients, spreadText(sc.Metric("connect_s")))
	fmt.Fprintf(&b, "| Scale: %d gets (all clients at once), s | %s | |\n", o.ScaleContainers, spreadText(sc.Metric("get_s")))
	fmt.Fprintf(&b, "| Scale: agents holding the containers | %s | |\n", spreadText(sc.Metric("agents")))
	fmt.Fprintf(&b, "| Scale: containers per agent, fewest / most | %s / %s | |\n", spreadText(sc.Metric("per_agent_min")), spreadText(sc.Metric("per_agent_max")))
	fmt.Fprintf(&b, "| Scale: errors (connects + gets + requests) | %s | |\n\n", spreadText(sc.Metric("errors")))

	// Memory.
	fmt.Fprintf(&b, "## Server memory (MiB, from /proc/PID/status)\n\n| Row | VmRSS idle | VmHWM (peak) | VmRSS under load |\n|---|---|---|---|\n")
	for _, r := range []struct{ title, id, loaded string }{
		{"Routed, N=1, 100 parallel", ScRoutedN1, "rss_end_mb"},
		{"Routed, N=100, 100 parallel", ScRoutedN100, "rss_end_mb"},
		{"Routed, N=1000, 100 parallel", ScRoutedN1000, "rss_end_mb"},
		{"Routed, sequential", ScRoutedSeq, "rss_end_mb"},
		{"Direct, sequential (server idle)", ScDirectSeq, "rss_end_mb"},
		{group(fmt.Sprint(o.Connects)) + " clients connected", ScConnect, "rss_clients_mb"},
		{scaleTitle(o), ScScale, "rss_loaded_mb"},
	} {
		s := m.Scenario(r.id)
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.title, spreadText(s.Metric("rss_idle_mb")), spreadText(s.Metric("hwm_mb")), spreadText(s.Metric(r.loaded)))
	}
	b.WriteString("\nIdle is measured after the server started and its agents registered, before any client; the peak is VmHWM after the load; " +
		"under load is VmRSS at the end of the requests (with every client still connected).\n\n")

	// Failures.
	var failed []string
	for _, id := range append([]string{ScFloor}, networkScenarios...) {
		for _, f := range m.Scenario(id).Failures() {
			failed = append(failed, fmt.Sprintf("- %s: %s", id, f))
		}
	}
	if len(failed) > 0 {
		b.WriteString("## Failed runs\n\n" + strings.Join(failed, "\n") + "\n\n")
	}

	if m.ProfileTop != "" || m.ProfileErr != "" {
		fmt.Fprintf(&b, "## Server CPU profile, 100 parallel routed requests over 100 containers (%s)\n\n", o.ProfileFor)
		if m.ProfileErr != "" {
			fmt.Fprintf(&b, "Not available: %s\n\n", m.ProfileErr)
		}
		if m.ProfileTop != "" {
			fmt.Fprintf(&b, "```\n%s```\n\n", strings.TrimLeft(m.ProfileTop, "\n"))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func spreadText(s Spread) string {
	if s.N == 0 {
		return "—"
	}
	if s.N == 1 || s.Min == s.Max {
		return num(s.Median)
	}
	return fmt.Sprintf("%s (%s–%s)", num(s.Median), num(s.Min), num(s.Max))
}

// num prints a value with the precision its size deserves.
func num(v float64) string {
	a := math.Abs(v)
	switch {
	case v == math.Trunc(v) && a < 1e15:
		return group(fmt.Sprintf("%.0f", v))
	case a >= 1000:
		return group(fmt.Sprintf("%.0f", v))
	case a >= 100:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// group adds thousands separators to an integer's digits.
func group(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

func loadText(l [3]float64) string {
	return fmt.Sprintf("%.2f, %.2f, %.2f", l[0], l[1], l[2])
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}
