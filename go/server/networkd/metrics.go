package networkd

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/huly-net/huly-net/go/server"
)

// statsCollector reads the server's counters once per scrape, so metrics
// cost nothing on the request path.
type statsCollector struct {
	srv   *server.Server
	descs map[string]*prometheus.Desc
}

type metricDef struct {
	name, help string
	typ        prometheus.ValueType
	value      func(server.Stats) float64
}

var metricDefs = []metricDef{
	{"huly_network_clients", "Clients connected (with a hello).", prometheus.GaugeValue, func(s server.Stats) float64 { return float64(s.RPC.Clients) }},
	{"huly_network_agents", "Registered agents.", prometheus.GaugeValue, func(s server.Stats) float64 { return float64(s.Network.Agents) }},
	{"huly_network_kinds", "Distinct container kinds offered.", prometheus.GaugeValue, func(s server.Stats) float64 { return float64(s.Network.Kinds) }},
	{"huly_network_containers", "Known containers.", prometheus.GaugeValue, func(s server.Stats) float64 { return float64(s.Network.Containers) }},
	{"huly_network_orphans", "Containers without references, waiting for the unused timeout.", prometheus.GaugeValue, func(s server.Stats) float64 { return float64(s.Network.Orphans) }},
	{"huly_network_references", "Container references held by clients.", prometheus.GaugeValue, func(s server.Stats) float64 { return float64(s.Network.References) }},
	{"huly_network_pending_starts", "Container starts in flight.", prometheus.GaugeValue, func(s server.Stats) float64 { return float64(s.Network.PendingStarts) }},
	{"huly_network_back_requests_in_flight", "Back-requests to agents awaiting an answer.", prometheus.GaugeValue, func(s server.Stats) float64 { return float64(s.RPC.CallsInFlight) }},
	{"huly_network_requests_total", "Requests handled.", prometheus.CounterValue, func(s server.Stats) float64 { return float64(s.RPC.Requests) }},
	{"huly_network_request_errors_total", "Requests answered with responseError by a handler.", prometheus.CounterValue, func(s server.Stats) float64 { return float64(s.RPC.HandlerErrors) }},
	{"huly_network_retries_total", "Requests answered with retry (unknown client or too many in flight).", prometheus.CounterValue, func(s server.Stats) float64 { return float64(s.RPC.Retries) }},
	{"huly_network_duplicate_requests_total", "Requests ignored because the same id was in flight.", prometheus.CounterValue, func(s server.Stats) float64 { return float64(s.RPC.Duplicates) }},
	{"huly_network_bad_messages_total", "Undecodable messages and bad request payloads.", prometheus.CounterValue, func(s server.Stats) float64 { return float64(s.RPC.BadMessages) }},
	{"huly_network_hellos_total", "Hello messages.", prometheus.CounterValue, func(s server.Stats) float64 { return float64(s.RPC.Hellos) }},
	{"huly_network_client_timeouts_total", "Clients dropped for silence.", prometheus.CounterValue, func(s server.Stats) float64 { return float64(s.RPC.Timeouts) }},
	{"huly_network_back_requests_total", "Back-requests sent to agents.", prometheus.CounterValue, func(s server.Stats) float64 { return float64(s.RPC.Calls) }},
	{"huly_network_connections_accepted_total", "TCP connections accepted.", prometheus.CounterValue, func(s server.Stats) float64 { return float64(s.RPC.Transport.Accepted) }},
	{"huly_network_handshake_failures_total", "Connections that failed or timed out in the ZMTP handshake.", prometheus.CounterValue, func(s server.Stats) float64 { return float64(s.RPC.Transport.HandshakeFailures) }},
	{"huly_network_oversize_frames_total", "Connections closed for announcing a frame over max_frame_size.", prometheus.CounterValue, func(s server.Stats) float64 { return float64(s.RPC.Transport.OversizeFrames) }},
	{"huly_network_slow_peer_disconnects_total", "Peers disconnected because their send queue filled.", prometheus.CounterValue, func(s server.Stats) float64 { return float64(s.RPC.Transport.SlowPeerDisconnects) }},
	{"huly_network_alive_timeout_capped_total", "Hellos that asked for an alive timeout above max_alive_timeout (granted the limit).", prometheus.CounterValue, func(s server.Stats) float64 { return float64(s.RPC.AliveCapped) }},
	{"huly_network_refused_hellos_total", "Hellos refused for a client id over max_client_id_length.", prometheus.CounterValue, func(s server.Stats) float64 { return float64(s.RPC.RefusedHellos) }},
	{"huly_network_detached_sessions", "Sessions kept for clients whose connection is gone.", prometheus.GaugeValue, func(s server.Stats) float64 { return float64(s.RPC.DetachedSessions) }},
	{"huly_network_session_evictions_total", "Sessions of disconnected clients dropped beyond max_detached_sessions.", prometheus.CounterValue, func(s server.Stats) float64 { return float64(s.RPC.Evictions) }},
	{"huly_network_unreachable_agents", "Agents whose hosting client's connection is gone (given no work).", prometheus.GaugeValue, func(s server.Stats) float64 { return float64(s.Network.UnreachableAgents) }},
	{"huly_network_unreachable_routes_total", "Requests refused because the container's agent was unreachable.", prometheus.CounterValue, func(s server.Stats) float64 { return float64(s.Network.UnreachableRoutes) }},
	{"huly_network_refused_agent_claims_total", "ar and au refused for an agent another live session registered.", prometheus.CounterValue, func(s server.Stats) float64 { return float64(s.Network.RefusedClaims) }},
	{"huly_network_failovers_total", "Stateless containers left to a standby when their owner's connection went.", prometheus.CounterValue, func(s server.Stats) float64 { return float64(s.Network.Failovers) }},
	{"huly_network_requests_in_flight", "Requests in flight over all clients (bounded by max_server_inflight).", prometheus.GaugeValue, func(s server.Stats) float64 { return float64(s.Overload.Inflight) }},
	{"huly_network_overload_retries_total", "Requests answered retry because max_server_inflight was reached.", prometheus.CounterValue, func(s server.Stats) float64 { return float64(s.Overload.Refused) }},
	{"huly_network_interest_clients", "Clients that receive events by interest.", prometheus.GaugeValue, func(s server.Stats) float64 { return float64(s.Interest.Clients) }},
	{"huly_network_subscriptions", "Kinds and uuids watched by clients that receive events by interest.", prometheus.GaugeValue, func(s server.Stats) float64 { return float64(s.Interest.Subscriptions) }},
	{"huly_network_get_waits", "Kinds and uuids failed gets keep their clients interested in.", prometheus.GaugeValue, func(s server.Stats) float64 { return float64(s.Interest.Waits) }},
	{"huly_network_get_waits_dropped_total", "Waits of failed gets forgotten beyond max_subscriptions.", prometheus.CounterValue, func(s server.Stats) float64 { return float64(s.Interest.WaitsDropped) }},
	{"huly_network_refused_watches_total", "Watches refused for more kinds and uuids than max_subscriptions.", prometheus.CounterValue, func(s server.Stats) float64 { return float64(s.RefusedWatches) }},
	{"huly_network_accept_errors_total", "Failed accepts (e.g. out of file descriptors).", prometheus.CounterValue, func(s server.Stats) float64 { return float64(s.RPC.Transport.AcceptErrors) }},

	{"huly_network_connections", "Open connections, handshaking or established (bounded by max_connections).", prometheus.GaugeValue, func(s server.Stats) float64 { return float64(s.RPC.Transport.Connections) }},
	{"huly_network_connections_refused_total", "Connections closed at once because max_connections were open, every one having sent a message.", prometheus.CounterValue, func(s server.Stats) float64 { return float64(s.RPC.Transport.ConnectionsRefused) }},
	{"huly_network_connections_evicted_total", "Connections that had sent no message, closed (oldest first) to make room for a new one at max_connections.", prometheus.CounterValue, func(s server.Stats) float64 { return float64(s.RPC.Transport.ConnectionsEvicted) }},
	{"huly_network_hello_timeouts_total", "Connections closed for sending no message within hello_timeout of their handshake.", prometheus.CounterValue, func(s server.Stats) float64 { return float64(s.RPC.Transport.FirstMessageTimeouts) }},
	{"huly_network_stalled_frames_total", "Connections closed because a message stopped making progress for frame_progress_timeout.", prometheus.CounterValue, func(s server.Stats) float64 { return float64(s.RPC.Transport.StalledFrames) }},
	{"huly_network_buffer_budget_exceeded_total", "Connections closed because their unfinished message would go over max_buffered_bytes.", prometheus.CounterValue, func(s server.Stats) float64 { return float64(s.RPC.Transport.BufferBudgetExceeded) }},
	{"huly_network_buffered_bytes", "Bytes held for unfinished incoming messages (bounded by max_buffered_bytes).", prometheus.GaugeValue, func(s server.Stats) float64 { return float64(s.RPC.Transport.BufferedBytes) }},
}

func newStatsCollector(srv *server.Server) *statsCollector {
	c := &statsCollector{srv: srv, descs: map[string]*prometheus.Desc{}}
	for _, d := range metricDefs {
		c.descs[d.name] = prometheus.NewDesc(d.name, d.help, nil, nil)
	}
	return c
}

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.srv.Stats()
	for _, d := range metricDefs {
		ch <- prometheus.MustNewConstMetric(c.descs[d.name], d.typ, d.value(st))
	}
}
