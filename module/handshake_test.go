package wsrelay

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

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
	out := backendRequest(r, up)
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
		if got := backendRequest(rr, u).URL.RequestURI(); got != tc.want {
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
	out := backendRequest(r, up)
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
