package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	rt "github.com/websocket-relay/websocket_relay/integration/relaytest"
	"github.com/websocket-relay/websocket_relay/module/upgrade"
)

// rawBackend is a raw TCP backend that records each upgrade request's
// header block as it was on the wire and answers it with a valid 101
// written in RFC 6455's casing (as gorilla/websocket and gobwas/ws do).
type rawBackend struct {
	Addr string
	Reqs chan string
}

func newRawBackend(t *testing.T) *rawBackend {
	t.Helper()
	b := &rawBackend{Reqs: make(chan string, 16)}
	b.Addr = stubBackend(t, func(c net.Conn) {
		defer c.Close() // at the latest when caddy goes
		br := bufio.NewReader(c)
		var raw strings.Builder
		key := ""
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			raw.WriteString(line)
			if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Sec-WebSocket-Key") {
				key = strings.TrimSpace(v)
			}
			if line == "\r\n" {
				break
			}
		}
		b.Reqs <- raw.String()
		fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", upgrade.AcceptFor(key))
		_, _ = io.Copy(io.Discard, c) // hold it open until the peer goes
	})
	return b
}

// rawHead sends target's upgrade request (with lines) to caddy's HTTP port
// and returns the response head as it was on the wire, and the connection.
func rawHead(t *testing.T, port int, proto, target string, lines []string) (string, net.Conn) {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s %s\r\nHost: 127.0.0.1:%d\r\n%s\r\n\r\n", target, proto, port, strings.Join(lines, "\r\n"))
	br := bufio.NewReader(c)
	var raw strings.Builder
	for {
		line, err := br.ReadString('\n')
		raw.WriteString(line)
		if err != nil || line == "\r\n" {
			break
		}
	}
	rest := make([]byte, 4096)
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	n, _ := br.Read(rest)
	_ = c.SetDeadline(time.Time{})
	return raw.String() + string(rest[:n]), c
}

func recv(t *testing.T, ch chan string) string {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("the backend got no upgrade request")
		return ""
	}
}

// TestHeaderCasingAsReverseProxy: the relay sends the backend
// Sec-WebSocket-Key/-Version and the client Sec-WebSocket-Accept in RFC
// 6455's spelling, as stock reverse_proxy does (caddy PR #6621: some
// backends and clients compare names case-sensitively), not Go's
// canonical Sec-Websocket-*.
func TestHeaderCasingAsReverseProxy(t *testing.T) {
	t.Parallel()
	b := newRawBackend(t)
	c := newCaddy(t, caddyOpts{})
	c.Start(fmt.Sprintf(`http://:%d {
	websocket_relay /relay* %s
	reverse_proxy %s
}
`, c.HTTPPort, b.Addr, b.Addr))
	for _, path := range []string{"/stock", "/relay"} {
		head, _ := rawHead(t, c.HTTPPort, "HTTP/1.1", path, upgradeLines())
		req := recv(t, b.Reqs)
		if !strings.Contains(head, "101") {
			t.Fatalf("%s: no 101:\n%s", path, head)
		}
		for _, want := range []string{"Sec-WebSocket-Key:", "Sec-WebSocket-Version:"} {
			if !strings.Contains(req, want) {
				t.Errorf("%s: backend request lacks %q as written in RFC 6455:\n%s", path, want, req)
			}
		}
		if !strings.Contains(head, "Sec-WebSocket-Accept:") {
			t.Errorf("%s: client answer lacks %q as written in RFC 6455:\n%s", path, "Sec-WebSocket-Accept:", head)
		}
	}
}

