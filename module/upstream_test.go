package wsrelay

import (
	"testing"
	"time"

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
