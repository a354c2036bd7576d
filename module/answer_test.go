package wsrelay

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// refusingBackend answers every upgrade request with a chunked 403 and
// then calls body to write the chunks.
func refusingBackend(t *testing.T, body func(c net.Conn)) string {
	return stubServe(t, func(c net.Conn) {
		defer c.Close()
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		fmt.Fprintf(c, "HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n")
		body(c)
	})
}

// sendUpgrade dials 127.0.0.1:port and sends an upgrade request for
// path; the connection has a deadline 8 s away and closes with the test.
func sendUpgrade(t *testing.T, port int, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(8 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", path)
	return c
}

// askUpgradePath sends an upgrade request for path to 127.0.0.1:port and
// reads the answer's status and whole body; err is the body's read error.
func askUpgradePath(t *testing.T, port int, path string) (status int, body string, err error) {
	t.Helper()
	c := sendUpgrade(t, port, path)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestRefusalPassedWhole: a backend's refusal reaches the client as it
// was sent. One that breaks off or stalls mid-body is cut off at the
// client too (its connection aborted, so it cannot take the part for the
// whole), with no error page after it; a slow one whose every chunk
// comes within handshake_timeout goes through whole.
func TestRefusalPassedWhole(t *testing.T) {
	broken := refusingBackend(t, func(c net.Conn) { io.WriteString(c, "5\r\nhello\r\n") })
	stalled := refusingBackend(t, func(c net.Conn) {
		io.WriteString(c, "5\r\nhello\r\n")
		time.Sleep(3 * time.Second)
	})
	slow := refusingBackend(t, func(c net.Conn) {
		for range 5 {
			io.WriteString(c, "5\r\nhello\r\n")
			time.Sleep(150 * time.Millisecond)
		}
		io.WriteString(c, "0\r\n\r\n")
	})
	port := freePort(t)
	route := func(path, up string) map[string]any {
		return relayRoute(path, up, "handshake_timeout", "400ms")
	}
	cfg := map[string]any{
		"admin":   map[string]any{"disabled": true},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"level": "ERROR"}}},
		"apps": map[string]any{"http": map[string]any{"servers": map[string]any{"relay": map[string]any{
			"listen": []string{fmt.Sprintf("127.0.0.1:%d", port)},
			"routes": []any{route("/broken", broken), route("/stalled", stalled), route("/slow", slow)},
			"errors": map[string]any{"routes": []any{map[string]any{"handle": []any{map[string]any{
				"handler": "static_response", "body": "ERROR PAGE {http.error.status_code}"}}}}},
		}}}},
	}
	raw, _ := json.Marshal(cfg)
	if err := caddy.Load(raw, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	for _, path := range []string{"/broken", "/stalled"} {
		began := time.Now()
		status, body, err := askUpgradePath(t, port, path)
		if status != http.StatusForbidden || body != "hello" || err == nil {
			t.Errorf("%s: status %d, body %q, read error %v; want 403, \"hello\" and then a cut connection", path, status, body, err)
		}
		if took := time.Since(began); took > 2*time.Second {
			t.Errorf("%s: cut off after %v, want it within handshake_timeout (400ms) of the last byte", path, took)
		}
	}
	if status, body, err := askUpgradePath(t, port, "/slow"); status != http.StatusForbidden || body != "hellohellohellohellohello" || err != nil {
		t.Errorf("/slow: status %d, body %q, read error %v; want 403 and the whole body", status, body, err)
	}
}

// TestClientGoneBeforeAnswer: a client that half-closes after its
// upgrade request, while the backend is dialed (a wss one that never
// answers the TLS handshake) or while its answer is awaited (a ws one
// that never answers), gets 499 at once, as from reverse_proxy, not an
// empty 200 nor a 502 at handshake_timeout.
func TestClientGoneBeforeAnswer(t *testing.T) {
	hang := stubServe(t, func(c net.Conn) { defer c.Close(); _, _ = io.Copy(io.Discard, c) })
	port := freePort(t)
	loadRoutes(t, port,
		relayRoute("/dial", "wss://"+hang, "dial_timeout", "5s"),
		relayRoute("/answer", hang, "handshake_timeout", "5s"))
	t.Cleanup(func() { _ = caddy.Stop() })
	for _, path := range []string{"/dial", "/answer"} {
		c := sendUpgrade(t, port, path)
		time.Sleep(200 * time.Millisecond)
		_ = c.(*net.TCPConn).CloseWrite() // gone, as net/http sees it, but still reading
		began := time.Now()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if took := time.Since(began); resp.StatusCode != 499 || took > 2*time.Second {
			t.Errorf("%s: status %d after %v, want 499 at once", path, resp.StatusCode, took)
		}
	}
}
