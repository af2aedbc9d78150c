package networkd

import (
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/huly-net/huly-net/go/network"
	"github.com/huly-net/huly-net/go/server"
)

// PerKindLimits builds the network's limits per kind from max_*_per_kind and
// kind_limits.
func (c *Config) PerKindLimits() (network.KindLimits, error) {
	l := network.KindLimits{Default: network.KindLimit{
		MaxContainers: c.MaxContainersPerKind,
		MaxRequests:   c.MaxRequestsPerKind,
	}}
	for _, s := range strings.Split(c.KindLimits, ",") {
		if strings.TrimSpace(s) == "" {
			continue
		}
		kind, kl, err := network.ParseKindLimit(s)
		if err != nil {
			return network.KindLimits{}, err
		}
		if l.PerKind == nil {
			l.PerKind = map[string]network.KindLimit{}
		}
		if _, dup := l.PerKind[kind]; dup {
			return network.KindLimits{}, fmt.Errorf("kind %s is given twice", kind)
		}
		l.PerKind[kind] = kl
	}
	return l, nil
}

// mustKindLimits is PerKindLimits of a validated configuration.
func (c *Config) mustKindLimits() network.KindLimits {
	l, err := c.PerKindLimits()
	if err != nil {
		panic("kind limits of an unvalidated configuration: " + err.Error())
	}
	return l
}

// kindCollector exports the per-kind counts and limits, read at scrape
// time.
type kindCollector struct {
	srv   *server.Server
	descs []kindMetric
}

type kindMetric struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	value func(network.KindStat) float64
}

func newKindCollector(srv *server.Server) *kindCollector {
	d := func(name, help string, typ prometheus.ValueType, v func(network.KindStat) float64) kindMetric {
		return kindMetric{prometheus.NewDesc(name, help, []string{"kind"}, nil), typ, v}
	}
	return &kindCollector{srv: srv, descs: []kindMetric{
		d("huly_network_kind_agents", "Agents offering the kind.", prometheus.GaugeValue, func(s network.KindStat) float64 { return float64(s.Agents) }),
		d("huly_network_kind_containers", "Containers of the kind.", prometheus.GaugeValue, func(s network.KindStat) float64 { return float64(s.Containers) }),
		d("huly_network_kind_max_containers", "Limit of containers of the kind (0: none).", prometheus.GaugeValue, func(s network.KindStat) float64 { return float64(s.MaxContainers) }),
		d("huly_network_kind_requests_in_flight", "Routed requests to the kind in flight (counted while a request limit is set).", prometheus.GaugeValue, func(s network.KindStat) float64 { return float64(s.Requests) }),
		d("huly_network_kind_max_requests", "Limit of routed requests in flight to the kind (0: none).", prometheus.GaugeValue, func(s network.KindStat) float64 { return float64(s.MaxRequests) }),
		d("huly_network_kind_rejected_gets_total", "Gets refused: the kind was at its container limit.", prometheus.CounterValue, func(s network.KindStat) float64 { return float64(s.RejectedGets) }),
		d("huly_network_kind_rejected_requests_total", "Routed requests refused: the kind was at its request limit.", prometheus.CounterValue, func(s network.KindStat) float64 { return float64(s.RejectedRequests) }),
	}}
}

func (c *kindCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d.desc
	}
}

func (c *kindCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.srv.Network().KindStats() {
		for _, d := range c.descs {
			ch <- prometheus.MustNewConstMetric(d.desc, d.typ, d.value(st), st.Kind)
		}
	}
}
