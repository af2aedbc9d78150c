// Package bench is huly-net's load generator and benchmark matrix: the
// plain-TCP floor every row is compared with, sequential client connects,
// many clients over many containers and agents, and the matrix that runs
// them with `hulyctl bench` against the real daemons and writes the
// Markdown report of `just bench`.
package bench

import (
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Latency summarises round-trip times, in milliseconds for JSON.
type Latency struct {
	Count  int     `json:"count"`
	MeanMS float64 `json:"mean_ms"`
	P50MS  float64 `json:"p50_ms"`
	P95MS  float64 `json:"p95_ms"`
	P99MS  float64 `json:"p99_ms"`
	MaxMS  float64 `json:"max_ms"`
}

// Summarize sorts lat in place and returns its nearest-rank percentiles.
func Summarize(lat []time.Duration) Latency {
	if len(lat) == 0 {
		return Latency{}
	}
	slices.Sort(lat)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	return Latency{
		Count:  len(lat),
		MeanMS: ms(sum / time.Duration(len(lat))),
		P50MS:  ms(Percentile(lat, 50)),
		P95MS:  ms(Percentile(lat, 95)),
		P99MS:  ms(Percentile(lat, 99)),
		MaxMS:  ms(lat[len(lat)-1]),
	}
}

// Percentile is the nearest-rank percentile p (0–100] of sorted durations.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank]
}

func ms(d time.Duration) float64 { return roundTo(float64(d.Nanoseconds())/1e6, 4) }

func roundTo(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// Spread is the median, minimum and maximum of one metric over runs.
type Spread struct {
	Median, Min, Max float64
	N                int
}

// SpreadOf summarises values; the median of an even count is the mean of
// the middle two.
func SpreadOf(values []float64) Spread {
	if len(values) == 0 {
		return Spread{}
	}
	v := slices.Clone(values)
	slices.Sort(v)
	mid := len(v) / 2
	med := v[mid]
	if len(v)%2 == 0 {
		med = (v[mid-1] + v[mid]) / 2
	}
	return Spread{Median: med, Min: v[0], Max: v[len(v)-1], N: len(v)}
}

// Memory is a process's resident memory from /proc/PID/status, in MiB.
type Memory struct {
	VmRSSMB float64 `json:"vm_rss_mb"`
	VmHWMMB float64 `json:"vm_hwm_mb"`
}

// ReadMemory reads VmRSS and VmHWM of a process.
func ReadMemory(pid int) (Memory, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return Memory{}, err
	}
	return parseStatus(string(b)), nil
}

func parseStatus(s string) Memory {
	var m Memory
	for _, line := range strings.Split(s, "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(val)
		if len(f) == 0 {
			continue
		}
		kb, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		switch key {
		case "VmRSS":
			m.VmRSSMB = roundTo(kb/1024, 2)
		case "VmHWM":
			m.VmHWMMB = roundTo(kb/1024, 2)
		}
	}
	return m
}

// LoadAverage is the 1-, 5- and 15-minute load average, or zeros where
// /proc/loadavg cannot be read.
func LoadAverage() [3]float64 {
	var out [3]float64
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return out
	}
	f := strings.Fields(string(b))
	for i := 0; i < 3 && i < len(f); i++ {
		out[i], _ = strconv.ParseFloat(f[i], 64)
	}
	return out
}
