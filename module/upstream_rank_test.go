package wsrelay

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
)

func listOf(addrs ...string) []relayconfig.Upstream {
	var list []relayconfig.Upstream
	for _, a := range addrs {
		u, _ := relayconfig.ParseUpstream(a)
		list = append(list, u)
	}
	return list
}

// TestRoundRobinAllDownRotates: with every upstream down (all
// unhealthy, or all dials failed within 5 s) upgrades still go to them,
// and round_robin still turns (it sent every upgrade to one).
func TestRoundRobinAllDownRotates(t *testing.T) {
	for _, mark := range []string{"unhealthy", "dial failed"} {
		p := newUpstreamPool(listOf("rr-a:1", "rr-b:1", "rr-c:1"), nil)
		for i := range 3 {
			if mark == "unhealthy" {
				p.unhealthy[i].Store(true)
			} else {
				p.markFailed(i, time.Now())
			}
		}
		got := [3]int{}
		for range 30 {
			got[p.order(nil, time.Now())[0]]++
		}
		if got[0] != 10 || got[1] != 10 || got[2] != 10 {
			t.Errorf("all %s: 30 upgrades went %v, want 10 each", mark, got)
		}
	}
}

// TestCookieAllDownKeepsOwn: with every upstream down, cookie clients
// keep their own upstream (they all went to one other, and got its
// cookie).
func TestCookieAllDownKeepsOwn(t *testing.T) {
	addrs := []string{"ck-a:1", "ck-b:1", "ck-c:1"}
	p := newUpstreamPool(listOf(addrs...), &relayconfig.LBPolicy{Policy: "cookie", Fallback: &relayconfig.LBPolicy{Policy: "round_robin"}})
	for i := range 3 {
		p.unhealthy[i].Store(true)
	}
	got := map[string]int{}
	for range 9 {
		r := httptest.NewRequest(http.MethodGet, "/ws", nil)
		r.Header.Set("Cookie", "lb="+cookieValue("", addrs[1]))
		first := p.order(r, time.Now())[0]
		got[addrs[first]]++
		if c := p.stickyCookie(r, first); c != nil && c.Value != cookieValue("", addrs[1]) {
			got["new cookie for "+addrs[first]]++
		}
	}
	if got[addrs[1]] == 0 {
		t.Errorf("all down: 9 clients with upstream 1's cookie went %v, none to upstream 1", got)
	}
}

// TestOrderPermutation: every order is a permutation (weight-0 left
// out for weighted_round_robin), under -race with many goroutines.
func TestOrderPermutation(t *testing.T) {
	addrs := []string{"pm-a:1", "pm-b:1", "pm-c:1", "pm-d:1", "pm-e:1"}
	policies := []*relayconfig.LBPolicy{nil,
		{Policy: "weighted_round_robin", Weights: []int{0, 3, 0, 1, 2}},
		{Policy: "random_choose", Choose: 3},
		{Policy: "least_conn"}, {Policy: "first"}, {Policy: "random"}, {Policy: "uri_hash"},
		{Policy: "cookie", Fallback: &relayconfig.LBPolicy{Policy: "weighted_round_robin", Weights: []int{0, 3, 0, 1, 2}}},
		{Policy: "cookie", Fallback: &relayconfig.LBPolicy{Policy: "round_robin"}},
		{Policy: "query", Key: "k", Fallback: &relayconfig.LBPolicy{Policy: "cookie", Fallback: &relayconfig.LBPolicy{Policy: "round_robin"}}},
	}
	for pi, pol := range policies {
		for mask := 0; mask < 32; mask++ {
			p := newUpstreamPool(listOf(addrs...), pol)
			for i := range 5 {
				if mask&(1<<i) != 0 {
					if i%2 == 0 {
						p.unhealthy[i].Store(true)
					} else {
						p.markFailed(i, time.Now())
					}
				}
			}
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					for k := range 50 {
						r := httptest.NewRequest(http.MethodGet, "/ws", nil)
						r.Header.Set("Cookie", "lb="+cookieValue("", addrs[(g+k)%5]))
						o := p.order(r, time.Now())
						want := 5
						wrr := pol != nil && (pol.Policy == "weighted_round_robin" || pol.Fallback != nil && pol.Fallback.Policy == "weighted_round_robin")
						if wrr {
							want = 3
						}
						seen := map[int]bool{}
						for _, i := range o {
							if seen[i] || i < 0 || i >= 5 {
								t.Errorf("policy %d mask %b: order %v", pi, mask, o)
								return
							}
							seen[i] = true
						}
						if len(o) < want {
							t.Errorf("policy %d mask %b: order %v, want %d", pi, mask, o, want)
							return
						}
						// an up upstream (of positive weight) must lead when there is one
						anyUp := false
						for i := range 5 {
							if mask&(1<<i) == 0 && (!wrr || []int{0, 3, 0, 1, 2}[i] > 0) {
								anyUp = true
							}
						}
						if anyUp && mask&(1<<o[0]) != 0 {
							t.Errorf("policy %d mask %b: order %v starts with a down upstream", pi, mask, o)
							return
						}
					}
				})
			}
			wg.Wait()
		}
	}
}

// TestSpreadStopMidCatchUp: stop closing while a late wake catches up
// ends the calls (a shutdown's 1001 must not lose to the drain's 1012);
// with a period shorter than n ns, step is 0 and every call is in one
// catch-up.
func TestSpreadStopMidCatchUp(t *testing.T) {
	stop := make(chan struct{})
	called := 0
	spread(100, 50*time.Nanosecond, stop, func(i int) {
		called++
		if i == 2 {
			close(stop)
		}
	})
	if called != 3 {
		t.Errorf("%d calls, stop closed during the 3rd: want 3", called)
	}
}
