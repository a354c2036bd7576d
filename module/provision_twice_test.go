package wsrelay

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
)

// TestProvisionTwice: a handler provisioned twice and cleaned up once
// stops its health checks and lets its series go (the first checks ran
// on for good, and the series stayed).
func TestProvisionTwice(t *testing.T) {
	var checks atomic.Int32
	addr := stubServe(t, func(c net.Conn) { checks.Add(1); c.Close() })
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	h := &Handler{Options: relayconfig.Options{Upstreams: []string{addr}, DrainPeriod: -1,
		HealthChecks: &relayconfig.HealthChecks{URI: "/h", Interval: caddy.Duration(20 * time.Millisecond)}}}
	for range 2 {
		if err := h.Provision(ctx); err != nil {
			t.Fatal(err)
		}
	}
	h.Cleanup()
	time.Sleep(50 * time.Millisecond)
	before := checks.Load()
	time.Sleep(200 * time.Millisecond)
	upstreamSeries.Lock()
	use := upstreamSeries.m[addr]
	upstreamSeries.Unlock()
	if after := checks.Load(); after > before || use != nil {
		t.Errorf("after Cleanup: %d more health checks of %s in 200ms; series use %+v", after-before, addr, use)
	}
}
