package agentd

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/agent/runtime"
)

// containersCollector reads the runtimes' registry once per scrape.
type containersCollector struct {
	reg     *runtime.Registry
	a       *agent.Agent
	byState *prometheus.Desc
	clients *prometheus.Desc
	refused *prometheus.Desc
}

func (c *containersCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.byState
	ch <- c.clients
	ch <- c.refused
}

func (c *containersCollector) Collect(ch chan<- prometheus.Metric) {
	type key struct{ kind, state string }
	counts := map[key]int{}
	for _, s := range c.reg.All() {
		counts[key{s.Kind(), string(s.State())}]++
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.byState, prometheus.GaugeValue, float64(n), k.kind, k.state)
	}
	ch <- prometheus.MustNewConstMetric(c.clients, prometheus.GaugeValue, float64(c.a.EndpointClients()))
	ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(c.a.EndpointRefusals()))
}

func newContainersCollector(reg *runtime.Registry, a *agent.Agent) *containersCollector {
	return &containersCollector{
		reg: reg, a: a,
		byState: prometheus.NewDesc("huly_agent_containers", "Containers of the agent's runtimes by kind and state.", []string{"kind", "state"}, nil),
		clients: prometheus.NewDesc("huly_agent_endpoint_clients", "Client sessions on the agent's endpoint.", nil, nil),
		refused: prometheus.NewDesc("huly_agent_endpoint_refusals_total", "Handshakes and requests the agent's CURVE endpoint refused because the network had not vouched for the client key (security on).", nil, nil),
	}
}
