package wsrelay

import (
	"context"
	"io"
	"maps"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	relayconfig "github.com/websocket-relay/websocket_relay/module/config"

	"github.com/websocket-relay/websocket_relay/module/engine"
)

// gatherTraffic scrapes reg and returns bytes_total and frames_total by
// direction, and pings_sent_total under "pings".
func gatherTraffic(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]float64)
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "/" + l.GetValue()
			}
			out[key] = m.GetCounter().GetValue()
		}
	}
	return out
}

// TestTrafficCountsLiveRelays: bytes_total and frames_total show a live
// relay's traffic as it flows, not only once it ends, and keep it after.
// A negative figure (which the engine never reports) takes nothing away:
// a counter's Add panicked on one, on the engine's goroutine, ending Caddy.
func TestTrafficCountsLiveRelays(t *testing.T) {
	tc := newTrafficCollector()
	reg := prometheus.NewRegistry()
	reg.MustRegister(tc)
	const c2b = "caddy_websocket_relay_bytes_total/client_to_backend"
	const frames = "caddy_websocket_relay_frames_total/client_to_backend"

	tc.ended(nil, trafficOf(engine.Counters{Bytes: -9223372036854775795, Frames: 1}, engine.Counters{}, -1))
	if m := gatherTraffic(t, reg); m[c2b] != 0 || m[frames] != 1 || m["caddy_websocket_relay_pings_sent_total"] != 0 {
		t.Fatalf("after a negative figure: %v", m)
	}

	cTest, cRelay := net.Pipe()
	bTest, bRelay := net.Pipe()
	defer cTest.Close()
	defer bTest.Close()
	s := engine.New(engine.Leg{Conn: cRelay}, engine.Leg{Conn: bRelay},
		engine.Config{WriteTimeout: 5 * time.Second, CloseTimeout: time.Second})
	tc.started(s)
	ended := make(chan engine.Result, 1)
	s.Start(func(r engine.Result) {
		recordEnd(s, r) // as the handler does, into the package's collector
		tc.ended(s, trafficOf(r.ClientToBackend, r.BackendToClient, r.PingsSent))
		ended <- r
	})
	go io.Copy(io.Discard, bTest)
	frame := ws.MaskFrame(ws.NewBinaryFrame(make([]byte, 100)))
	if err := ws.WriteFrame(cTest, frame); err != nil {
		t.Fatal(err)
	}
	const wire = 2 + 4 + 100 // header, mask key, payload
	deadline := time.Now().Add(5 * time.Second)
	for m := gatherTraffic(t, reg); m[c2b] != wire || m[frames] != 2; m = gatherTraffic(t, reg) {
		if time.Now().After(deadline) {
			t.Fatalf("while the relay lives: %v; want %d bytes and 1 more frame client to backend", m, wire)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cTest.Close() // the client goes away
	var r engine.Result
	select {
	case r = <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the relay did not end")
	}
	if m := gatherTraffic(t, reg); m[c2b] != float64(r.ClientToBackend.Bytes) || m[c2b] != wire || m[frames] != 2 {
		t.Fatalf("after the end: %v; result %+v", m, r)
	}
}

// TestUpstreamSeriesFollowConfigs: an upstream's upstream_connections
// series is there, at 0, while a configuration names the upstream, and
// goes once none does and its last connection ended; a reload that
// drops an upstream leaves no series behind once its relays drained.
func TestUpstreamSeriesFollowConfigs(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	provision := func(upstreams ...string) *Handler {
		h := &Handler{Options: relayconfig.Options{Upstreams: upstreams, DrainPeriod: -1}}
		if err := h.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		return h
	}
	series := func() map[string]float64 {
		ch := make(chan prometheus.Metric, 64)
		upstreamConnections.Collect(ch)
		close(ch)
		got := map[string]float64{}
		for m := range ch {
			var d dto.Metric
			if err := m.Write(&d); err != nil {
				t.Fatal(err)
			}
			if l := d.GetLabel()[0].GetValue(); strings.HasPrefix(l, "series-") {
				got[l] = d.GetGauge().GetValue()
			}
		}
		return got
	}
	want := func(step string, w map[string]float64) {
		t.Helper()
		if got := series(); !maps.Equal(got, w) {
			t.Fatalf("%s: series %v, want %v", step, got, w)
		}
	}
	old := provision("series-a:1", "series-b:1")
	want("provisioned", map[string]float64{"series-a:1": 0, "series-b:1": 0})
	held := old.pool.hold(0)
	want("a relay to a", map[string]float64{"series-a:1": 1, "series-b:1": 0})
	cur := provision("series-b:1", "series-c:1")
	if err := old.Cleanup(); err != nil {
		t.Fatal(err)
	}
	old.Cleanup() // a second call takes nothing back
	want("reloaded, a's relay draining", map[string]float64{"series-a:1": 1, "series-b:1": 0, "series-c:1": 0})
	held.release()
	want("a's relay ended", map[string]float64{"series-b:1": 0, "series-c:1": 0})
	bad := &Handler{Options: relayconfig.Options{Upstreams: []string{"series-c:1", "wss://series-d:1"}, TLSTrustedCACerts: []string{"/nonexistent.pem"}}}
	if err := bad.Provision(ctx); err == nil {
		t.Fatal("provisioned with a CA file that does not exist")
	}
	bad.Cleanup() // as Caddy cleans up after a failed Provision
	want("a failed reload", map[string]float64{"series-b:1": 0, "series-c:1": 0})
	if err := cur.Cleanup(); err != nil {
		t.Fatal(err)
	}
	want("unloaded", map[string]float64{})
}
