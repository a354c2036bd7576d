package wsrelay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	dto "github.com/prometheus/client_model/go"

	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
)

func TestPoolRoundRobinSkipsFailed(t *testing.T) {
	p := newUpstreamPool([]relayconfig.Upstream{{Raw: "a"}, {Raw: "b"}, {Raw: "c"}}, nil)
	t0 := time.Unix(100, 0)
	var firsts []int
	for i := 0; i < 3; i++ {
		firsts = append(firsts, p.order(nil, t0)[0])
	}
	if firsts[0] == firsts[1] || firsts[1] == firsts[2] || firsts[0] == firsts[2] {
		t.Fatalf("not round-robin: %v", firsts)
	}
	p.markFailed(1, t0)
	for i := 0; i < 6; i++ {
		o := p.order(nil, t0.Add(time.Second))
		if o[0] == 1 || o[len(o)-1] != 1 {
			t.Fatalf("failed upstream not last: %v", o)
		}
	}
	if o := p.order(nil, t0.Add(failBackoff)); len(o) != 3 {
		t.Fatalf("order %v", o)
	}
	p.markHealthy(1)
	seen := map[int]bool{}
	for i := 0; i < 3; i++ {
		seen[p.order(nil, t0)[0]] = true
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
	h := &Handler{pool: newUpstreamPool(list, nil)}
	h.DialTimeout = caddy.Duration(5 * time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the client is gone
	r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
	if _, _, _, err := h.dialUpstream(r); !errors.Is(err, context.Canceled) {
		t.Fatalf("dial error %v, want the context's", err)
	}
	h.pool.mu.Lock()
	n := len(h.pool.failedAt)
	h.pool.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d upstreams marked failed because the client went away", n)
	}
}

// TestHashPoliciesPickAsReverseProxy: each hash policy picks, for the
// same request, the upstream that reverse_proxy's own policy picks from
// the same addresses, and ranks the rest by the same hash.
func TestHashPoliciesPickAsReverseProxy(t *testing.T) {
	addrs := []string{"10.0.0.1:8080", "10.0.0.2:8080", "backend-3:9000", "[::1]:7000", "unix//run/app.sock"}
	var list []relayconfig.Upstream
	var rp reverseproxy.UpstreamPool
	for _, a := range addrs {
		u, err := relayconfig.ParseUpstream(a)
		if err != nil {
			t.Fatal(err)
		}
		list = append(list, u)
		rp = append(rp, &reverseproxy.Upstream{Dial: a})
	}
	cases := []struct {
		policy relayconfig.LBPolicy
		caddy  reverseproxy.Selector
	}{
		{relayconfig.LBPolicy{Policy: "ip_hash"}, reverseproxy.IPHashSelection{}},
		{relayconfig.LBPolicy{Policy: "client_ip_hash"}, reverseproxy.ClientIPHashSelection{}},
		{relayconfig.LBPolicy{Policy: "uri_hash"}, reverseproxy.URIHashSelection{}},
		{relayconfig.LBPolicy{Policy: "header", Field: "X-User"}, reverseproxy.HeaderHashSelection{Field: "X-User"}},
		{relayconfig.LBPolicy{Policy: "header", Field: "Host"}, reverseproxy.HeaderHashSelection{Field: "Host"}},
		{relayconfig.LBPolicy{Policy: "query", Key: "room"}, reverseproxy.QueryHashSelection{Key: "room"}},
	}
	for _, c := range cases {
		p := newUpstreamPool(list, &c.policy)
		picked := map[int]int{}
		for i := range 200 {
			key := fmt.Sprintf("k%d", i)
			r := httptest.NewRequest(http.MethodGet, "/chat/"+key+"?room="+key, nil)
			r.RemoteAddr = fmt.Sprintf("192.0.2.%d:%d", i%250+1, 40000+i)
			r.Host = key + ".example.com"
			r.Header.Set("X-User", key)
			ctx := context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{
				caddyhttp.ClientIPVarKey: fmt.Sprintf("198.51.100.%d", i%250+1),
			})
			r = r.WithContext(ctx)
			want := c.caddy.Select(rp, r, nil)
			got := p.order(r, time.Now())
			if want == nil || addrs[got[0]] != want.Dial {
				t.Fatalf("%s %q: picked %s, reverse_proxy picks %v", c.policy.Policy, key, addrs[got[0]], want)
			}
			picked[got[0]]++
		}
		if len(picked) != len(addrs) {
			t.Errorf("%s: 200 keys reached only %d of %d upstreams: %v", c.policy.Policy, len(picked), len(addrs), picked)
		}
	}
}

