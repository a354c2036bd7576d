package wsrelay

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
)

// TestHeaderPolicyAsReverseProxyServes: for the same request and the
// same `lb_policy header <field>`, the relay picks the backend that a
// running reverse_proxy sends the request to. reverse_proxy selects on
// its prepared request (hop-by-hop fields removed, X-Forwarded-* and Via
// set as they go to the backend), not on the client's header fields.
// (A field "host" in lower case is left out: the relay hashes r.Host for
// it, as documented; reverse_proxy uses the fallback.)
func TestHeaderPolicyAsReverseProxyServes(t *testing.T) {
	var list []relayconfig.Upstream
	var dials []any
	for i := range 5 {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, i) }))
		t.Cleanup(srv.Close)
		addr := srv.Listener.Addr().String()
		u, err := relayconfig.ParseUpstream(addr)
		if err != nil {
			t.Fatal(err)
		}
		list = append(list, u)
		dials = append(dials, map[string]any{"dial": addr})
	}
	fields := []string{"X-User", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Via", "Host", "Keep-Alive", "Te"}
	var routes []any
	for _, f := range fields {
		routes = append(routes, map[string]any{
			"match": []any{map[string]any{"path": []string{"/" + f}}},
			"handle": []any{map[string]any{"handler": "reverse_proxy", "upstreams": dials,
				"load_balancing": map[string]any{"selection_policy": map[string]any{"policy": "header", "field": f,
					"fallback": map[string]any{"policy": "first"}}}}},
		})
	}
	port := freePort(t)
	loadRoutes(t, port, routes...)
	t.Cleanup(func() { _ = caddy.Stop() })
	for _, f := range fields {
		policy := &relayconfig.LBPolicy{Policy: "header", Field: f, Fallback: &relayconfig.LBPolicy{Policy: "first"}}
		pool := newUpstreamPool(list, policy)
		for i := range 30 {
			hdr := http.Header{"X-User": {fmt.Sprint("u", i)}}
			if i%2 == 1 { // a client's own values, from no trusted proxy
				hdr.Set("X-Forwarded-For", fmt.Sprint("10.9.9.", i))
				hdr.Set("X-Forwarded-Host", fmt.Sprint("evil", i))
				hdr.Set("Keep-Alive", fmt.Sprint("timeout=", i))
				hdr.Set("Via", fmt.Sprint("1.1 p", i))
				hdr.Set("Te", "trailers, x")
			}
			host := fmt.Sprintf("h%d.example", i)
			req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/%s", port, f), nil)
			req.Host, req.Header = host, hdr.Clone()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			// The same request as the relay's handler gets it.
			r := httptest.NewRequest(http.MethodGet, "/"+f, nil)
			r.Host, r.RemoteAddr, r.Header = host, "127.0.0.1:50000", hdr.Clone()
			r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), nil, &caddyhttp.Server{})
			if got := pool.order(r, time.Now())[0]; string(body) != strconv.Itoa(got) {
				t.Errorf("header %s, request %d: reverse_proxy sent it to backend %s, the relay picks %d", f, i, body, got)
				break
			}
		}
	}
}
