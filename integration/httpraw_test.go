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
)

// sampleKey is the Sec-WebSocket-Key of RFC 6455 1.3.
const sampleKey = "dGhlIHNhbXBsZSBub25jZQ=="

// upgradeLines are the header lines of a valid upgrade request, without
// Host; tests drop or replace some of them.
func upgradeLines() []string {
	return []string{
		"Connection: Upgrade",
		"Upgrade: websocket",
		"Sec-WebSocket-Version: 13",
		"Sec-WebSocket-Key: " + sampleKey,
	}
}

// without returns lines without the ones whose name is name.
func without(lines []string, name string) []string {
	var out []string
	for _, l := range lines {
		if !strings.HasPrefix(strings.ToLower(l), strings.ToLower(name)+":") {
			out = append(out, l)
		}
	}
	return out
}

// rawResponse is an HTTP response read off a raw connection.
type rawResponse struct {
	*http.Response
	Body []byte   // read whole unless the status is 101
	Conn net.Conn // still open after a 101
	R    *bufio.Reader
}

// rawRequest sends a hand-written request to caddy and reads the answer.
// The Host line is added (127.0.0.1:port, or localhost:port for https).
func (c *caddyProc) rawRequest(t *testing.T, secure bool, method, target string, lines []string) rawResponse {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	var conn net.Conn
	var err error
	host := fmt.Sprintf("127.0.0.1:%d", c.HTTPPort)
	if secure {
		host = fmt.Sprintf("localhost:%d", c.HTTPSPort)
		conn, err = tlsDial(d, c.HTTPSPort, c.TLSConfig())
	} else {
		conn, err = d.Dial("tcp", host)
	}
	if err != nil {
		t.Fatalf("dialing caddy: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, target, host)
	for _, l := range lines {
		b.WriteString(l + "\r\n")
	}
	b.WriteString("\r\n")
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatalf("writing the request: %v", err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the response to %s %s: %v", method, target, err)
	}
	out := rawResponse{Response: resp, Conn: conn, R: br}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		out.Body, err = io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("reading the body of a %d: %v", resp.StatusCode, err)
		}
	}
	conn.SetDeadline(time.Time{})
	return out
}
