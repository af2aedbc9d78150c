package bench

import (
	"fmt"
	"io"
	"runtime"
	"strings"
)

// compareRow is one line of the comparison table.
type compareRow struct {
	title, shape, metric string
	// higherBetter: req/s; otherwise a time or a size.
	higherBetter bool
	// floorMetric, when set, relates the value to the floor's of the
	// same run (floor ÷ value for times, value ÷ floor for req/s).
	floorMetric string
	// goal on this ÷ baseline, when the row has one.
	goal   string
	goalOK func(ratio float64) bool
}

func compareRows(o CompareOptions) []compareRow {
	return []compareRow{
		{fmt.Sprintf("Routed, rounds of %d parallel over %d containers, req/s", o.Containers, o.Containers), ShRounds, "rps", true, "rps", "≥ 1.6", func(r float64) bool { return r >= 1.6 }},
		{"Rounds: round time p50, ms", ShRounds, "round_p50_ms", false, "", "", nil},
		{"Rounds: round time p99, ms", ShRounds, "round_p99_ms", false, "", "", nil},
		{"Routed sequential p50, ms", ShRoutedSeq, "p50_ms", false, "p50_ms", "", nil},
		{"Routed sequential p99, ms", ShRoutedSeq, "p99_ms", false, "p50_ms", "", nil},
		{"Direct sequential p50, ms", ShDirectSeq, "p50_ms", false, "p50_ms", "", nil},
		{fmt.Sprintf("%s sequential gets, s", group(fmt.Sprint(o.Gets))), ShGets, "get_s", false, "", "≤ 0.4", func(r float64) bool { return r <= 0.4 }},
		{fmt.Sprintf("Connect, average of %s clients, ms", group(fmt.Sprint(o.Connects))), ShConnect, "connect_mean_ms", false, "connect_mean_ms", "≤ 0.47", func(r float64) bool { return r <= 0.47 }},
		{"Server VmRSS idle, MiB", ShConnect, "rss_idle_mb", false, "", "", nil},
		{fmt.Sprintf("Server VmRSS with %s clients, MiB", group(fmt.Sprint(o.Connects))), ShConnect, "rss_clients_mb", false, "", "", nil},
	}
}

// pairedRatios divides run i of this build by run i of the baseline (runs
// that ran next to each other), skipping failed runs.
func pairedRatios(this, base *ScenarioResult, metric string) Spread {
	var v []float64
	for i := 0; i < len(this.Runs) && i < len(base.Runs); i++ {
		a, b := this.Runs[i], base.Runs[i]
		if a.Error != "" || b.Error != "" {
			continue
		}
		x, ok1 := a.Metrics[metric]
		y, ok2 := b.Metrics[metric]
		if ok1 && ok2 && y != 0 {
			v = append(v, x/y)
		}
	}
	return SpreadOf(v)
}

// floorRatio relates a build's median to the floor's of the same run:
// value ÷ floor for throughput, floor ÷ value for times (1.00: as fast as
// plain TCP).
func floorRatio(c *CompareResult, s *ScenarioResult, r compareRow) string {
	if r.floorMetric == "" {
		return "—"
	}
	v, f := s.Metric(r.metric), c.Floor.Metric(r.floorMetric)
	if v.N == 0 || f.N == 0 || v.Median == 0 || f.Median == 0 {
		return "—"
	}
	if r.higherBetter {
		return fmt.Sprintf("%.2f", v.Median/f.Median)
	}
	return fmt.Sprintf("%.2f", f.Median/v.Median)
}

func ratioText(s Spread) string {
	if s.N == 0 {
		return "—"
	}
	if s.N == 1 || s.Min == s.Max {
		return fmt.Sprintf("%.2f", s.Median)
	}
	return fmt.Sprintf("%.2f (%.2f–%.2f)", s.Median, s.Min, s.Max)
}

