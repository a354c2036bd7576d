package wsrelay

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/websocket-relay/websocket_relay/module/engine"
)

// trafficCollector serves caddy_websocket_relay_bytes_total,
// frames_total and pings_sent_total. Each is what the ended relays
// carried plus what the live ones carried so far, read from them at each
// scrape: a connection that lives for hours shows its traffic as it
// flows, not in one step when it ends.
type trafficCollector struct {
	bytes, frames, pings *prometheus.Desc

	mu   sync.Mutex
	done trafficCounts // of the relays that ended
	live map[*engine.Session]struct{}
}

// trafficCounts are the figures the collector serves. Negative figures
// (which the engine never reports) are left out: a counter must not go
// down.
type trafficCounts struct {
	c2bBytes, b2cBytes, c2bFrames, b2cFrames, pings float64
}

func trafficOf(c2b, b2c engine.Counters, pings int64) trafficCounts {
	pos := func(v int64) float64 { return float64(max(v, 0)) }
	return trafficCounts{pos(c2b.Bytes), pos(b2c.Bytes), pos(c2b.Frames), pos(b2c.Frames), pos(pings)}
}

func (t *trafficCounts) add(o trafficCounts) {
	t.c2bBytes += o.c2bBytes
	t.b2cBytes += o.b2cBytes
	t.c2bFrames += o.c2bFrames
	t.b2cFrames += o.b2cFrames
	t.pings += o.pings
}

func newTrafficCollector() *trafficCollector {
	name := func(n string) string { return prometheus.BuildFQName("caddy", "websocket_relay", n) }
	return &trafficCollector{
		bytes: prometheus.NewDesc(name("bytes_total"),
			"Wire bytes of relayed frames, by direction (live connections included).", []string{"direction"}, nil),
		frames: prometheus.NewDesc(name("frames_total"),
			"Relayed frames, by direction (live connections included).", []string{"direction"}, nil),
		pings: prometheus.NewDesc(name("pings_sent_total"),
			"Keepalive pings the relay sent to clients.", nil, nil),
		live: make(map[*engine.Session]struct{}),
	}
}

// started counts s's traffic from now on.
func (t *trafficCollector) started(s *engine.Session) {
	t.mu.Lock()
	t.live[s] = struct{}{}
	t.mu.Unlock()
}

// ended moves s's final figures to the ended relays' part, in one step
// with taking s off the live ones, so no scrape counts them twice or
// not at all.
func (t *trafficCollector) ended(s *engine.Session, final trafficCounts) {
	t.mu.Lock()
	delete(t.live, s)
	t.done.add(final)
	t.mu.Unlock()
}

func (t *trafficCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- t.bytes
	ch <- t.frames
	ch <- t.pings
}

func (t *trafficCollector) Collect(ch chan<- prometheus.Metric) {
	t.mu.Lock()
	sum := t.done
	for s := range t.live {
		sum.add(trafficOf(s.Traffic()))
	}
	t.mu.Unlock()
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	counter(t.bytes, sum.c2bBytes, "client_to_backend")
	counter(t.bytes, sum.b2cBytes, "backend_to_client")
	counter(t.frames, sum.c2bFrames, "client_to_backend")
	counter(t.frames, sum.b2cFrames, "backend_to_client")
	counter(t.pings, sum.pings)
}
