package wsrelay

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
	"github.com/websocket-relay/websocket_relay/module/upgrade"
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

// TestHeaderUp: header_up changes the request to the backend as
// reverse_proxy's header_up changes its request (Caddy's own header
// operations, in their order: add, set, delete, replace; wildcards;
// unknown placeholders kept), with the upstream's placeholders, "Host"
// as the request's host (an empty one falls back to the upstream's
// address), and the upgrade's own fields set again after it.
func TestHeaderUp(t *testing.T) {
	r := upgradeRequest(func(r *http.Request) {
		r.RemoteAddr = "192.0.2.7:5555"
		r.Header.Set("Cookie", "s=1")
		r.Header.Set("Referer", "http://app.example/x")
	})
	repl := caddyhttp.NewTestReplacer(r)
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
	up, _ := relayconfig.ParseUpstream("wss://backend.internal:8443")
	conf := &relayconfig.HeaderOps{
		Add: map[string][]string{"Cookie": {"s=2"}, "X-Tag": {"edge"}},
		Set: map[string][]string{
			"Host":   {"{http.reverse_proxy.upstream.hostport}"},
			"X-Tag":  {"set"},
			"X-Via":  {"{http.request.host} via {http.reverse_proxy.upstream.host}:{http.reverse_proxy.upstream.port}"},
			"X-Json": {`{"a":1}`},
		},
		Delete:  []string{"Cookie", "X-Forwarded-*", "*-Websocket-Key"},
		Replace: map[string][]relayconfig.Replacement{"Referer": {{SearchRegexp: "^http://", Replace: "https://"}}},
	}
	ops, err := headerOps(caddy.Context{}, conf)
	if err != nil {
		t.Fatal(err)
	}
	out := backendRequest(r, up, ops)
	if out.Host != "backend.internal:8443" {
		t.Errorf("Host %q, want the upstream's host:port", out.Host)
	}
	// What Caddy's operations make of the same request's headers.
	ref := backendRequest(r, up, nil).Header
	ref.Set("Host", "example.com")
	ops.ApplyTo(ref, repl)
	ref.Del("Host")
	for _, k := range []string{"Cookie", "X-Tag", "X-Via", "X-Json", "Referer", "X-Forwarded-For"} {
		if got := out.Header[k]; !slices.Equal(got, ref[k]) {
			t.Errorf("%s = %q, reverse_proxy's operations give %q", k, got, ref[k])
		}
	}
	for k, want := range map[string][]string{
		"X-Via":             {"example.com via backend.internal:8443"},
		"X-Json":            {`{"a":1}`},
		"Referer":           {"https://app.example/x"},
		"X-Forwarded-For":   nil,
		"Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}, // set again after the delete
		"Connection":        {"Upgrade"},
	} {
		if got := out.Header[k]; !slices.Equal(got, want) {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if out := backendRequest(r, up, nil); out.Host != "example.com" {
		t.Errorf("without header_up, Host %q, want the client's", out.Host)
	}
	// A host a placeholder left empty falls back to the upstream's.
	empty, _ := headerOps(caddy.Context{}, &relayconfig.HeaderOps{Set: map[string][]string{"Host": {"{http.request.header.X-Target}"}}})
	if out := backendRequest(r, up, empty); out.Host != "backend.internal:8443" {
		t.Errorf("Host set to an empty placeholder: %q, want the upstream's", out.Host)
	}
}

// TestHeaderUpHostInjection: a Host that a placeholder filled with CR
// and LF (a percent-decoded query value) fails the handshake; it is not
// written as a header line of its own.
func TestHeaderUpHostInjection(t *testing.T) {
	r := upgradeRequest(func(r *http.Request) { r.URL.RawQuery = "tenant=a.internal%0d%0aX-Injected:%20yes" })
	repl := caddyhttp.NewTestReplacer(r)
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
	ops, err := headerOps(caddy.Context{}, &relayconfig.HeaderOps{Set: map[string][]string{"Host": {"{http.request.uri.query.tenant}"}}})
	if err != nil {
		t.Fatal(err)
	}
	up, _ := relayconfig.ParseUpstream("b:1")
	var wire bytes.Buffer
	_, err = upgrade.Exchange(bufio.NewWriter(&wire), bufio.NewReader(strings.NewReader("")), backendRequest(r, up, ops), "k")
	if err == nil || !strings.Contains(err.Error(), "invalid Host") || wire.Len() != 0 {
		t.Fatalf("error %v, wrote %q; want an invalid Host and nothing written", err, wire.String())
	}
}

// TestBackendHost: the Host the backend gets. The client's by default; as
// header_up leaves it, in punycode as net/http sends it; when header_up
// deletes it, the upstream's address without a scheme's default port, as
// reverse_proxy's request goes (a Unix socket's: the client's). A
// client's Content-Length never goes on: an upgrade has no body.
func TestBackendHost(t *testing.T) {
	for _, tc := range []struct {
		name, upstream string
		conf           *relayconfig.HeaderOps
		want           string
	}{
		{"client's", "ws://b:9000", nil, "example.com"},
		{"set", "ws://b:9000", &relayconfig.HeaderOps{Set: map[string][]string{"Host": {"x.internal:81"}}}, "x.internal:81"},
		{"IDN", "ws://b:9000", &relayconfig.HeaderOps{Set: map[string][]string{"Host": {"bücher.example"}}}, "xn--bcher-kva.example"},
		{"added twice, the last", "ws://b:9000", &relayconfig.HeaderOps{Add: map[string][]string{"Host": {"a.example", "c.example"}}}, "c.example"},
		{"deleted", "ws://b:9000", &relayconfig.HeaderOps{Delete: []string{"Host"}}, "b:9000"},
		{"every field deleted", "ws://b:9000", &relayconfig.HeaderOps{Delete: []string{"*"}}, "b:9000"},
		{"deleted, wss default port", "wss://b.example", &relayconfig.HeaderOps{Delete: []string{"Host"}}, "b.example"},
		{"deleted, ws default port, IPv6", "ws://[::1]", &relayconfig.HeaderOps{Delete: []string{"Host"}}, "[::1]"},
		{"deleted, IPv6 with a zone", "ws://[fe80::1%25eth0]:9000", &relayconfig.HeaderOps{Delete: []string{"Host"}}, "[fe80::1]:9000"},
		{"deleted, IPv6 with a zone, default port", "ws://[fe80::1%25eth0]", &relayconfig.HeaderOps{Delete: []string{"Host"}}, "[fe80::1]"},
		{"deleted, Unix socket", "unix//tmp/s.sock", &relayconfig.HeaderOps{Delete: []string{"Host"}}, "example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := upgradeRequest(func(r *http.Request) { r.Header.Set("Content-Length", "5") })
			repl := caddyhttp.NewTestReplacer(r)
			r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
			ops, err := headerOps(caddy.Context{}, tc.conf)
			if err != nil {
				t.Fatal(err)
			}
			up, err := relayconfig.ParseUpstream(tc.upstream)
			if err != nil {
				t.Fatal(err)
			}
			var wire bytes.Buffer
			_, _ = upgrade.Exchange(bufio.NewWriter(&wire), bufio.NewReader(strings.NewReader("")), backendRequest(r, up, ops), "k")
			got, err := http.ReadRequest(bufio.NewReader(&wire))
			if err != nil {
				t.Fatalf("the backend cannot read the request: %v", err)
			}
			if got.Host != tc.want || got.Header.Get("Content-Length") != "" || got.Header.Get("Sec-WebSocket-Key") == "" {
				t.Fatalf("Host %q (want %q), Content-Length %q, key %q", got.Host, tc.want,
					got.Header.Get("Content-Length"), got.Header.Get("Sec-WebSocket-Key"))
			}
		})
	}
}
