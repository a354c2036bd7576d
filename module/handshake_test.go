package wsrelay

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
)

func upgradeRequest(mutate func(r *http.Request)) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://example.com/chat?room=1", nil)
	r.Header.Set("Connection", "keep-alive, Upgrade")
	r.Header.Set("Upgrade", "WebSocket")
	r.Header.Set("Sec-WebSocket-Version", "13")
	r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	if mutate != nil {
		mutate(r)
	}
	return r
}

func TestBackendRequest(t *testing.T) {
	r := upgradeRequest(func(r *http.Request) {
		r.RemoteAddr = "192.0.2.7:5555"
		r.Header.Set("Origin", "https://app.example")
		r.Header.Set("X-Forwarded-For", "203.0.113.1")
		r.Header.Set("Sec-WebSocket-Protocol", "chat")
	})
	up, err := relayconfig.ParseUpstream("ws://backend:9000/base")
	if err != nil {
		t.Fatal(err)
	}
	out := backendRequest(r, up, nil)
	if got := out.URL.RequestURI(); got != "/base/chat?room=1" {
		t.Errorf("request URI %q", got)
	}
	// Escapes in the upstream's path and in the request's both reach the
	// backend as they were written, once.
	for _, tc := range []struct{ upstream, path, want string }{
		{"ws://b:1/a%20b", "/chat", "/a%20b/chat?room=1"},
		{"ws://b:1/p", "/a%2Fb", "/p/a%2Fb?room=1"},
		{"ws://b:1/a%2Fb", "/c%20d", "/a%2Fb/c%20d?room=1"},
		{"ws://b:1", "/a%2Fb", "/a%2Fb?room=1"},
	} {
		u, err := relayconfig.ParseUpstream(tc.upstream)
		if err != nil {
			t.Fatal(err)
		}
		rr := upgradeRequest(func(r *http.Request) {
			var err error
			if r.URL, err = url.Parse("http://example.com" + tc.path + "?room=1"); err != nil {
				t.Fatal(err)
			}
		})
		if got := backendRequest(rr, u, nil).URL.RequestURI(); got != tc.want {
			t.Errorf("upstream %s, request path %s: request URI %q, want %q", tc.upstream, tc.path, got, tc.want)
		}
	}
	checks := map[string]string{
		"X-Forwarded-For":        "192.0.2.7", // untrusted: replaced
		"X-Forwarded-Proto":      "http",
		"X-Forwarded-Host":       "example.com",
		"Origin":                 "https://app.example",
		"Sec-WebSocket-Protocol": "chat",
		"Sec-WebSocket-Key":      "dGhlIHNhbXBsZSBub25jZQ==",
		"Connection":             "Upgrade",
		"Upgrade":                "websocket",
	}
	for k, want := range checks {
		if got := out.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

// TestBackendRequestKeepsHandshakeHeaders: a client whose Connection
// header names Sec-WebSocket-Key or -Version (hop-by-hop, so removed)
// still has them reach the backend, which could not answer without them.
func TestBackendRequestKeepsHandshakeHeaders(t *testing.T) {
	r := upgradeRequest(func(r *http.Request) {
		r.Header.Set("Connection", "Upgrade, Sec-WebSocket-Key, Sec-WebSocket-Version, X-Hop")
		r.Header.Set("X-Hop", "1")
	})
	up, err := relayconfig.ParseUpstream("ws://backend:9000")
	if err != nil {
		t.Fatal(err)
	}
	out := backendRequest(r, up, nil)
	for k, want := range map[string]string{
		"Sec-WebSocket-Key":     "dGhlIHNhbXBsZSBub25jZQ==",
		"Sec-WebSocket-Version": "13",
		"Connection":            "Upgrade",
		"X-Hop":                 "",
	} {
		if got := out.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

// TestForwardedHeaders: X-Forwarded-For, -Proto and -Host as Caddy's
// reverse_proxy sends them: values that came in count only from a trusted
// proxy (its For list extended, the last of its Proto and Host), each
// goes out as one header, a Unix socket peer ("@") adds no address, and
// an untrusted peer without an address gets none of the three.
func TestForwardedHeaders(t *testing.T) {
	in := http.Header{
		"X-Forwarded-For":   {"203.0.113.1", "198.51.100.2"},
		"X-Forwarded-Proto": {"http", "https"},
		"X-Forwarded-Host":  {"evil.example", "app.example"},
	}
	tests := []struct {
		name    string
		remote  string
		trusted bool
		in      http.Header
		want    map[string][]string // nil: header absent
	}{
		{"untrusted, headers replaced", "192.0.2.7:5555", false, in, map[string][]string{
			"X-Forwarded-For": {"192.0.2.7"}, "X-Forwarded-Proto": {"http"}, "X-Forwarded-Host": {"example.com"}}},
		{"trusted, list extended, last values kept", "192.0.2.7:5555", true, in, map[string][]string{
			"X-Forwarded-For":   {"203.0.113.1, 198.51.100.2, 192.0.2.7"},
			"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"app.example"}}},
		{"trusted, nothing came in", "192.0.2.7:5555", true, http.Header{}, map[string][]string{
			"X-Forwarded-For": {"192.0.2.7"}, "X-Forwarded-Proto": {"http"}, "X-Forwarded-Host": {"example.com"}}},
		{"IPv6 zone cut", "[fe80::1%eth0]:5555", false, http.Header{}, map[string][]string{
			"X-Forwarded-For": {"fe80::1"}, "X-Forwarded-Proto": {"http"}, "X-Forwarded-Host": {"example.com"}}},
		{"Unix socket peer, untrusted", "@", false, in, map[string][]string{
			"X-Forwarded-For": nil, "X-Forwarded-Proto": nil, "X-Forwarded-Host": nil}},
		{"Unix socket peer, trusted", "@", true, in, map[string][]string{
			"X-Forwarded-For":   {"203.0.113.1, 198.51.100.2"},
			"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"app.example"}}},
		{"address not host:port", "somewhere", false, in, map[string][]string{
			"X-Forwarded-For": nil, "X-Forwarded-Proto": nil, "X-Forwarded-Host": nil}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := upgradeRequest(func(r *http.Request) {
				r.RemoteAddr = tc.remote
				for k, v := range tc.in {
					r.Header[k] = append([]string(nil), v...)
				}
			})
			vars := map[string]any{caddyhttp.TrustedProxyVarKey: tc.trusted}
			r = r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, vars))
			up, _ := relayconfig.ParseUpstream("b:1")
			out := backendRequest(r, up, nil)
			for k, want := range tc.want {
				if got := out.Header[k]; !slices.Equal(got, want) {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

// TestHeaderUp: header_up deletes, sets and adds fields of the request
// to the backend, in that order, with the request's placeholders and the
// upstream's, as reverse_proxy names them; Host sets the request's host.
func TestHeaderUp(t *testing.T) {
	r := upgradeRequest(func(r *http.Request) {
		r.RemoteAddr = "192.0.2.7:5555"
		r.Header.Set("Cookie", "session=1")
		r.Header.Set("X-Keep", "kept")
	})
	repl := caddy.NewReplacer()
	repl.Set("http.request.host", r.Host)
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
	up, _ := relayconfig.ParseUpstream("wss://backend.internal:8443")
	ops := &relayconfig.HeaderOps{
		Delete: []string{"cookie"},
		Set: map[string]string{
			"host":          "{http.reverse_proxy.upstream.hostport}",
			"X-Origin-Host": "{http.request.host} via {http.reverse_proxy.upstream.host}:{http.reverse_proxy.upstream.port}",
			"X-Keep":        "replaced",
		},
		Add: map[string][]string{"X-Multi": {"a", "b"}, "X-Keep": {"added"}},
	}
	out := backendRequest(r, up, ops)
	if out.Host != "backend.internal:8443" {
		t.Errorf("Host %q, want the upstream's host:port", out.Host)
	}
	for k, want := range map[string][]string{
		"Cookie":            nil,
		"X-Origin-Host":     {"example.com via backend.internal:8443"},
		"X-Keep":            {"replaced", "added"},
		"X-Multi":           {"a", "b"},
		"Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="},
		"Connection":        {"Upgrade"},
	} {
		if got := out.Header[k]; !slices.Equal(got, want) {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if out := backendRequest(r, up, nil); out.Host != "example.com" {
		t.Errorf("without header_up, Host %q, want the client's", out.Host)
	}
}
