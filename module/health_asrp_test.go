package wsrelay

// Health checks against reverse_proxy's: each holds
// the relay's checks against what reverse_proxy's active health checks,
// run in-process from the same settings against the same backend, do.

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
)

// reverseProxyWith runs Caddy in-process with one reverse_proxy to
// upstream whose active health checks are active (reverse_proxy's JSON),
// and returns a func that reports whether reverse_proxy takes upstream
// as healthy: a request through it reaches the backend's / (200
// "proxied") rather than 503 (no upstream available).
func reverseProxyWith(t *testing.T, upstream string, active map[string]any) func() bool {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().String()
	ln.Close()
	cfg := map[string]any{
		"admin": map[string]any{"disabled": true, "config": map[string]any{"persist": false}},
		"apps": map[string]any{"http": map[string]any{"servers": map[string]any{"rp": map[string]any{
			"listen": []string{listen},
			"routes": []any{map[string]any{"handle": []any{map[string]any{
				"handler":       "reverse_proxy",
				"upstreams":     []any{map[string]any{"dial": upstream}},
				"health_checks": map[string]any{"active": active},
			}}}},
		}}}},
	}
	b, _ := json.Marshal(cfg)
	if err := caddy.Load(b, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	return func() bool {
		resp, err := http.Get("http://" + listen + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == 200 && string(body) == "proxied"
	}
}

// proxiedRoot answers / with 200 "proxied", for reverseProxyWith.
func proxiedRoot(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.Path != "/" {
		return false
	}
	_, _ = io.WriteString(w, "proxied")
	return true
}

// TestHealthEmptyHostFallsBack: a health_headers Host that comes
// out empty leaves reverse_proxy's check with the upstream's address as
// Host (net/http takes the URL's host), and the upstream answering 200
// healthy. Empty comes of a Host line without a value, of an {env.*}
// placeholder whose variable is unset, and of a placeholder the checks
// do not know, such as `Host {upstream_hostport}` (the Caddyfile's
// shorthand for {http.reverse_proxy.upstream.hostport}), which an
// operator writes to send each upstream its own name. The relay's
// checks, plain and upgrade, do the same (they failed before they were
// sent, and every upstream was unhealthy while all answered 200).
func TestHealthEmptyHostFallsBack(t *testing.T) {
	for _, host := range []string{"", "{env.WSR_REVIEW_SURELY_UNSET}", "{http.reverse_proxy.upstream.hostport}"} {
		t.Run(host, func(t *testing.T) {
			hdr := map[string][]string{"Host": {host}}
			rpBackend := newRecordingServer(t, proxiedRoot)
			healthy := reverseProxyWith(t, rpBackend.addr(), map[string]any{"uri": "/healthz", "interval": "50ms", "headers": hdr})
			waitFor(t, 2*time.Second, "reverse_proxy's check", func() bool { return len(rpBackend.requests()) > 0 })
			time.Sleep(150 * time.Millisecond)
			if got := rpBackend.requests()[0]; got.host != rpBackend.addr() || !healthy() {
				t.Fatalf("premise: reverse_proxy's check had Host %q (want %q) and healthy=%v (want true)", got.host, rpBackend.addr(), healthy())
			}

			for _, upgrade := range []bool{false, true} {
				rs := newRecordingServer(t, nil)
				hc := &relayconfig.HealthChecks{URI: "/healthz", Interval: caddy.Duration(50 * time.Millisecond), Headers: hdr}
				if upgrade {
					hc.Upgrade, hc.ExpectStatus = true, 2 // the 200 answer is healthy
				}
				h := provisionHealth(t, hc, rs.addr())
				time.Sleep(300 * time.Millisecond)
				if n := len(rs.requests()); n == 0 || h.pool.unhealthy[0].Load() {
					t.Errorf("relay (upgrade %v): Host %q: %d checks reached the upstream, unhealthy=%v; "+
						"want them sent with the upstream's address as Host, and healthy (as reverse_proxy)", upgrade, host, n, h.pool.unhealthy[0].Load())
				}
			}
		})
	}
}

// redirectChain answers /r/<i> with a 302 to /r/<i+1> up to n, and
// /r/<n> with 200.
func redirectChain(n int) func(w http.ResponseWriter, r *http.Request) bool {
	return func(w http.ResponseWriter, r *http.Request) bool {
		var i int
		if _, err := fmt.Sscanf(r.URL.Path, "/r/%d", &i); err != nil {
			return proxiedRoot(w, r)
		}
		if i < n {
			http.Redirect(w, r, fmt.Sprintf("/r/%d", i+1), http.StatusFound)
			return true
		}
		return false // 200
	}
}

// TestHealthRedirectsUnbounded: reverse_proxy's CheckRedirect returns
// nil when following, so net/http's 10-redirect default (which only a
// nil CheckRedirect gets) does not apply: it follows any number within
// health_timeout. An endpoint behind 11 redirects is healthy for
// reverse_proxy, and for the relay (which stopped at 10 before).
func TestHealthRedirectsUnbounded(t *testing.T) {
	const hops = 11
	rpBackend := newRecordingServer(t, redirectChain(hops))
	healthy := reverseProxyWith(t, rpBackend.addr(), map[string]any{"uri": "/r/0", "interval": "1h", "follow_redirects": true})
	waitFor(t, 2*time.Second, "reverse_proxy's check to the chain's end", func() bool {
		return slices.ContainsFunc(rpBackend.requests(), func(r seenRequest) bool { return r.uri == fmt.Sprintf("/r/%d", hops) })
	})
	time.Sleep(100 * time.Millisecond)
	if !healthy() {
		t.Fatalf("premise: reverse_proxy takes the upstream behind %d redirects as unhealthy", hops)
	}

	rs := newRecordingServer(t, redirectChain(hops))
	h := provisionHealth(t, &relayconfig.HealthChecks{URI: "/r/0", Interval: caddy.Duration(time.Hour), FollowRedirects: true}, rs.addr())
	waitFor(t, 2*time.Second, "the relay's check", func() bool { return len(rs.requests()) >= 10 })
	time.Sleep(200 * time.Millisecond)
	if h.pool.unhealthy[0].Load() {
		t.Errorf("relay: %d requests then unhealthy; reverse_proxy follows all %d redirects and is healthy", len(rs.requests()), hops)
	}
}

// TestHealthHeaderNamesMerged: two health_headers lines
// whose names differ only in case (`X-Token a` and `x-token b`, two keys
// of the JSON headers) are one field to reverse_proxy, which canonicalizes
// its headers at Provision and sends both values; so does the relay (it
// lost one key's values, which one by map order).
func TestHealthHeaderNamesMerged(t *testing.T) {
	hdr := map[string][]string{"X-Token": {"a"}, "x-token": {"b"}}
	want := "a,b"
	values := func(r seenRequest) string {
		v := slices.Clone(r.header.Values("X-Token"))
		slices.Sort(v)
		return strings.Join(v, ",")
	}

	rpBackend := newRecordingServer(t, proxiedRoot)
	reverseProxyWith(t, rpBackend.addr(), map[string]any{"uri": "/healthz", "interval": "1h", "headers": hdr})
	waitFor(t, 2*time.Second, "reverse_proxy's check", func() bool { return len(rpBackend.requests()) > 0 })
	if got := values(rpBackend.requests()[0]); got != want {
		t.Fatalf("premise: reverse_proxy's check has X-Token %q, want %q", got, want)
	}

	for i := range 8 { // map order: one run may keep either key's value
		rs := newRecordingServer(t, nil)
		provisionHealth(t, &relayconfig.HealthChecks{URI: "/healthz", Interval: caddy.Duration(time.Hour), Headers: hdr}, rs.addr())
		waitFor(t, 2*time.Second, "a check", func() bool { return len(rs.requests()) > 0 })
		if got := values(rs.requests()[0]); got != want {
			t.Fatalf("relay, run %d: X-Token %q, want %q (as reverse_proxy)", i, got, want)
		}
	}
}

// TestHealthUpgradeRefusalBodyUnread: an upgrade check answered by a
// status other than the expected 101 is decided by its status line,
// without reading the answer's body (resp.Body.Close of an answer read
// by http.ReadResponse, chunked or with a Content-Length and no
// Connection: close, would read it to its end). An endpoint that answers the upgrade with an endless (or
// merely large and slow) body holds every check until health_timeout,
// and the upstream is marked unhealthy only then. The relay's check ends
// on the status line.
func TestHealthUpgradeRefusalBodyUnread(t *testing.T) {
	var first atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first.CompareAndSwap(0, time.Now().UnixNano())
		w.WriteHeader(http.StatusOK) // not a 101: the check fails on this line
		for r.Context().Err() == nil {
			if _, err := io.WriteString(w, "event: tick\n\n"); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			time.Sleep(20 * time.Millisecond)
		}
	}))
	t.Cleanup(srv.Close)
	const timeout = 1500 * time.Millisecond
	h := provisionHealth(t, &relayconfig.HealthChecks{URI: "/ws", Upgrade: true, Interval: caddy.Duration(time.Hour),
		Timeout: caddy.Duration(timeout)}, strings.TrimPrefix(srv.URL, "http://"))
	waitFor(t, 3*time.Second, "unhealthy", func() bool { return h.pool.unhealthy[0].Load() })
	if d := time.Since(time.Unix(0, first.Load())); d > timeout/2 {
		t.Errorf("unhealthy %s after the 200 came (health_timeout %s): the check read the refusal's body until its deadline", d.Round(time.Millisecond), timeout)
	}
}
