package wsrelay

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
)

// TestCookieOfDownUpstreamTakesFallback: returning clients whose cookie
// names an upstream the health checks found unhealthy (or whose dial
// failed) are spread by the fallback, as reverse_proxy's cookie policy
// skips an unavailable upstream and asks its fallback; they did all go
// to one upstream, the fallback's round-robin not turning for them.
func TestCookieOfDownUpstreamTakesFallback(t *testing.T) {
	addrs := []string{"ch-a:1", "ch-b:1", "ch-c:1"}
	var list []relayconfig.Upstream
	for _, a := range addrs {
		u, _ := relayconfig.ParseUpstream(a)
		list = append(list, u)
	}
	for _, mark := range []string{"unhealthy", "dial failed"} {
		p := newUpstreamPool(list, &relayconfig.LBPolicy{Policy: "cookie", Fallback: &relayconfig.LBPolicy{Policy: "round_robin"}})
		if mark == "unhealthy" {
			p.unhealthy[0].Store(true)
		} else {
			p.markFailed(0, time.Now())
		}
		got := map[string]int{}
		for range 6 {
			r := httptest.NewRequest(http.MethodGet, "/ws", nil)
			r.Header.Set("Cookie", "lb="+cookieValue("", addrs[0]))
			got[addrs[p.order(r, time.Now())[0]]]++
		}
		if len(got) < 2 {
			t.Errorf("upstream 0 %s: 6 returning clients with its cookie all went to %v; reverse_proxy spreads them over the fallback's turns", mark, got)
		}
	}
}

// TestRoundRobinSkipsDownEvenly: with one of three upstreams unhealthy,
// reverse_proxy's round_robin (selectionpolicies.go:342-347) moves its
// count on for each unavailable upstream it skips, so the two others get
// every other upgrade, and so does the relay's (the upstream after the
// unhealthy one took its turns too, twice the load of the other).
func TestRoundRobinSkipsDownEvenly(t *testing.T) {
	list := []relayconfig.Upstream{{Raw: "a"}, {Raw: "b"}, {Raw: "c"}}
	p := newUpstreamPool(list, nil)
	p.unhealthy[0].Store(true)
	got := [3]int{}
	for range 60 {
		got[p.order(nil, time.Now())[0]]++
	}
	if got[1] != 30 || got[2] != 30 {
		t.Errorf("60 upgrades, upstream 0 unhealthy: %v per upstream, want 30 each for 1 and 2 (reverse_proxy's round_robin)", got)
	}
}

// TestDownNeverFirst: with upstreams down, weighted_round_robin and
// random_choose pick among those up while there are any, and rank every
// upstream they may use.
func TestDownNeverFirst(t *testing.T) {
	list, _ := upstreamsAsReverseProxy(t, []string{"dn-a:1", "dn-b:1", "dn-c:1", "dn-d:1"})
	for _, policy := range []*relayconfig.LBPolicy{
		{Policy: "weighted_round_robin", Weights: []int{2, 1, 1, 3}},
		{Policy: "random_choose", Choose: 2},
	} {
		p := newUpstreamPool(list, policy)
		p.unhealthy[3].Store(true)
		p.markFailed(0, time.Now())
		seen := map[int]int{}
		for range 200 {
			o := p.order(nil, time.Now())
			if len(o) != 4 || o[0] == 0 || o[0] == 3 {
				t.Fatalf("%s: order %v with 0 failed and 3 unhealthy", policy.Policy, o)
			}
			seen[o[0]]++
		}
		if seen[1] == 0 || seen[2] == 0 {
			t.Errorf("%s: 200 picks went %v, want both upstreams up used", policy.Policy, seen)
		}
	}
}
