package wsrelay

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/gorilla/websocket"

	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
)

// passivePool is a pool of upstreams a and b with passive checks pc.
func passivePool(pc *relayconfig.PassiveHealthChecks, hosts ...string) *upstreamPool {
	var list []relayconfig.Upstream
	for _, h := range hosts {
		list = append(list, relayconfig.Upstream{Raw: h, Addr: h, Network: "tcp"})
	}
	p := newUpstreamPool(list, &relayconfig.LBPolicy{Policy: "first"})
	pc.SetDefaults()
	p.setPassive(pc)
	return p
}

// TestMaxFailsWithinFailDuration: an upstream is down (after the others)
// once it has max_fails failures within fail_duration, up again when
// they expire or after a valid answer; fail_duration off remembers none.
func TestMaxFailsWithinFailDuration(t *testing.T) {
	p := passivePool(&relayconfig.PassiveHealthChecks{FailDuration: caddy.Duration(time.Second), MaxFails: 3},
		"pm-a:1", "pm-b:1")
	t0 := time.Now()
	first := func(at time.Time) int { return p.order(nil, at)[0] }
	p.markFailed(0, t0)
	p.markFailed(0, t0.Add(100*time.Millisecond))
	if first(t0.Add(200*time.Millisecond)) != 0 {
		t.Fatal("down after 2 failures with max_fails 3")
	}
	p.markFailed(0, t0.Add(300*time.Millisecond))
	if first(t0.Add(400*time.Millisecond)) != 1 {
		t.Fatal("up after 3 failures within fail_duration")
	}
	// The first failure expires at 1s: two are left within it.
	if first(t0.Add(1050*time.Millisecond)) != 0 {
		t.Fatal("still down once a failure expired")
	}
	p.markFailed(0, t0.Add(1090*time.Millisecond))
	if first(t0.Add(1095*time.Millisecond)) != 1 {
		t.Fatal("up with 3 failures within the last second")
	}
	p.markHealthy(0)
	if first(t0.Add(1200*time.Millisecond)) != 0 {
		t.Fatal("down after a valid answer")
	}

	off := passivePool(&relayconfig.PassiveHealthChecks{FailDuration: -1}, "pm-a:1", "pm-b:1")
	off.markFailed(0, t0)
	if o := off.order(nil, t0); o[0] != 0 || len(off.failures) != 0 {
		t.Fatalf("fail_duration off: order %v, failures %v", o, off.failures)
	}
}

// TestUnhealthyRequestCountCap: tryHold gives no lease past the cap,
// not even to upgrades racing for the last slot, and one again once a
// lease is released.
func TestUnhealthyRequestCountCap(t *testing.T) {
	// An address of its own: counts are the process's, per address.
	p := passivePool(&relayconfig.PassiveHealthChecks{UnhealthyRequestCount: 5}, fmt.Sprintf("cap-%d:1", time.Now().UnixNano()))
	var got atomic.Int32
	var leases sync.Map
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			if l := p.tryHold(0); l != nil {
				got.Add(1)
				leases.Store(i, l)
			}
		})
	}
	wg.Wait()
	if n := got.Load(); n != 5 || p.conns[0].Load() != 5 {
		t.Fatalf("50 upgrades racing for a cap of 5: %d leases, count %d", n, p.conns[0].Load())
	}
	var one *lease
	leases.Range(func(_, v any) bool { one = v.(*lease); return false })
	one.release()
	one.release() // once only
	again := p.tryHold(0)
	if again == nil {
		t.Fatal("no lease after one was released")
	}
	if l := p.tryHold(0); l != nil {
		t.Fatal("a sixth lease")
	}
	leases.Range(func(_, v any) bool { v.(*lease).release(); return true })
	if n := p.conns[0].Load(); n != 1 {
		t.Fatalf("count %d after the releases, want 1", n)
	}
	again.release()
	if n := p.conns[0].Load(); n != 0 {
		t.Fatalf("count %d after every lease was released, want 0", n)
	}
}

// TestUnhealthyAnswers: an answer with an unhealthy_status, or one that
// came later than unhealthy_latency, is used (passed on, or relayed) and
// counts as a failure of its upstream, which then goes after the
// others; an answer that is neither clears the failures.
func TestUnhealthyAnswers(t *testing.T) {
	var slow atomic.Bool
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slow.Load() {
			time.Sleep(300 * time.Millisecond)
		}
		if r.URL.Path == "/busy" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err == nil {
			c.Close()
		}
	}))
	defer backend.Close()
	other := httptest.NewServer(http.NotFoundHandler())
	defer other.Close()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	h := &Handler{Options: relayconfig.Options{
		Upstreams:   []string{backend.Listener.Addr().String(), other.Listener.Addr().String()},
		LBPolicy:    &relayconfig.LBPolicy{Policy: "first"},
		DrainPeriod: -1,
		PassiveHealthChecks: &relayconfig.PassiveHealthChecks{UnhealthyStatus: []int{5},
			UnhealthyLatency: caddy.Duration(150 * time.Millisecond)},
	}}
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer h.Cleanup()
	try := func(path string) int {
		t.Helper()
		r := upgradeRequestFor(context.Background())
		r.URL.Path = path
		d, held, err := h.connect(r, r, false)
		if err != nil {
			t.Fatal(err)
		}
		d.conn.Close()
		held.release()
		return d.resp.StatusCode
	}
	first := func() int { return h.pool.order(nil, time.Now())[0] }
	if got := try("/ws"); got != 101 || first() != 0 {
		t.Fatalf("a good answer: %d, first upstream %d", got, first())
	}
	if got := try("/busy"); got != 503 || first() != 1 {
		t.Fatalf("a 503 with unhealthy_status 5xx: passed on (%d, want 503), and its upstream first still (%d)", got, first())
	}
	h.pool.markHealthy(0)
	slow.Store(true)
	if got := try("/ws"); got != 101 || first() != 1 {
		t.Fatalf("a 101 after 300ms with unhealthy_latency 150ms: %d (want it relayed, 101), and its upstream first still (%d)", got, first())
	}
	slow.Store(false)
	h.pool.markHealthy(0)
	if got := try("/ws"); got != 101 || first() != 0 {
		t.Fatalf("a good answer again: %d, first upstream %d", got, first())
	}
}
