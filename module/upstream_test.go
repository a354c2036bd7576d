package wsrelay

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
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
	if _, _, err := h.connect(r, r, false); !errors.Is(err, context.Canceled) {
		t.Fatalf("dial error %v, want the context's", err)
	}
	h.pool.mu.Lock()
	n := len(h.pool.failures)
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
	list, rp := upstreamsAsReverseProxy(t, addrs)
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
			var errs []error
			if conn, _, l, _, _, err := h.dialNext(r.Context(), h.pool.order(r, time.Now()), &errs); err == nil && conn != nil {
				conn.Close()
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

// TestWeightedRoundRobinAsReverseProxy: weighted_round_robin picks, one
// upgrade after another, the upstreams that reverse_proxy's policy picks
// with the same weights, and ranks the others of positive weight after
// the pick; an upstream of weight 0 is never tried, a failed one goes
// last, and the count wraps as round_robin's does.
func TestWeightedRoundRobinAsReverseProxy(t *testing.T) {
	addrs := []string{"w-a:1", "w-b:1", "w-c:1", "w-d:1"}
	list, rp := upstreamsAsReverseProxy(t, addrs)
	for _, weights := range [][]int{{3, 0, 1, 2}, {1, 1, 1, 1}, {0, 0, 5, 0}, {7, 1, 0, 0}} {
		sel := &reverseproxy.WeightedRoundRobinSelection{Weights: weights}
		if err := sel.Provision(caddy.Context{}); err != nil {
			t.Fatal(err)
		}
		p := newUpstreamPool(list, &relayconfig.LBPolicy{Policy: "weighted_round_robin", Weights: weights})
		picked := make([]int, len(addrs))
		for i := range 120 {
			want := sel.Select(rp, nil, nil)
			got := p.order(nil, time.Now())
			if addrs[got[0]] != want.Dial {
				t.Fatalf("weights %v, upgrade %d: picked %s, reverse_proxy picks %s", weights, i, addrs[got[0]], want.Dial)
			}
			var positive []int
			for j, w := range weights {
				if w > 0 {
					positive = append(positive, j)
				}
			}
			if !slices.Equal(slices.Sorted(slices.Values(got)), positive) {
				t.Fatalf("weights %v: order %v, want every upstream of positive weight (%v) once", weights, got, positive)
			}
			picked[got[0]]++
		}
		for j, w := range weights {
			sum := 0
			for _, x := range weights {
				sum += x
			}
			if picked[j] != 120*w/sum {
				t.Errorf("weights %v: upstream %d got %d of 120, want %d", weights, j, picked[j], 120*w/sum)
			}
		}
	}
	p := newUpstreamPool(list, &relayconfig.LBPolicy{Policy: "weighted_round_robin", Weights: []int{1, 1, 0, 1}})
	p.markFailed(0, time.Now())
	for range 6 {
		if o := p.order(nil, time.Now()); o[len(o)-1] != 0 || slices.Contains(o, 2) {
			t.Fatalf("order %v: want upstream 0 (failed) last and 2 (weight 0) nowhere", o)
		}
	}
	for _, at := range []uint64{1<<32 - 1, 1<<64 - 2} {
		p.next.Store(at)
		for range 3 {
			if o := p.order(nil, time.Now()); len(o) != 3 {
				t.Fatalf("at %d: order %v", at, o)
			}
		}
	}
}

// TestRandomChoose: random_choose draws k upstreams at random and takes
// the one holding the fewest connections: never one that holds more
// than k-1 others, and each of the others as often as a draw allows.
func TestRandomChoose(t *testing.T) {
	list := []relayconfig.Upstream{{Raw: "a", Addr: "choose-a:1"}, {Raw: "b", Addr: "choose-b:1"}, {Raw: "c", Addr: "choose-c:1"}}
	p := newUpstreamPool(list, &relayconfig.LBPolicy{Policy: "random_choose", Choose: 2})
	var held []*lease
	for i, n := range []int{0, 5, 10} {
		for range n {
			held = append(held, p.hold(i))
		}
	}
	defer func() {
		for _, l := range held {
			l.release()
		}
	}()
	picked := make([]int, 3)
	for range 600 {
		o := p.order(nil, time.Now())
		if !slices.Equal(slices.Sorted(slices.Values(o)), []int{0, 1, 2}) {
			t.Fatalf("order %v, want every upstream once", o)
		}
		picked[o[0]]++
	}
	// Of the 3 pairs, a wins 2 ({a,b}, {a,c}) and b one ({b,c}).
	if picked[2] != 0 || picked[0] < 300 || picked[0] > 500 || picked[1] < 100 || picked[1] > 300 {
		t.Errorf("picks %v of 600 with 0, 5 and 10 connections held, want about 400, 200 and 0", picked)
	}
	all := newUpstreamPool(list, &relayconfig.LBPolicy{Policy: "random_choose", Choose: 5})
	for range 20 {
		if o := all.order(nil, time.Now()); !slices.Equal(o, []int{0, 1, 2}) {
			t.Fatalf("choose 5 of 3: order %v, want by connections held", o)
		}
	}
}

// TestCookiePolicyAsReverseProxy: the cookie policy reads and writes
// reverse_proxy's cookie: a cookie that reverse_proxy's policy set (same
// name, secret and upstream addresses) sends the upgrade to its
// upstream and sets none; an upgrade without one gets the cookie that
// reverse_proxy would set for the upstream relayed to, attributes
// included, and reverse_proxy's policy reads it as that upstream. A
// cookie naming an upstream that failed, or none, gets a new one for
// the upstream that answered.
func TestCookiePolicyAsReverseProxy(t *testing.T) {
	addrs := []string{"10.0.0.1:8080", "backend-2:9000", "[::1]:7000", "unix//run/app.sock"}
	list, rp := upstreamsAsReverseProxy(t, addrs)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	type variant struct {
		name            string
		tls, proxiedTLS bool
		maxAge          time.Duration
	}
	for _, v := range []variant{{name: "plain"}, {name: "tls", tls: true, maxAge: 90 * time.Minute}, {name: "trusted proxy's https", proxiedTLS: true}} {
		sel := &reverseproxy.CookieHashSelection{Name: "srv", Secret: "s3cret", MaxAge: caddy.Duration(v.maxAge)}
		if err := sel.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		policy := &relayconfig.LBPolicy{Policy: "cookie", Name: "srv", Secret: "s3cret", MaxAge: caddy.Duration(v.maxAge)}
		p := newUpstreamPool(list, policy)
		request := func(cookie string) *http.Request {
			r := httptest.NewRequest(http.MethodGet, "/ws", nil)
			if v.tls {
				r.TLS = &tls.ConnectionState{HandshakeComplete: true}
			}
			vars := map[string]any{}
			if v.proxiedTLS {
				r.Header.Add("X-Forwarded-Proto", "http")
				r.Header.Add("X-Forwarded-Proto", "https")
				vars[caddyhttp.TrustedProxyVarKey] = true
			}
			if cookie != "" {
				r.Header.Set("Cookie", cookie)
			}
			return r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, vars))
		}
		reached := map[int]bool{}
		for range 40 {
			// reverse_proxy's cookie, read by the relay.
			rec := httptest.NewRecorder()
			want := sel.Select(rp, request(""), rec)
			set := rec.Header().Get("Set-Cookie")
			r := request(strings.Split(set, ";")[0])
			got := p.order(r, time.Now())
			if addrs[got[0]] != want.Dial {
				t.Fatalf("%s: reverse_proxy chose %s and set %q; with that cookie the relay chose %s", v.name, want.Dial, set, addrs[got[0]])
			}
			if c := p.stickyCookie(r, got[0]); c != nil {
				t.Fatalf("%s: the cookie named %s already, and the relay sets %q", v.name, want.Dial, c)
			}
			// The relay's cookie, read by reverse_proxy.
			r = request("")
			idx := p.order(r, time.Now())[0]
			reached[idx] = true
			c := p.stickyCookie(r, idx)
			rec = httptest.NewRecorder()
			sel.Select(rp, r, rec) // the same attributes for its own pick
			rpSet := rec.Header().Get("Set-Cookie")
			if c == nil || strings.SplitN(c.String(), ";", 2)[1] != strings.SplitN(rpSet, ";", 2)[1] {
				t.Fatalf("%s: the relay sets %v, reverse_proxy %q: want the same attributes", v.name, c, rpSet)
			}
			if back := sel.Select(rp, request(c.Name+"="+c.Value), httptest.NewRecorder()); back.Dial != addrs[idx] {
				t.Fatalf("%s: the relay chose %s and set %q; reverse_proxy reads it as %s", v.name, addrs[idx], c, back.Dial)
			}
		}
		if len(reached) < 3 {
			t.Errorf("%s: 40 upgrades without a cookie reached %v (the fallback is random)", v.name, reached)
		}
	}
	// A cookie for an upstream that failed: it goes last, and the one
	// that answers gets the cookie.
	p := newUpstreamPool(list, &relayconfig.LBPolicy{Policy: "cookie", Fallback: &relayconfig.LBPolicy{Policy: "first"}})
	r := httptest.NewRequest(http.MethodGet, "/ws", nil)
	r.AddCookie(&http.Cookie{Name: "lb", Value: cookieValue("", addrs[2])})
	if o := p.order(r, time.Now()); !slices.Equal(o, []int{2, 0, 1, 3}) {
		t.Fatalf("cookie for upstream 2, fallback first: order %v", o)
	}
	p.markFailed(2, time.Now())
	o := p.order(r, time.Now())
	if !slices.Equal(o, []int{0, 1, 3, 2}) {
		t.Fatalf("cookie for upstream 2, which failed: order %v, want it last", o)
	}
	if c := p.stickyCookie(r, o[0]); c == nil || c.Value != cookieValue("", addrs[0]) {
		t.Fatalf("relayed to upstream 0 with a cookie for 2: sets %v", c)
	}
	r.Header.Set("Cookie", "lb=forged")
	if o := p.order(r, time.Now()); o[0] != 0 || p.stickyCookie(r, 0) == nil {
		t.Fatalf("a cookie naming no upstream: order %v, want the fallback's and a new cookie", o)
	}
	// The cookie's upstream comes first whatever its weight, as in
	// reverse_proxy; a policy other than cookie sets none.
	w := newUpstreamPool(list, &relayconfig.LBPolicy{Policy: "cookie",
		Fallback: &relayconfig.LBPolicy{Policy: "weighted_round_robin", Weights: []int{1, 0, 0, 0}}})
	r.Header.Set("Cookie", "lb="+cookieValue("", addrs[3]))
	if o := w.order(r, time.Now()); !slices.Equal(o, []int{3, 0}) {
		t.Fatalf("cookie for upstream 3 of weight 0: order %v, want 3 then 0", o)
	}
	h := newUpstreamPool(list, &relayconfig.LBPolicy{Policy: "header", Field: "X-User",
		Fallback: &relayconfig.LBPolicy{Policy: "cookie"}})
	r.Header.Set("X-User", "alice")
	if c := h.stickyCookie(r, 1); c != nil {
		t.Fatalf("header policy with its field: sets %v", c)
	}
	r.Header.Del("X-User")
	r.Header.Del("Cookie")
	if c := h.stickyCookie(r, 1); c == nil || c.Value != cookieValue("", addrs[1]) {
		t.Fatalf("header policy without its field, cookie fallback: sets %v", c)
	}
}