// TestHandleErrorsSeesRefusals: with no backend reachable, the relay's
// 502 goes through the site's handle_errors (custom error page), as
// reverse_proxy's does.
func TestHandleErrorsSeesRefusals(t *testing.T) {
	t.Parallel()
	dead := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	c := newCaddy(t, caddyOpts{})
	c.Start(fmt.Sprintf(`http://:%d {
	websocket_relay /relay* %s
	reverse_proxy %s
	handle_errors {
		respond "custom error page {err.status_code}"
	}
}
`, c.HTTPPort, dead, dead))
	for _, path := range []string{"/stock", "/relay"} {
		resp := c.rawRequest(t, false, "GET", path, upgradeLines())
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(resp.Body), "custom error page 502") {
			t.Errorf("%s: got %d %q, want 502 from handle_errors (\"custom error page 502\")", path, resp.StatusCode, resp.Body)
		}
	}
	// A bad upgrade's 400 too.
	lines := upgradeLines()
	for i, l := range lines {
		if strings.HasPrefix(l, "Sec-WebSocket-Key:") {
			lines[i] = "Sec-WebSocket-Key: short"
		}
	}
	if resp := c.rawRequest(t, false, "GET", "/relay", lines); resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(resp.Body), "custom error page 400") {
		t.Errorf("bad key: got %d %q, want 400 from handle_errors", resp.StatusCode, resp.Body)
	}
}

// TestAccessLogAtUpgrade: Caddy's access log line for a relayed
// HTTP/1.1 upgrade comes at the 101, while the connection lives (the
// relay gives the request's goroutine back at once), with status 101;
// the connection's own figures come in the relay's line at its end.
func TestAccessLogAtUpgrade(t *testing.T) {
	t.Parallel()
	b := newRawBackend(t)
	c := newCaddy(t, caddyOpts{})
	c.Start(fmt.Sprintf(`http://:%d {
	log
	websocket_relay %s
}
`, c.HTTPPort, b.Addr))
	_, conn := rawHead(t, c.HTTPPort, "HTTP/1.1", "/live", upgradeLines())
	recv(t, b.Reqs)
	got := c.logs.WaitN(1, 10*time.Second, func(e rt.LogEntry) bool {
		r, _ := e["request"].(map[string]any)
		return e.Str("msg") == "handled request" && r != nil && r["uri"] == "/live"
	})
	if len(got) == 0 {
		t.Fatal("no access log line while the relayed connection lives")
	}
	if got[0].Num("status") != 101 {
		t.Errorf("access log status %v, want 101", got[0]["status"])
	}
	conn.Close()
	c.WaitConnClosed(1)
}

// TestMiddlewareBeforeRelay: `encode gzip` and a `header` directive
// before the relay: the upgrade still works and the header is on the 101,
// and caddy logs no error about the hijacked connection.
func TestMiddlewareBeforeRelay(t *testing.T) {
	t.Parallel()
	b := newRawBackend(t)
	c := newCaddy(t, caddyOpts{})
	c.Start(fmt.Sprintf(`http://:%d {
	encode gzip
	header Strict-Transport-Security "max-age=31536000"
	request_header X-From-Caddy yes
	websocket_relay %s
}
`, c.HTTPPort, b.Addr))
	head, _ := rawHead(t, c.HTTPPort, "HTTP/1.1", "/", append(upgradeLines(), "Accept-Encoding: gzip"))
	req := recv(t, b.Reqs)
	if !strings.HasPrefix(head, "HTTP/1.1 101") || !strings.Contains(head, "Strict-Transport-Security: max-age=31536000") {
		t.Errorf("answer:\n%s", head)
	}
	if !strings.Contains(req, "X-From-Caddy: yes") {
		t.Errorf("request_header did not reach the backend:\n%s", req)
	}
}