// TestHashPolicyFallsBack: a header or query policy whose key is absent
// uses its fallback (random by default), and an upstream that failed
// goes last even when the hash prefers it.
func TestHashPolicyFallsBack(t *testing.T) {
	list := []relayconfig.Upstream{{Raw: "a", Addr: "a:1"}, {Raw: "b", Addr: "b:1"}, {Raw: "c", Addr: "c:1"}}
	p := newUpstreamPool(list, &relayconfig.LBPolicy{Policy: "header", Field: "X-User",
		Fallback: &relayconfig.LBPolicy{Policy: "first"}})
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	for range 5 {
		if o := p.order(r, time.Now()); !slices.Equal(o, []int{0, 1, 2}) {
			t.Fatalf("no X-User: order %v, want the fallback's (first) 0 1 2", o)
		}
	}
	r.Header.Set("X-User", "alice")
	first := p.order(r, time.Now())
	p.markFailed(first[0], time.Now())
	if o := p.order(r, time.Now()); o[2] != first[0] || o[0] != first[1] {
		t.Fatalf("after %d failed: order %v, want %v with it last", first[0], o, first)
	}
	random := newUpstreamPool(list, &relayconfig.LBPolicy{Policy: "query", Key: "room"})
	seen := map[int]bool{}
	for range 100 {
		seen[random.order(httptest.NewRequest(http.MethodGet, "/?other=1", nil), time.Now())[0]] = true
	}
	if len(seen) != 3 {
		t.Fatalf("no room: the default fallback (random) picked only %v in 100 tries", seen)
	}
}

// TestLeastConn: least_conn picks the upstream with the fewest
// connections held, ties at random, and a released lease counts no more
// (twice released, once counted).
func TestLeastConn(t *testing.T) {
	list := []relayconfig.Upstream{{Raw: "a", Addr: "least-a:1"}, {Raw: "b", Addr: "least-b:1"}, {Raw: "c", Addr: "least-c:1"}}
	p := newUpstreamPool(list, &relayconfig.LBPolicy{Policy: "least_conn"})
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	var held []*lease
	for range 9 {
		held = append(held, p.hold(p.order(r, time.Now())[0]))
	}
	for i := range list {
		if n := p.conns[i].Load(); n != 3 {
			t.Fatalf("after 9 picks upstream %d holds %d, want 3 each", i, n)
		}
	}
	for _, l := range held {
		if l.idx == 1 {
			l.release()
			l.release()
		}
	}
	for range 3 {
		o := p.order(r, time.Now())
		if o[0] != 1 {
			t.Fatalf("order %v: b holds %d of %d/%d/%d, want it first", o, p.conns[1].Load(),
				p.conns[0].Load(), p.conns[1].Load(), p.conns[2].Load())
		}
		held = append(held, p.hold(o[0]))
	}
	seen := map[int]bool{}
	for range 100 {
		seen[p.order(r, time.Now())[0]] = true
	}
	if len(seen) != 3 {
		t.Fatalf("ties at 3 each: only %v came first in 100 tries", seen)
	}
	if g := gaugeValue(t, "b"); g != 3 {
		t.Fatalf("upstream_connections{upstream=\"b\"} = %v, want 3", g)
	}
	for _, l := range held {
		l.release()
	}
	for _, u := range []string{"a", "b", "c"} {
		if g := gaugeValue(t, u); g != 0 {
			t.Fatalf("upstream_connections{upstream=%q} = %v after every release, want 0", u, g)
		}
	}
}

