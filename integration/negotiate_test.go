package integration

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	cws "github.com/coder/websocket"
	gws "github.com/gorilla/websocket"
)

// TestSubprotocol wants the backend to choose among the protocols the
// client offered, and its choice to reach the client.
func TestSubprotocol(t *testing.T) {
	t.Parallel()
	f := startRelay(t, appOpts{Subprotocols: []string{"chat.v1"}}, relayConf{})
	for _, sc := range schemes {
		t.Run(sc.name, func(t *testing.T) {
			conn, _ := f.dialCoder(t, sc.secure, "/echo", &cws.DialOptions{Subprotocols: []string{"chat.v2", "chat.v1"}})
			bc := f.App.accept(t, "/echo")
			if got := conn.Subprotocol(); got != "chat.v1" {
				t.Errorf("coder client: negotiated subprotocol %q, want chat.v1", got)
			}
			if got := headerTokens(bc.Req.Header, "Sec-WebSocket-Protocol"); !slices.Equal(got, []string{"chat.v2", "chat.v1"}) {
				t.Errorf("the backend got Sec-WebSocket-Protocol %q, want the client's offer chat.v2, chat.v1", got)
			}
			echoOnce(t, conn, "over chat.v1")
			conn.Close(cws.StatusNormalClosure, "")

			gc, _ := f.dialGorilla(t, sc.secure, "/echo", &gws.Dialer{Subprotocols: []string{"chat.v1"}}, nil)
			f.App.accept(t, "/echo")
			if got := gc.Subprotocol(); got != "chat.v1" {
				t.Errorf("gorilla client: negotiated subprotocol %q, want chat.v1", got)
			}
		})
	}
}

// headerTokens returns the comma-separated tokens of every line of
// header k, trimmed.
func headerTokens(h http.Header, k string) []string {
	var out []string
	for _, v := range h.Values(k) {
		for _, tok := range strings.Split(v, ",") {
			if tok = strings.TrimSpace(tok); tok != "" {
				out = append(out, tok)
			}
		}
	}
	return out
}

// echoOnce sends msg as text and wants it back.
func echoOnce(t *testing.T, conn *cws.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := conn.Write(ctx, cws.MessageText, []byte(msg)); err != nil {
		t.Fatalf("writing %q: %v", msg, err)
	}
	typ, got, err := conn.Read(ctx)
	if err != nil || typ != cws.MessageText || string(got) != msg {
		t.Fatalf("echo of %q: got %v %q, err %v", msg, typ, got, err)
	}
}