// TestRewrittenPaths: handle_path, uri strip_prefix, rewrite and an upstream path.
func TestRewrittenPaths(t *testing.T) {
	t.Parallel()
	b := newRawBackend(t)
	c := newCaddy(t, caddyOpts{})
	c.Start(fmt.Sprintf(`http://:%d {
	handle_path /hp/* {
		websocket_relay %s
	}
	handle /sp/* {
		uri strip_prefix /sp
		websocket_relay ws://%s/base
	}
	handle /rw {
		rewrite * /rewritten?{query}&x=1
		websocket_relay %s
	}
}
`, c.HTTPPort, b.Addr, b.Addr, b.Addr))
	cases := []struct{ target, want string }{
		{"/hp/a%2Fb/c?q=1&r=%2F", "GET /a%2Fb/c?q=1&r=%2F HTTP/1.1"},
		{"/sp/a%2Fb?q=2", "GET /base/a%2Fb?q=2 HTTP/1.1"},
		{"/rw?q=3", "GET /rewritten?q=3&x=1 HTTP/1.1"},
	}
	for _, tc := range cases {
		rawHead(t, c.HTTPPort, "HTTP/1.1", tc.target, upgradeLines())
		req := recv(t, b.Reqs)
		if line, _, _ := strings.Cut(req, "\r\n"); line != tc.want {
			t.Errorf("%s: backend got %q, want %q", tc.target, line, tc.want)
		}
	}
	head, _ := rawHead(t, c.HTTPPort, "HTTP/1.0", "/hp/x", upgradeLines())
	if !strings.HasPrefix(head, "HTTP/1.0 400") || !strings.Contains(head, "websocket upgrade needs HTTP/1.1") {
		t.Errorf("HTTP/1.0 upgrade answered:\n%s", head)
	}
}

// TestAnswerHeadersAsReverseProxy: the client's answer carries the
// backend's fields as reverse_proxy's does, a 101 and a refusal passed
// on alike: added to what the site set before (`header` lines), after
// the cookie policy's cookie (so a browser keeps the backend's cookie of
// the same name), the backend's Server beside Caddy's on a 101, and on
// a refusal Via instead of Caddy's Server.
func TestAnswerHeadersAsReverseProxy(t *testing.T) {
	t.Parallel()
	const common = "Server: app/1\r\nSet-Cookie: lb=app; Path=/\r\nX-App: one\r\nX-App: two\r\nX-Site: backend\r\n"
	refusing := stubBackend(t, func(c net.Conn) {
		defer c.Close()
		if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
			io.WriteString(c, "HTTP/1.1 403 Forbidden\r\n"+common+"Content-Length: 2\r\n\r\nno")
		}
	})
	upgrading := stubBackend(t, func(c net.Conn) {
		defer c.Close()
		answer101(c, common)
	})
	c := newCaddy(t, caddyOpts{})
	c.Start(fmt.Sprintf(`http://:%d {
	header X-Site caddy
	header +Set-Cookie "site=1; Path=/"
	websocket_relay /relay/refuse %s {
		lb_policy cookie
	}
	websocket_relay /relay* %s {
		lb_policy cookie
	}
	reverse_proxy /stock/refuse %s {
		lb_policy cookie
	}
	reverse_proxy %s {
		lb_policy cookie
	}
}
`, c.HTTPPort, refusing, upgrading, refusing, upgrading))
	fields := []string{"Set-Cookie", "Server", "Via", "X-App", "X-Site", "Upgrade", "Connection"}
	for _, sub := range []string{"", "/refuse"} {
		got := map[string]http.Header{}
		for _, path := range []string{"/stock", "/relay"} {
			resp := c.rawRequest(t, false, "GET", path+sub, upgradeLines())
			if resp.Conn != nil {
				resp.Conn.Close()
			}
			got[path] = resp.Header
			if want := map[string]int{"": 101, "/refuse": 403}[sub]; resp.StatusCode != want {
				t.Fatalf("%s%s: %d, want %d", path, sub, resp.StatusCode, want)
			}
		}
		for _, f := range fields {
			if rp, relay := got["/stock"].Values(f), got["/relay"].Values(f); !slices.Equal(rp, relay) {
				t.Errorf("%s %s: reverse_proxy %q, the relay %q", map[string]string{"": "101", "/refuse": "403"}[sub], f, rp, relay)
			}
		}
		if v := got["/relay"].Values("Set-Cookie"); len(v) != 3 || !strings.HasPrefix(v[2], "lb=app") {
			t.Errorf("Set-Cookie %q: want the site's, the policy's, then the backend's", v)
		}
	}
}
