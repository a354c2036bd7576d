package wsrelay

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
)

func TestPoolRoundRobinSkipsFailed(t *testing.T) {
	p := newUpstreamPool([]relayconfig.Upstream{{Raw: "a"}, {Raw: "b"}, {Raw: "c"}})
	t0 := time.Unix(100, 0)
	var firsts []int
	for i := 0; i < 3; i++ {
		firsts = append(firsts, p.order(t0)[0])
	}
	if firsts[0] == firsts[1] || firsts[1] == firsts[2] || firsts[0] == firsts[2] {
		t.Fatalf("not round-robin: %v", firsts)
	}
	p.markFailed(1, t0)
	for i := 0; i < 6; i++ {
		o := p.order(t0.Add(time.Second))
		if o[0] == 1 || o[len(o)-1] != 1 {
			t.Fatalf("failed upstream not last: %v", o)
		}
	}
	if o := p.order(t0.Add(failBackoff)); len(o) != 3 {
		t.Fatalf("order %v", o)
	}
	p.markHealthy(1)
	seen := map[int]bool{}
	for i := 0; i < 3; i++ {
		seen[p.order(t0)[0]] = true
	}
	if !seen[1] {
		t.Fatalf("healthy upstream never first again")
	}
}

// TestDialCanceledMarksNoUpstream: a client that goes away while its
// backend is dialed ends the dial, and no upstream is marked failed for
// it (all of them were, and a really dead one then lost its place last).
func TestDialCanceledMarksNoUpstream(t *testing.T) {
	var list []relayconfig.Upstream
	for _, s := range []string{"127.0.0.1:1", "127.0.0.1:2"} {
		u, err := relayconfig.ParseUpstream(s)
		if err != nil {
			t.Fatal(err)
		}
		list = append(list, u)
	}
	h := &Handler{pool: newUpstreamPool(list)}
	h.DialTimeout = caddy.Duration(5 * time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the client is gone
	if _, _, err := h.dialUpstream(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("dial error %v, want the context's", err)
	}
	h.pool.mu.Lock()
	n := len(h.pool.failedAt)
	h.pool.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d upstreams marked failed because the client went away", n)
	}
}