// TestCookieFallbackTurns: upgrades whose cookie names an upstream do
// not use up the turns of the cookie policy's round-robin fallback, as
// reverse_proxy asks its fallback only when no cookie matches: new
// clients get the same upstreams from both, however many returning
// clients come in between. round_robin and weighted_round_robin pick as
// reverse_proxy's from the first upgrade on.
func TestCookieFallbackTurns(t *testing.T) {
	addrs := []string{"cf-a:1", "cf-b:1", "cf-c:1"}
	list, rp := upstreamsAsReverseProxy(t, addrs)
	for _, fb := range []string{`{"policy":"weighted_round_robin","weights":[1,2,1]}`, `{"policy":"round_robin"}`} {
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		sel := &reverseproxy.CookieHashSelection{FallbackRaw: json.RawMessage(fb)}
		if err := sel.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		var fpol relayconfig.LBPolicy
		if err := json.Unmarshal([]byte(fb), &fpol); err != nil {
			t.Fatal(err)
		}
		p := newUpstreamPool(list, &relayconfig.LBPolicy{Policy: "cookie", Fallback: &fpol})
		returning := "lb=" + cookieValue("", addrs[0])
		for i := range 24 {
			r := httptest.NewRequest(http.MethodGet, "/ws", nil)
			if i%3 == 1 {
				r.Header.Set("Cookie", returning)
			}
			want := sel.Select(rp, r, httptest.NewRecorder()).Dial
			if got := addrs[p.order(r, time.Now())[0]]; got != want {
				t.Fatalf("fallback %s, upgrade %d (cookie %q): the relay picks %s, reverse_proxy %s", fb, i, r.Header.Get("Cookie"), got, want)
			}
		}
		cancel()
	}
	// round_robin alone, as reverse_proxy's.
	p := newUpstreamPool(list, nil)
	rr := &reverseproxy.RoundRobinSelection{}
	for i := range 7 {
		if got, want := addrs[p.order(nil, time.Now())[0]], rr.Select(rp, nil, nil).Dial; got != want {
			t.Fatalf("round_robin, upgrade %d: the relay picks %s, reverse_proxy %s", i, got, want)
		}
	}
}

// upstreamsAsReverseProxy parses addrs as the relay's upstreams and as
// reverse_proxy's pool of the same addresses.
func upstreamsAsReverseProxy(t *testing.T, addrs []string) ([]relayconfig.Upstream, reverseproxy.UpstreamPool) {
	t.Helper()
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
	return list, rp
}
