package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/agent/runtime"
)

// containersCollector reads the runtimes' registry once per scrape.
type containersCollector struct {
	reg     *runtime.Registry
	a       *agent.Agent
	byState *prometheus.Desc
	clients *prometheus.Desc
}

func (c *containersCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.byState
	ch <- c.clients
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
}

// serveMetrics serves /metrics on addr (nothing when addr is empty); the
// returned function stops it.
func serveMetrics(addr string, reg *runtime.Registry, a *agent.Agent, log logrus.FieldLogger) (func(), error) {
	if addr == "" {
		return func() {}, nil
	}
	pr := prometheus.NewRegistry()
	pr.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	pr.MustRegister(&containersCollector{
		reg: reg, a: a,
		byState: prometheus.NewDesc("huly_agent_containers", "Containers of the agent's runtimes by kind and state.", []string{"kind", "state"}, nil),
		clients: prometheus.NewDesc("huly_agent_endpoint_clients", "Client sessions on the agent's endpoint.", nil, nil),
	})
	pr.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "huly_agent_endpoint_refusals_total",
		Help: "Handshakes and requests the agent's CURVE endpoint refused because the network had not vouched for the client key (security on).",
	}, func() float64 { return float64(a.EndpointRefusals()) }))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(pr, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.WithError(err).Error("metrics server stopped")
		}
	}()
	log.WithField("metrics", ln.Addr().String()).Info("serving metrics")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = srv.Shutdown(ctx)
		cancel()
		<-done
	}, nil
}