// WriteCompareReport writes the Markdown report of a comparison.
func WriteCompareReport(w io.Writer, c *CompareResult) error {
	var b strings.Builder
	o := c.Options
	busy := c.LoadStart[0] > float64(runtime.NumCPU())/2
	fmt.Fprintf(&b, "# huly-net benchmark: %s against %s\n\n", o.This.Name, o.Baseline.Name)
	fmt.Fprintf(&b, "| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| Build | %s, against %s |\n", orDash(o.Version), o.Baseline.Name)
	fmt.Fprintf(&b, "| Started | %s (%s) |\n", c.Started.UTC().Format("2006-01-02 15:04:05 UTC"), c.Finished.Sub(c.Started).Round(1e9))
	fmt.Fprintf(&b, "| Machine | %s, %d logical CPUs, Linux %s |\n", cpuModel(), runtime.NumCPU(), kernel())
	fmt.Fprintf(&b, "| Load average (1, 5, 15 min) | start %s, end %s |\n", loadText(c.LoadStart), loadText(c.LoadEnd))
	fmt.Fprintf(&b, "| Runs | %d per shape and build, interleaved (the two builds one right after the other, the order alternating); fresh daemons every run; one load generator for both |\n\n", o.Runs)
	if busy {
		fmt.Fprintf(&b, "**The machine was busy when the run started (1-minute load %.2f on %d CPUs): the ratios are noisy; do not judge goals from this run.**\n\n", c.LoadStart[0], runtime.NumCPU())
	}
	b.WriteString("*this ÷ baseline* divides each run of this build by the baseline's run next to it (median, min–max over the pairs): " +
		"above 1 is more requests per second, below 1 is less time or memory. " +
		"*× floor* relates a build's median to the plain Go TCP echo measured in the same run: req/s ÷ the floor's with 100 connections, " +
		"or the floor's time ÷ the build's (sequential p50; TCP dial + one round trip for connects); 1.00 would be as fast as plain TCP.\n\n")

	fmt.Fprintf(&b, "| Measure | this ÷ baseline | goal | this × floor | baseline × floor | %s | %s |\n|---|---|---|---|---|---|---|\n", o.This.Name, o.Baseline.Name)
	for _, r := range compareRows(o) {
		this, base := c.shape(c.This, r.shape), c.shape(c.Baseline, r.shape)
		ratio := pairedRatios(this, base, r.metric)
		goal := "—"
		if r.goal != "" {
			goal = r.goal
			if ratio.N > 0 {
				switch {
				case busy:
					goal += " (not judged: busy)"
				case r.goalOK(ratio.Median):
					goal += " met"
				default:
					goal += " missed"
				}
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", r.title, ratioText(ratio), goal,
			floorRatio(c, this, r), floorRatio(c, base, r), spreadText(this.Metric(r.metric)), spreadText(base.Metric(r.metric)))
	}
	f := c.Floor
	fmt.Fprintf(&b, "\nThe floor in this run: %s req/s with 100 connections, sequential p50 %s ms, dial + round trip + close %s ms.\n\n",
		spreadText(f.Metric("rps")), spreadText(f.Metric("p50_ms")), spreadText(f.Metric("connect_mean_ms")))

	fmt.Fprintf(&b, "## Server CPU per request (µs) and load\n\n| Shape | %s | %s | load (1 min) |\n|---|---|---|---|\n", o.This.Name, o.Baseline.Name)
	for _, id := range []string{ShRounds, ShRoutedSeq, ShGets, ShConnect} {
		this, base := c.shape(c.This, id), c.shape(c.Baseline, id)
		loads := append(append([]Run{}, this.Runs...), base.Runs...)
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", id, spreadText(this.Metric("server_cpu_us_per_req")), spreadText(base.Metric("server_cpu_us_per_req")),
			spreadText((&ScenarioResult{Runs: loads}).Metric("load1")))
	}
	b.WriteString("\n")

	var failed []string
	for _, s := range []*ScenarioResult{f} {
		for _, e := range s.Failures() {
			failed = append(failed, "- floor: "+e)
		}
	}
	for _, bd := range []struct {
		name string
		m    map[string]*ScenarioResult
	}{{o.This.Name, c.This}, {o.Baseline.Name, c.Baseline}} {
		for _, id := range []string{ShRounds, ShRoutedSeq, ShDirectSeq, ShGets, ShConnect} {
			for _, e := range c.shape(bd.m, id).Failures() {
				failed = append(failed, fmt.Sprintf("- %s, %s: %s", bd.name, id, e))
			}
		}
	}
	if len(failed) > 0 {
		b.WriteString("## Failed runs\n\n" + strings.Join(failed, "\n") + "\n\n")
	}
	if len(c.Profiles) > 0 || c.ProfileErr != "" {
		b.WriteString("## CPU profiles (one extra rounds run of each build)\n\n")
		for _, p := range c.Profiles {
			fmt.Fprintf(&b, "- %s\n", p)
		}
		if c.ProfileErr != "" {
			fmt.Fprintf(&b, "- not all taken: %s\n", c.ProfileErr)
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
