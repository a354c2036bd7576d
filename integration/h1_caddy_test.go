package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
	rt "github.com/websocket-relay/websocket_relay/integration/relaytest"
	"github.com/websocket-relay/websocket_relay/module/upgrade"
)

// h1Backend is a raw TCP backend that records each upgrade request's
// header block as it was on the wire and answers it with a valid 101
// written in RFC 6455's casing (as gorilla/websocket and gobwas/ws do).
type h1Backend struct {
	Addr string
	Reqs chan string
}

func newH1Backend(t *testing.T) *h1Backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	b := &h1Backend{Addr: ln.Addr().String(), Reqs: make(chan string, 16)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			go func() {
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
				c.Close()
			}()
		}
	}()
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

// TestH1HeaderCasingAsReverseProxy: stock reverse_proxy sends the backend
// Sec-WebSocket-Key/-Version and the client Sec-WebSocket-Accept in RFC
// 6455's casing (caddy PR #6621: some backends and clients compare names
// case-sensitively). The relay, in the same site, sends Go's canonical
// Sec-Websocket-*, so a backend or client that works behind reverse_proxy
// breaks behind the relay.
func TestH1HeaderCasingAsReverseProxy(t *testing.T) {
	b := newH1Backend(t)
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

// TestH1HandleErrorsSeesRelay502: with no backend reachable,
// reverse_proxy's 502 goes through the site's handle_errors (custom error
// page); the relay's 502 does not.
func TestH1HandleErrorsSeesRelay502(t *testing.T) {
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
}

// TestH1AccessLog: the site's access log line for a relayed connection,
// written when the connection ends as for reverse_proxy, with its
// duration and the bytes sent to the client.
func TestH1AccessLog(t *testing.T) {
	if os.Getenv("WSRELAY_H1_OPEN") == "" {
		t.Skip("open finding, no fix on this branch: set WSRELAY_H1_OPEN=1")
	}
	b := newH1Backend(t)
	c := newCaddy(t, caddyOpts{})
	c.Start(fmt.Sprintf(`http://:%d {
	log
	websocket_relay /relay* %s
	reverse_proxy %s
}
`, c.HTTPPort, b.Addr, b.Addr))
	for _, path := range []string{"/stock", "/relay"} {
		_, conn := rawHead(t, c.HTTPPort, "HTTP/1.1", path, upgradeLines())
		recv(t, b.Reqs)
		time.Sleep(1500 * time.Millisecond) // the connection lives 1.5 s
		conn.Close()
		got := c.logs.WaitN(1, 10*time.Second, func(e rt.LogEntry) bool {
			r, _ := e["request"].(map[string]any)
			return e.Str("msg") == "handled request" && r != nil && r["uri"] == path
		})
		if len(got) == 0 {
			t.Errorf("%s: no access log line", path)
			continue
		}
		e := got[0]
		t.Logf("%s: access log status=%v size=%v duration=%v", path, e["status"], e["size"], e["duration"])
		if e.Num("duration") < 1.4 {
			t.Errorf("%s: access log duration %v s for a connection that lived 1.5 s", path, e["duration"])
		}
	}
}

// TestH1EncodeAndHeaderBeforeRelay: `encode gzip` and a `header` directive
// before the relay: the upgrade still works and the header is on the 101,
// and caddy logs no error about the hijacked connection.
func TestH1EncodeAndHeaderBeforeRelay(t *testing.T) {
	b := newH1Backend(t)
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

// TestH1Paths: handle_path, uri strip_prefix, rewrite and an upstream path.
func TestH1Paths(t *testing.T) {
	b := newH1Backend(t)
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
	t.Logf("HTTP/1.0 upgrade answer:\n%s", head)
}

// TestH1WebSocketOverHTTP3: every https site of caddy serves HTTP/3, whose
// server (quic-go) advertises Extended CONNECT (RFC 9220), so a client
// may open its WebSocket as CONNECT with :protocol websocket. The relay
// does not take it (nor refuse it): it goes to the next handler, whose
// 200 tells the client its WebSocket is open.
func TestH1WebSocketOverHTTP3(t *testing.T) {
	if os.Getenv("WSRELAY_H1_OPEN") == "" {
		t.Skip("open finding, no fix on this branch: set WSRELAY_H1_OPEN=1")
	}
	b := newH1Backend(t)
	c := newCaddy(t, caddyOpts{})
	c.Start(fmt.Sprintf(`https://localhost:%d {
	tls internal
	websocket_relay %s
	respond "next handler"
}
`, c.HTTPSPort, b.Addr))
	tr := &http3.Transport{TLSClientConfig: c.TLSConfig()}
	defer tr.Close()
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodConnect, fmt.Sprintf("https://localhost:%d/chat", c.HTTPSPort), pr)
	req.Proto = "websocket"
	req.Header.Set("Sec-WebSocket-Version", "13")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("HTTP/3 extended CONNECT: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		body := make([]byte, 64)
		n, _ := resp.Body.Read(body)
		t.Errorf("WebSocket over HTTP/3 answered %d (the client takes it as open) by the next handler (%q), neither relayed nor refused", resp.StatusCode, body[:n])
	}
	select {
	case <-b.Reqs:
	default:
		t.Log("the backend got no request")
	}
}