// gaugeValue reads upstream_connections for upstream.
func gaugeValue(t *testing.T, upstream string) float64 {
	t.Helper()
	var m dto.Metric
	if err := upstreamConnections.WithLabelValues(upstream).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

// TestRoundRobinWraps: the round-robin counter picks a valid upstream
// at any count; int of a uint64 count past the int's range (2^31 upgrades
// where int has 32 bits) was negative, and so was its index.
func TestRoundRobinWraps(t *testing.T) {
	p := newUpstreamPool([]relayconfig.Upstream{{Raw: "a"}, {Raw: "b"}, {Raw: "c"}}, nil)
	for _, at := range []uint64{1<<31 - 1, 1<<32 - 1, 1<<63 - 1, 1<<64 - 2} {
		p.next.Store(at)
		for range 3 {
			if o := p.order(nil, time.Now()); len(o) != 3 || o[0] < 0 || o[0] > 2 {
				t.Fatalf("at %d: order %v", at, o)
			}
		}
	}
}

// TestLeastConnCountsDials: an upgrade counts against its upstream from
// the dial on, as reverse_proxy counts a request before its round trip:
// upgrades that come while a dial is under way (a TLS handshake, a
// backend slow to accept) do not all go to the upstream that looked
// least loaded before any of them got through.
func TestLeastConnCountsDials(t *testing.T) {
	var list []relayconfig.Upstream
	accepted := make([]chan struct{}, 2)
	for i := range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		accepted[i] = make(chan struct{}, 16)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				accepted[i] <- struct{}{}
				t.Cleanup(func() { c.Close() }) // never answers the TLS handshake
			}
		}()
		u, err := relayconfig.ParseUpstream("wss://" + ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		list = append(list, u)
	}
	h := &Handler{pool: newUpstreamPool(list, &relayconfig.LBPolicy{Policy: "least_conn"}), tlsBase: &tls.Config{}}
	h.DialTimeout = caddy.Duration(3 * time.Second)
	busy := h.pool.hold(0) // upstream 0 holds a relay, 1 none
	defer busy.release()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
			if _, _, l, err := h.dialUpstream(r); err == nil {
				l.release()
			}
		}()
		// The next upgrade comes once this one's dial is under way.
		select {
		case <-accepted[0]:
		case <-accepted[1]:
		case <-time.After(2 * time.Second):
			t.Fatal("no dial reached a backend")
		}
	}
	if n := h.pool.conns[1].Load(); n != 2 {
		// The first dial goes to upstream 1, which then holds as many
		// as 0; of the next two, one goes to each.
		t.Fatalf("upstream 1 counts %d of the 3 dials under way (upstream 0: %d, with a relay), want 2", n, h.pool.conns[0].Load())
	}
}

// TestLeastConnAcrossHandlers: the counts are the upstream's, not one
// handler's: a second directive (or a configuration still draining) to
// the same backends sees the connections the first holds.
func TestLeastConnAcrossHandlers(t *testing.T) {
	list := []relayconfig.Upstream{{Raw: "x", Addr: "across-x:1"}, {Raw: "y", Addr: "across-y:1"}}
	least := &relayconfig.LBPolicy{Policy: "least_conn"}
	chat, feed := newUpstreamPool(list, least), newUpstreamPool(list, least)
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	held := []*lease{chat.hold(0), chat.hold(0)}
	for range 10 {
		if o := feed.order(r, time.Now()); o[0] != 1 {
			t.Fatalf("another handler holds 2 on x and none on y; order %v, want y first", o)
		}
	}
	for _, l := range held {
		l.release()
	}
	if n := feed.conns[0].Load(); n != 0 {
		t.Fatalf("x counts %d after both released", n)
	}
}
