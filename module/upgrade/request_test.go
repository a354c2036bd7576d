package upgrade

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// upgradeRequest is a good upgrade request as a client's bytes, read by
// net/http's server-side parser, changed by mutate (if not nil).
func upgradeRequest(mutate func(r *http.Request)) *http.Request {
	const raw = "GET /chat?room=1 HTTP/1.1\r\nHost: example.com\r\n" +
		"Connection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		panic(err)
	}
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
			if got := IsUpgrade(upgradeRequest(tc.mutate)); got != tc.want {
				t.Fatalf("IsUpgrade = %v, want %v", got, tc.want)
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
			status, reason := CheckClientHandshake(upgradeRequest(tc.mutate))
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
	if got := AcceptFor("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("AcceptFor = %q", got)
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
		if got := AllowedRSV(tc.ext); got != tc.want {
			t.Errorf("AllowedRSV(%q) = %#x, want %#x", tc.ext, got, tc.want)
		}
	}
}

func TestRemoveHopHeaders(t *testing.T) {
	h := http.Header{}
	h.Set("Connection", "Upgrade, X-Hop")
	h.Set("X-Hop", "1")
	h.Set("Keep-Alive", "timeout=5")
	h.Set("Alt-Svc", `h3=":8443"`)
	h.Set("Origin", "https://app")
	h.Set("Cookie", "a=b")
	RemoveHopHeaders(h)
	for _, k := range []string{"Connection", "X-Hop", "Keep-Alive", "Alt-Svc"} {
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

// TestExchange: the request goes out whole, a 103 before the 101 is
// dropped, the 101 is checked against the client's key (not whatever key
// the request carries), and the first frame behind it stays in the reader.
func TestExchange(t *testing.T) {
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	const ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
	var sent strings.Builder
	br := bufio.NewReader(strings.NewReader("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + ok + "\x82\x01z"))
	resp, err := Exchange(bufio.NewWriter(&sent), br, upgradeRequest(nil), key)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("Exchange = %v, %v; want the 101", resp, err)
	}
	if !strings.HasPrefix(sent.String(), "GET /chat?room=1 HTTP/1.1\r\nHost: example.com\r\n") ||
		!strings.Contains(sent.String(), "Sec-WebSocket-Key: "+key+"\r\n") || !strings.HasSuffix(sent.String(), "\r\n\r\n") {
		t.Fatalf("sent %q", sent.String())
	}
	if rest, _ := io.ReadAll(br); string(rest) != "\x82\x01z" {
		t.Fatalf("left %q in the reader, want the frame", rest)
	}
	other := upgradeRequest(func(r *http.Request) { r.Header.Set("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA==") })
	if _, err := Exchange(bufio.NewWriter(io.Discard), bufio.NewReader(strings.NewReader(ok)), other, key); err != nil {
		t.Fatalf("a 101 for the client's key, the request carrying another: %v", err)
	}
	_, err = Exchange(bufio.NewWriter(io.Discard), bufio.NewReader(strings.NewReader(ok)), upgradeRequest(nil), "AAAAAAAAAAAAAAAAAAAAAA==")
	if !errors.Is(err, ErrBadHandshake) {
		t.Fatalf("a 101 for another key than the client's: %v, want ErrBadHandshake", err)
	}
	resp, err = Exchange(bufio.NewWriter(io.Discard), bufio.NewReader(strings.NewReader(strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", Max1xx+1)+ok)), upgradeRequest(nil), key)
	if !errors.Is(err, ErrBadHandshake) {
		t.Fatalf("%d informational answers: %v, %v; want ErrBadHandshake", Max1xx+1, resp, err)
	}
}

// TestExtendedConnect: a CONNECT with :protocol websocket is an upgrade
// on HTTP/2 (Go keeps the pseudo-header in Header) and HTTP/3 (quic-go
// puts it in Proto), nothing else is; it needs version 13 and no key;
// AsUpgrade makes the backend's HTTP/1.1 GET of it.
func TestExtendedConnect(t *testing.T) {
	mk := func(method string, major int, proto string, hdr http.Header) *http.Request {
		r := httptest.NewRequest(method, "/chat?room=1", nil)
		r.ProtoMajor, r.Proto = major, proto
		for k, v := range hdr {
			r.Header[k] = v
		}
		return r
	}
	h2 := http.Header{":protocol": {"websocket"}, "Sec-Websocket-Version": {"13"}, "Origin": {"https://example.com"}}
	cases := []struct {
		name string
		r    *http.Request
		want bool
	}{
		{"HTTP/2", mk(http.MethodConnect, 2, "HTTP/2.0", h2), true},
		{"HTTP/3", mk(http.MethodConnect, 3, "websocket", http.Header{"Sec-Websocket-Version": {"13"}}), true},
		{"HTTP/2 other protocol", mk(http.MethodConnect, 2, "HTTP/2.0", http.Header{":protocol": {"webtransport"}}), false},
		{"HTTP/2 plain CONNECT", mk(http.MethodConnect, 2, "HTTP/2.0", nil), false},
		{"HTTP/3 plain CONNECT", mk(http.MethodConnect, 3, "HTTP/3.0", nil), false},
		{"HTTP/1.1 CONNECT", mk(http.MethodConnect, 1, "HTTP/1.1", h2), false},
		{"HTTP/2 GET", mk(http.MethodGet, 2, "HTTP/2.0", h2), false},
	}
	for _, c := range cases {
		if got := IsExtendedConnect(c.r); got != c.want {
			t.Errorf("%s: IsExtendedConnect = %v, want %v", c.name, got, c.want)
		}
	}
	r := cases[0].r
	if st, reason := CheckExtendedConnect(r); st != 0 {
		t.Fatalf("good extended CONNECT refused: %d %s", st, reason)
	}
	noVersion := mk(http.MethodConnect, 2, "HTTP/2.0", http.Header{":protocol": {"websocket"}})
	if st, _ := CheckExtendedConnect(noVersion); st != http.StatusUpgradeRequired {
		t.Errorf("no version: %d, want 426", st)
	}
	key := NewKey()
	if !ValidKey(key) || key == NewKey() {
		t.Fatalf("NewKey %q: not a valid fresh key", key)
	}
	out := AsUpgrade(r, key)
	if out.Method != http.MethodGet || out.ProtoMajor != 1 || !IsUpgrade(out) || out.Header.Get(":protocol") != "" ||
		out.Header.Get("Sec-WebSocket-Key") != key || out.Header.Get("Origin") != "https://example.com" ||
		out.URL.Path != "/chat" || out.URL.RawQuery != "room=1" || out.Context() != r.Context() {
		t.Fatalf("AsUpgrade: %s %s %v %v", out.Method, out.URL, out.Proto, out.Header)
	}
	if st, reason := CheckClientHandshake(out); st != 0 {
		t.Fatalf("AsUpgrade's request fails the HTTP/1.1 checks: %d %s", st, reason)
	}
	if r.Method != http.MethodConnect || r.Header.Get(":protocol") != "websocket" {
		t.Fatal("AsUpgrade changed the client's request")
	}
}
