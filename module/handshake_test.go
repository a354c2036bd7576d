package wsrelay

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
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

func TestIsUpgrade(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(r *http.Request)
		want   bool
	}{
		{"upgrade", nil, true},
		{"case-insensitive tokens", func(r *http.Request) { r.Header.Set("Connection", "UPGRADE"); r.Header.Set("Upgrade", "websocket") }, true},
		{"upgrade among other protocols", func(r *http.Request) { r.Header.Set("Upgrade", "h2c, websocket") }, true},
		{"POST", func(r *http.Request) { r.Method = http.MethodPost }, false},
		{"no Connection upgrade", func(r *http.Request) { r.Header.Set("Connection", "keep-alive") }, false},
		{"other upgrade", func(r *http.Request) { r.Header.Set("Upgrade", "h2c") }, false},
		{"no headers", func(r *http.Request) { r.Header = http.Header{} }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := isUpgrade(upgradeRequest(tc.mutate)); got != tc.want {
				t.Fatalf("isUpgrade = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCheckClientHandshake(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(r *http.Request)
		status int
	}{
		{"good", nil, 0},
		{"version 8", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Version", "8") }, http.StatusUpgradeRequired},
		{"no version", func(r *http.Request) { r.Header.Del("Sec-WebSocket-Version") }, http.StatusUpgradeRequired},
		{"no key", func(r *http.Request) { r.Header.Del("Sec-WebSocket-Key") }, http.StatusBadRequest},
		{"short key", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Key", "c2hvcnQ=") }, http.StatusBadRequest},
		{"key not base64", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Key", "!!!!!!!!!!!!!!!!!!!!!!==") }, http.StatusBadRequest},
		{"two keys", func(r *http.Request) { r.Header.Add("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==") }, http.StatusBadRequest},
		{"HTTP/1.0", func(r *http.Request) { r.ProtoMinor = 0 }, http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, reason := checkClientHandshake(upgradeRequest(tc.mutate))
			if status != tc.status {
				t.Fatalf("status %d (%s), want %d", status, reason, tc.status)
			}
			if status != 0 && reason == "" {
				t.Fatalf("status %d without a reason", status)
			}
		})
	}
}

// TestAcceptFor uses the example of RFC 6455 1.3.
func TestAcceptFor(t *testing.T) {
	if got := acceptFor("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("acceptFor = %q", got)
	}
}

func TestAllowedRSV(t *testing.T) {
	tests := []struct {
		ext  []string
		want byte
	}{
		{nil, 0},
		{[]string{""}, 0},
		{[]string{"permessage-deflate; client_max_window_bits=15"}, 0x4},
		{[]string{"Permessage-Deflate"}, 0x4},
		{[]string{"x-custom"}, 0x7},
	}
	for _, tc := range tests {
		if got := allowedRSV(tc.ext); got != tc.want {
			t.Errorf("allowedRSV(%q) = %#x, want %#x", tc.ext, got, tc.want)
		}
	}
}

func TestRemoveHopHeaders(t *testing.T) {
	h := http.Header{}
	h.Set("Connection", "Upgrade, X-Hop")
	h.Set("X-Hop", "1")
	h.Set("Keep-Alive", "timeout=5")
	h.Set("Origin", "https://app")
	h.Set("Cookie", "a=b")
	removeHopHeaders(h)
	for _, k := range []string{"Connection", "X-Hop", "Keep-Alive"} {
		if h.Get(k) != "" {
			t.Errorf("%s kept", k)
		}
	}
	for _, k := range []string{"Origin", "Cookie"} {
		if h.Get(k) == "" {
			t.Errorf("%s removed", k)
		}
	}
}

func TestBackendRequest(t *testing.T) {
	r := upgradeRequest(func(r *http.Request) {
		r.RemoteAddr = "192.0.2.7:5555"
		r.Header.Set("Origin", "https://app.example")
		r.Header.Set("X-Forwarded-For", "203.0.113.1")
		r.Header.Set("Sec-WebSocket-Protocol", "chat")
	})
	up, err := ParseUpstream("ws://backend:9000/base")
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
		u, err := ParseUpstream(tc.upstream)
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

// FuzzCheckClientHandshake feeds arbitrary header values to the upgrade
// checks: no panic, and an accepted key always decodes to 16 bytes.
func FuzzCheckClientHandshake(f *testing.F) {
	f.Add("Upgrade", "websocket", "13", "dGhlIHNhbXBsZSBub25jZQ==")
	f.Add("keep-alive, upgrade", "WebSocket", "8", "")
	f.Add("", "", "13 ", "AAAAAAAAAAAAAAAAAAAAAA==")
	f.Fuzz(func(t *testing.T, conn, upgrade, version, key string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header["Connection"] = []string{conn}
		r.Header["Upgrade"] = []string{upgrade}
		r.Header["Sec-Websocket-Version"] = []string{version}
		r.Header["Sec-Websocket-Key"] = []string{key}
		_ = isUpgrade(r)
		if status, _ := checkClientHandshake(r); status == 0 && !validKey(key) {
			t.Fatalf("accepted key %q", key)
		}
	})
}
