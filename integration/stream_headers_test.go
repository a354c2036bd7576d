package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	rt "github.com/websocket-relay/websocket_relay/integration/relaytest"
	"github.com/websocket-relay/websocket_relay/module/upgrade"
)

// TestHandleErrors426KeepsVersion: a refusal for an unsupported version
// answered by handle_errors still carries Sec-WebSocket-Version: 13
// (RFC 6455 4.2.2), over HTTP/1.1 and on HTTP/2 and HTTP/3 streams.
func TestHandleErrors426KeepsVersion(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOpts{})
	c := newCaddy(t, caddyOpts{Env: []string{"GODEBUG=http2xconnect=1"}})
	c.Start(fmt.Sprintf(`https://localhost:%d {
	tls internal
	websocket_relay %s
	handle_errors {
		respond "custom {err.status_code}"
	}
}
`, c.HTTPSPort, a.Addr))
	lines := upgradeLines()
	for i, l := range lines {
		if strings.HasPrefix(l, "Sec-WebSocket-Version:") {
			lines[i] = "Sec-WebSocket-Version: 8"
		}
	}
	resp := c.rawRequest(t, true, "GET", "/x", lines)
	if resp.StatusCode != 426 || !strings.Contains(string(resp.Body), "custom 426") || resp.Header.Get("Sec-WebSocket-Version") != "13" {
		t.Errorf("HTTP/1.1: %d %v %q", resp.StatusCode, resp.Header, resp.Body)
	}
	for _, proto := range []int{2, 3} {
		sc := dialStream(t, c, proto, "/x", http.Header{"Sec-Websocket-Version": {"8"}})
		body, _ := io.ReadAll(io.LimitReader(sc.resp.Body, 200))
		if sc.resp.StatusCode != 426 || !strings.Contains(string(body), "custom 426") || sc.resp.Header.Get("Sec-WebSocket-Version") != "13" {
			t.Errorf("HTTP/%d: %d %v %q", proto, sc.resp.StatusCode, sc.resp.Header, body)
		}
	}
}

// TestDeferredHeaderOpsOnStreams: the site's deferred response header
// operations (`header -Field`, `header >Field value`, which Caddy applies
// as the status is written) shape a stream's 200 as they shape an
// HTTP/1.1 upgrade's 101, and as reverse_proxy's answers on both.
//
// The cookie policy's cookie is in each answer too, as reverse_proxy
// sets it.
func TestDeferredHeaderOpsOnStreams(t *testing.T) {
	t.Parallel()
	b := stubBackend(t, func(c net.Conn) {
		defer c.Close()
		if answer101(c, "X-Powered-By: secret-backend/1.2\r\n") != nil {
			_, _ = io.Copy(io.Discard, c)
		}
	})
	c := newCaddy(t, caddyOpts{Env: []string{"GODEBUG=http2xconnect=1"}})
	c.Start(fmt.Sprintf(`https://localhost:%d {
	tls internal
	header -X-Powered-By
	header >X-Frame-Options DENY
	websocket_relay /relay* %s {
		lb_policy cookie srv s3cret
	}
	reverse_proxy %s {
		lb_policy cookie srv s3cret
	}
}
`, c.HTTPSPort, b, b))
	stockCookie := ""
	check := func(what string, h http.Header) {
		if h.Get("X-Powered-By") != "" || h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: X-Powered-By %q (want none), X-Frame-Options %q (want DENY)", what, h.Get("X-Powered-By"), h.Get("X-Frame-Options"))
		}
		// The cookie policy's cookie, as reverse_proxy sets it (over
		// TLS: Secure, SameSite=None).
		if stockCookie == "" {
			stockCookie = h.Get("Set-Cookie")
			if !strings.HasPrefix(stockCookie, "srv=") || !strings.HasSuffix(stockCookie, "; Secure; SameSite=None") {
				t.Fatalf("%s: reverse_proxy set %q", what, stockCookie)
			}
		}
		if got := h.Values("Set-Cookie"); len(got) != 1 || got[0] != stockCookie {
			t.Errorf("%s: Set-Cookie %q, want reverse_proxy's %q", what, got, stockCookie)
		}
	}
	for _, path := range []string{"/stock", "/relay"} {
		resp := c.rawRequest(t, true, "GET", path, upgradeLines())
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("HTTP/1.1 %s: %d", path, resp.StatusCode)
		}
		check("HTTP/1.1 "+path, resp.Header)
		for _, proto := range []int{2, 3} {
			sc := dialStream(t, c, proto, path, http.Header{"Sec-Websocket-Version": {"13"}})
			if sc.resp.StatusCode != http.StatusOK {
				t.Fatalf("HTTP/%d %s: %d", proto, path, sc.resp.StatusCode)
			}
			check(fmt.Sprintf("HTTP/%d %s", proto, path), sc.resp.Header)
		}
	}
}

