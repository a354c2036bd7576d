package integration

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHarness runs caddy with reverse_proxy alone (no websocket_relay) and
// checks that a plain GET reaches the app: the harness works whatever the
// relay does.
func TestHarness(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOpts{})
	c := newCaddy(t, caddyOpts{})
	c.Start(fmt.Sprintf("http://:%d {\n\treverse_proxy %s\n}\n\nhttps://localhost:%d {\n\ttls internal\n\treverse_proxy %s\n}\n",
		c.HTTPPort, a.Addr, c.HTTPSPort, a.Addr))
	for _, base := range []string{c.HTTPURL(), c.HTTPSURL()} {
		getBody(t, c.HTTPClient(), base+"/hello", http.StatusOK, "hello from backend /hello")
	}
}

// getBody GETs url and checks the status and body.
func getBody(t *testing.T, cl *http.Client, url string, status int, body string) {
	t.Helper()
	resp, err := cl.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status || string(got) != body {
		t.Fatalf("GET %s: %d %q, want %d %q", url, resp.StatusCode, got, status, body)
	}
}

// TestNonUpgradeGoesToNext checks that requests that are not WebSocket
// upgrades (RFC 6455 4.2.1) reach reverse_proxy, and that one that is,
// spelled in mixed case inside token lists, is relayed.
func TestNonUpgradeGoesToNext(t *testing.T) {
	t.Parallel()
	f := startRelay(t, appOpts{}, relayConf{})
	for _, sc := range schemes {
		t.Run(sc.name, func(t *testing.T) {
			base := f.Caddy.HTTPURL()
			if sc.secure {
				base = f.Caddy.HTTPSURL()
			}
			getBody(t, f.Caddy.HTTPClient(), base+"/plain?q=1", http.StatusOK, "hello from backend /plain")
			notUpgrades := []struct {
				name, method string
				lines        []string
			}{
				{"no Connection upgrade", "GET", without(upgradeLines(), "Connection")},
				{"no Upgrade header", "GET", without(upgradeLines(), "Upgrade")},
				{"Upgrade is not websocket", "GET", append(without(upgradeLines(), "Upgrade"), "Upgrade: h2c")},
				{"POST", "POST", append(upgradeLines(), "Content-Length: 0")},
			}
			for _, nu := range notUpgrades {
				r := f.Caddy.rawRequest(t, sc.secure, nu.method, "/plain", nu.lines)
				if r.StatusCode != http.StatusOK || string(r.Body) != "hello from backend /plain" {
					t.Errorf("%s: got %d %q, want reverse_proxy's 200 %q", nu.name, r.StatusCode, r.Body, "hello from backend /plain")
				}
			}
			lines := append(without(without(upgradeLines(), "Connection"), "Upgrade"),
				"Connection: keep-alive, UpGrade", "Upgrade: WebSocket")
			r := f.Caddy.rawRequest(t, sc.secure, "GET", "/echo", lines)
			if r.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("mixed-case upgrade: got %d %q, want 101", r.StatusCode, r.Body)
			}
			if acc := r.Header.Get("Sec-WebSocket-Accept"); acc != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
				t.Errorf("Sec-WebSocket-Accept = %q, want the RFC 6455 sample answer", acc)
			}
			bc := f.App.accept(t, "/echo")
			r.Conn.Close()
			bc.waitClosed(t, 10*time.Second)
		})
	}
}

// TestUpgradeBackendDown wants a 502 for an upgrade when nothing listens
// at the upstream, while plain requests still reach reverse_proxy.
func TestUpgradeBackendDown(t *testing.T) {
	t.Parallel()
	down := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	f := startRelay(t, appOpts{}, relayConf{Upstream: down})
	for _, sc := range schemes {
		r := f.Caddy.rawRequest(t, sc.secure, "GET", "/echo", upgradeLines())
		if r.StatusCode != http.StatusBadGateway {
			t.Errorf("%s: upgrade to a dead upstream: got %d %q, want 502", sc.name, r.StatusCode, r.Body)
		}
	}
	getBody(t, f.Caddy.HTTPClient(), f.Caddy.HTTPURL()+"/plain", http.StatusOK, "hello from backend /plain")
}

// TestUpgradeRefusedByBackend wants a backend's non-101 answer to the
// upgrade copied to the client: status, body and headers.
func TestUpgradeRefusedByBackend(t *testing.T) {
	t.Parallel()
	f := startRelay(t, appOpts{}, relayConf{})
	for _, sc := range schemes {
		for _, code := range []int{http.StatusForbidden, http.StatusNotFound} {
			r := f.Caddy.rawRequest(t, sc.secure, "GET", fmt.Sprintf("/status/%d", code), upgradeLines())
			if r.StatusCode != code || string(r.Body) != statusBody(code) {
				t.Errorf("%s: backend refused with %d: client got %d %q, want %d %q",
					sc.name, code, r.StatusCode, r.Body, code, statusBody(code))
			}
			if r.Header.Get("X-Backend-Status") != "yes" {
				t.Errorf("%s: the backend's header X-Backend-Status did not reach the client: %v", sc.name, r.Header)
			}
		}
	}
}

// TestBadUpgrade wants a 400 with a one-line reason for a malformed
// upgrade and a 426 naming version 13 for another version; none of them
// may reach the backend.
func TestBadUpgrade(t *testing.T) {
	t.Parallel()
	f := startRelay(t, appOpts{}, relayConf{})
	cases := []struct {
		name   string
		lines  []string
		status []int
	}{
		{"missing key", without(upgradeLines(), "Sec-WebSocket-Key"), []int{400}},
		{"key not base64", append(without(upgradeLines(), "Sec-WebSocket-Key"), "Sec-WebSocket-Key: not*base64*at*all!"), []int{400}},
		{"key of 8 bytes", append(without(upgradeLines(), "Sec-WebSocket-Key"), "Sec-WebSocket-Key: AQIDBAUGBwg="), []int{400}},
		{"two keys", append(upgradeLines(), "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA=="), []int{400}},
		{"version 8", append(without(upgradeLines(), "Sec-WebSocket-Version"), "Sec-WebSocket-Version: 8"), []int{426}},
		// RFC 6455 4.2.1 requires the header; its absence is a bad
		// handshake or a version the server does not speak.
		{"missing version", without(upgradeLines(), "Sec-WebSocket-Version"), []int{400, 426}},
	}
	for _, sc := range schemes {
		for _, tc := range cases {
			r := f.Caddy.rawRequest(t, sc.secure, "GET", "/echo", tc.lines)
			ok := false
			for _, s := range tc.status {
				ok = ok || r.StatusCode == s
			}
			if !ok {
				t.Errorf("%s/%s: got %d %q, want %v", sc.name, tc.name, r.StatusCode, r.Body, tc.status)
				continue
			}
			if r.StatusCode == http.StatusUpgradeRequired && r.Header.Get("Sec-WebSocket-Version") != "13" {
				t.Errorf("%s/%s: 426 with Sec-WebSocket-Version %q, want 13", sc.name, tc.name, r.Header.Get("Sec-WebSocket-Version"))
			}
			if r.StatusCode == http.StatusBadRequest {
				reason := strings.TrimSuffix(string(r.Body), "\n")
				if reason == "" || strings.ContainsAny(reason, "\r\n") {
					t.Errorf("%s/%s: 400 body %q, want a one-line reason", sc.name, tc.name, r.Body)
				}
			}
		}
	}
	if n := f.App.Accepted.Load(); n != 0 {
		t.Errorf("%d bad upgrades reached the backend", n)
	}
}
