package wsrelay

import (
	"errors"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/websocket-relay/websocket_relay/module/engine"
)

// Collectors are built once and registered on each configuration's
// registry (as caddy-ratelimit does).
var (
	activeConnections = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "caddy", Subsystem: "websocket_relay", Name: "active_connections",
		Help: "WebSocket connections being relayed now.",
	})
	connectionsEnded = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "websocket_relay", Name: "connections_ended_total",
		Help: "Relayed connections that ended, by who ended them and why.",
	}, []string{"closed_by", "cause"})
	traffic     = newTrafficCollector()
	readBuffers = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "caddy", Subsystem: "websocket_relay", Name: "read_buffers",
		Help: "Pooled 32 KiB read buffers that relays hold now; an idle relay holds none.",
	}, func() float64 { return float64(engine.BuffersHeld()) })
	onEventLoops = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "caddy", Subsystem: "websocket_relay", Name: "event_loop_connections",
		Help: "Relayed connections served by the relay's event loops now (idle or busy plain ws relays).",
	}, func() float64 { return float64(engine.OnLoops()) })
	upstreamConnections = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "caddy", Subsystem: "websocket_relay", Name: "upstream_connections",
		Help: "Connections each upstream holds now: relays, and upgrades dialing it or waiting for its answer.",
	}, []string{"upstream"})
	handshakeFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "websocket_relay", Name: "handshake_failures_total",
		Help: "Upgrade requests not relayed, by reason: bad_request, dial, handshake, full, rejected, client_gone.",
	}, []string{"reason"})
)

// registerMetrics registers the collectors on reg, tolerating the ones a
// previous configuration already registered there.
func registerMetrics(reg *prometheus.Registry) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{activeConnections, connectionsEnded, traffic, readBuffers, onEventLoops, upstreamConnections, handshakeFailures} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

// recordEnd counts a finished relay, s, whose traffic so far goes from
// the live relays' part of the counters to the ended ones'.
func recordEnd(s *engine.Session, res engine.Result) {
	connectionsEnded.WithLabelValues(res.ClosedBy, causeLabel(res.Cause)).Inc()
	traffic.ended(s, trafficOf(res.ClientToBackend, res.BackendToClient, res.PingsSent))
}

// causeLabel folds a cause into a label of bounded cardinality.
func causeLabel(cause string) string {
	if strings.HasPrefix(cause, "protocol error") {
		return "protocol_error"
	}
	return strings.ReplaceAll(cause, " ", "_")
}

// upstreamSeries keeps, for each series of upstream_connections, how
// many provisioned handlers name its upstream and how many connections
// it counts: a series is there, at 0, from the first configuration that
// names its upstream, and goes once no configuration names it and its
// last connection ended (a reload that removed an upstream leaves no
// series behind once its relays drained).
var upstreamSeries = struct {
	sync.Mutex
	m map[string]*seriesUse
}{m: make(map[string]*seriesUse)}

type seriesUse struct{ handlers, conns int }

// useUpstreamSeries adds handlers and conns to the use of upstream's
// series, and sets or removes the series.
func useUpstreamSeries(upstream string, handlers, conns int) {
	upstreamSeries.Lock()
	defer upstreamSeries.Unlock()
	u := upstreamSeries.m[upstream]
	if u == nil {
		u = &seriesUse{}
		upstreamSeries.m[upstream] = u
	}
	u.handlers += handlers
	u.conns += conns
	if u.handlers <= 0 && u.conns <= 0 {
		delete(upstreamSeries.m, upstream)
		upstreamConnections.DeleteLabelValues(upstream)
		return
	}
	upstreamConnections.WithLabelValues(upstream).Set(float64(u.conns))
}