// TestPermessageDeflate wants permessage-deflate negotiated between
// client and backend through the relay, compressed frames relayed as they
// are, and messages intact.
func TestPermessageDeflate(t *testing.T) {
	t.Parallel()
	f := startRelay(t, appOpts{Compression: true}, relayConf{})
	zeros := make([]byte, 1<<20)
	random := payload(64<<10, false, 7)
	text := []byte(strings.Repeat("the quick brown fox jumps over the lazy dog ", 2000))
	for _, sc := range schemes {
		t.Run(sc.name+"/gorilla", func(t *testing.T) {
			conn, resp := f.dialGorilla(t, sc.secure, "/echo", &gws.Dialer{EnableCompression: true}, nil)
			bc := f.App.accept(t, "/echo")
			if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.Contains(ext, "permessage-deflate") {
				t.Fatalf("101 carries Sec-WebSocket-Extensions %q, want permessage-deflate", ext)
			}
			if ext := bc.Req.Header.Get("Sec-WebSocket-Extensions"); !strings.Contains(ext, "permessage-deflate") {
				t.Errorf("the backend got Sec-WebSocket-Extensions %q, want the client's offer", ext)
			}
			conn.EnableWriteCompression(true)
			for _, m := range []struct {
				typ  int
				data []byte
			}{{gws.BinaryMessage, zeros}, {gws.BinaryMessage, random}, {gws.TextMessage, text}} {
				conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
				if err := conn.WriteMessage(m.typ, m.data); err != nil {
					t.Fatal(err)
				}
				conn.SetReadDeadline(time.Now().Add(30 * time.Second))
				typ, got, err := conn.ReadMessage()
				if err != nil || typ != m.typ || !bytes.Equal(got, m.data) {
					t.Fatalf("compressed echo of %d bytes: type %d, %d bytes, err %v", len(m.data), typ, len(got), err)
				}
			}
			conn.WriteControl(gws.CloseMessage, gws.FormatCloseMessage(gws.CloseNormalClosure, ""), time.Now().Add(time.Second))
			bc.waitClosed(t, 10*time.Second)
		})
		t.Run(sc.name+"/coder", func(t *testing.T) {
			conn, resp := f.dialCoder(t, sc.secure, "/echo", &cws.DialOptions{CompressionMode: cws.CompressionNoContextTakeover})
			bc := f.App.accept(t, "/echo")
			if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.Contains(ext, "permessage-deflate") {
				t.Fatalf("101 carries Sec-WebSocket-Extensions %q, want permessage-deflate", ext)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for _, m := range [][]byte{zeros, text} {
				if err := conn.Write(ctx, cws.MessageBinary, m); err != nil {
					t.Fatal(err)
				}
				_, got, err := conn.Read(ctx)
				if err != nil || !bytes.Equal(got, m) {
					t.Fatalf("compressed echo of %d bytes: %d bytes, err %v", len(m), len(got), err)
				}
			}
			conn.Close(cws.StatusNormalClosure, "")
			bc.waitClosed(t, 10*time.Second)
		})
	}
	// The relay counts wire bytes: had the 1 MiB of zeros not been
	// compressed end to end, each gorilla connection would show over 1 MiB.
	logs := f.Caddy.WaitConnClosed(4)
	for _, e := range logs {
		n, _ := e.NumOK("client_to_backend_bytes")
		if n <= 0 || n >= 1<<20 {
			t.Errorf("client_to_backend_bytes = %v for a compressed connection that sent 1 MiB of zeros: %s", n, e)
		}
	}
}

// TestForwardedHeaders checks what the backend sees of the upgrade
// request: the path and query unchanged, X-Forwarded-For/-Proto/-Host
// added, Origin, Cookie and Authorization passed, hop-by-hop headers gone.
func TestForwardedHeaders(t *testing.T) {
	t.Parallel()
	f := startRelay(t, appOpts{}, relayConf{})
	const target = "/echo/a%2Fb/c%20d?x=1&y=%20z&x=2&empty="
	for _, sc := range schemes {
		t.Run(sc.name, func(t *testing.T) {
			lines := append(without(upgradeLines(), "Connection"),
				"Connection: Upgrade, X-Hop",
				"X-Hop: must-not-pass",
				"Keep-Alive: timeout=5",
				"Origin: https://app.example.test",
				"Cookie: session=abc123; theme=dark",
				"Authorization: Bearer tok-42",
				"X-Custom: kept",
			)
			r := f.Caddy.rawRequest(t, sc.secure, "GET", target, lines)
			if r.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("upgrade: %d %q", r.StatusCode, r.Body)
			}
			bc := f.App.accept(t, "/echo/a/b/c d")
			defer r.Conn.Close()
			req := bc.Req
			if req.RequestURI != target {
				t.Errorf("the backend got request URI %q, want %q", req.RequestURI, target)
			}
			proto, host := "http", fmt.Sprintf("127.0.0.1:%d", f.Caddy.HTTPPort)
			if sc.secure {
				proto, host = "https", fmt.Sprintf("localhost:%d", f.Caddy.HTTPSPort)
			}
			want := map[string]string{
				"X-Forwarded-For":   "127.0.0.1",
				"X-Forwarded-Proto": proto,
				"X-Forwarded-Host":  host,
				"Origin":            "https://app.example.test",
				"Cookie":            "session=abc123; theme=dark",
				"Authorization":     "Bearer tok-42",
				"X-Custom":          "kept",
				"Sec-WebSocket-Key": sampleKey,
			}
			for k, v := range want {
				if got := strings.Join(req.Header.Values(k), ", "); got != v {
					t.Errorf("the backend got %s %q, want %q", k, got, v)
				}
			}
			for _, k := range []string{"X-Hop", "Keep-Alive"} {
				if got := req.Header.Values(k); len(got) > 0 {
					t.Errorf("hop-by-hop header %s reached the backend: %q", k, got)
				}
			}
		})
	}
}
