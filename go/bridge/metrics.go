package bridge

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports a Bridge's Stats as Prometheus metrics. Values are read
// at scrape time, so serving connections costs no metric updates.
type Collector struct {
	b *Bridge

	active, total, bytes, dialErrors, dialFailures, rejected, idleClosed *prometheus.Desc
	targetUp, targetSince                                                *prometheus.Desc
}

// NewCollector returns a collector for b; register it with a
// prometheus.Registry.
func NewCollector(b *Bridge) *Collector {
	fl := []string{"forward"}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("huly_bridge_"+name, help, append(fl, labels...), nil)
	}
	return &Collector{
		b:            b,
		active:       d("connections_active", "Connections being forwarded now."),
		total:        d("connections_total", "Connections accepted and forwarded (rejected ones excluded)."),
		bytes:        d("bytes_total", "Bytes forwarded; direction is client_to_target or target_to_client.", "direction"),
		dialErrors:   d("dial_errors_total", "Failed attempts to connect to the target, retries included."),
		dialFailures: d("dial_failures_total", "Client connections closed because every dial attempt failed."),
		rejected:     d("rejected_connections_total", "Connections closed at once because max_connections was reached."),
		idleClosed:   d("idle_closed_connections_total", "Connections closed by the idle timeout."),
		targetUp:     d("target_up", "1 if the last dial to the target succeeded, 0 if it failed; absent before the first dial."),
		targetSince:  d("target_state_since_seconds", "Unix time at which target_up last changed."),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.active, c.total, c.bytes, c.dialErrors, c.dialFailures, c.rejected, c.idleClosed, c.targetUp, c.targetSince} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.b.Stats() {
		n := s.Name
		ch <- prometheus.MustNewConstMetric(c.active, prometheus.GaugeValue, float64(s.ActiveConnections), n)
		ch <- prometheus.MustNewConstMetric(c.total, prometheus.CounterValue, float64(s.TotalConnections), n)
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(s.BytesUp), n, "client_to_target")
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(s.BytesDown), n, "target_to_client")
		ch <- prometheus.MustNewConstMetric(c.dialErrors, prometheus.CounterValue, float64(s.DialErrors), n)
		ch <- prometheus.MustNewConstMetric(c.dialFailures, prometheus.CounterValue, float64(s.DialFailures), n)
		ch <- prometheus.MustNewConstMetric(c.rejected, prometheus.CounterValue, float64(s.Rejected), n)
		ch <- prometheus.MustNewConstMetric(c.idleClosed, prometheus.CounterValue, float64(s.IdleClosed), n)
		if s.TargetState != TargetUnknown {
			up := 0.0
			if s.TargetState == TargetReachable {
				up = 1
			}
			ch <- prometheus.MustNewConstMetric(c.targetUp, prometheus.GaugeValue, up, n)
			ch <- prometheus.MustNewConstMetric(c.targetSince, prometheus.GaugeValue, float64(s.TargetSince.UnixNano())/1e9, n)
		}
	}
}