// TestStreamThroughEncodeAndLog: with `encode` and an access log around
// the relay, a stream's frames go through unencoded both ways, and the
// access log has the stream's 200.
func TestStreamThroughEncodeAndLog(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOpts{})
	c := newCaddy(t, caddyOpts{Env: []string{"GODEBUG=http2xconnect=1"}})
	c.Start(fmt.Sprintf(`https://localhost:%d {
	tls internal
	log
	encode gzip
	header -X-Nothing
	websocket_relay %s
}
`, c.HTTPSPort, a.Addr))
	for _, proto := range []int{2, 3} {
		path := fmt.Sprintf("/h%d/echo", proto)
		sc := dialStream(t, c, proto, path, http.Header{"Sec-Websocket-Version": {"13"}, "Accept-Encoding": {"gzip"}})
		if sc.resp.StatusCode != http.StatusOK || sc.resp.Header.Get("Content-Encoding") != "" {
			t.Fatalf("HTTP/%d: %d %v", proto, sc.resp.StatusCode, sc.resp.Header)
		}
		a.accept(t, path)
		msg := strings.Repeat("compressible ", 200)
		sc.send(t, ws.NewTextFrame([]byte(msg)))
		if f := sc.read(t, 5*time.Second); string(f.Payload) != msg {
			t.Fatalf("HTTP/%d: echo %q", proto, f.Payload)
		}
		sc.send(t, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))
		sc.read(t, 5*time.Second)
	}
	got := c.logs.WaitN(2, 10*time.Second, func(e rt.LogEntry) bool { return e.Str("msg") == "handled request" })
	if len(got) != 2 || got[0].Num("status") != 200 || got[1].Num("status") != 200 {
		t.Errorf("access log lines %v, want two with status 200", got)
	}
	if out := c.logs.String(); strings.Contains(out, "superfluous") {
		t.Errorf("caddy output has a superfluous WriteHeader:\n%s", out)
	}
}

// TestRefusalVersionSpelling: the relay's own 426 names
// Sec-WebSocket-Version in RFC 6455's spelling, as its other WebSocket
// fields are on both legs (clients that compare names case-sensitively).
func TestRefusalVersionSpelling(t *testing.T) {
	t.Parallel()
	c := newCaddy(t, caddyOpts{})
	c.Start(fmt.Sprintf(`http://:%d {
	websocket_relay 127.0.0.1:9
}
`, c.HTTPPort))
	lines := without(upgradeLines(), "Sec-WebSocket-Version")
	lines = append(lines, "Sec-WebSocket-Version: 8")
	head, _ := rawHead(t, c.HTTPPort, "HTTP/1.1", "/", lines)
	if !strings.HasPrefix(head, "HTTP/1.1 426") || !strings.Contains(head, "\r\nSec-WebSocket-Version: 13\r\n") {
		t.Errorf("answer:\n%s", head)
	}
}

// TestStreamBackend101ContentLength: a backend's 101 that carries a
// Content-Length does not bound the stream: the frames after the 200 are
// its body, and HTTP/2 and HTTP/3 refuse a body past a declared length.
func TestStreamBackend101ContentLength(t *testing.T) {
	t.Parallel()
	b := stubBackend(t, func(c net.Conn) {
		defer c.Close()
		if answer101(c, "Content-Length: 0\r\n") == nil {
			return
		}
		_ = ws.WriteFrame(c, ws.NewTextFrame([]byte("after the 101")))
		_, _ = io.Copy(io.Discard, c)
	})
	c := newCaddy(t, caddyOpts{Env: []string{"GODEBUG=http2xconnect=1"}})
	c.Start(fmt.Sprintf(`https://localhost:%d {
	tls internal
	websocket_relay %s
}
`, c.HTTPSPort, b))
	for _, proto := range []int{2, 3} {
		sc := dialStream(t, c, proto, "/ws", http.Header{"Sec-Websocket-Version": {"13"}})
		if sc.resp.StatusCode != http.StatusOK || sc.resp.Header.Get("Content-Length") != "" {
			t.Fatalf("HTTP/%d: %d %v", proto, sc.resp.StatusCode, sc.resp.Header)
		}
		if f := sc.read(t, 5*time.Second); string(f.Payload) != "after the 101" {
			t.Fatalf("HTTP/%d: frame %q", proto, f.Payload)
		}
	}
}

// answer101 reads an upgrade request from c and answers it with a valid
// 101 and the header lines extra (each ending in CRLF); it returns the
// request, or nil when none could be read.
func answer101(c net.Conn, extra string) *http.Request {
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil {
		return nil
	}
	fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s\r\n",
		upgrade.AcceptFor(req.Header.Get("Sec-WebSocket-Key")), extra)
	return req
}
