package integration

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gorilla/websocket"
)

// streamCaddy starts caddy with HTTP/2 extended CONNECT on and one relay
// site with the given options.
func streamCaddy(t *testing.T, a *app, opts string) *caddyProc {
	c := newCaddy(t, caddyOpts{Env: []string{"GODEBUG=http2xconnect=1"}})
	c.Start(fmt.Sprintf(`https://localhost:%d {
	tls internal
	route {
		websocket_relay %s {
%s
		}
		respond "not an upgrade"
	}
}
`, c.HTTPSPort, a.Addr, opts))
	return c
}

// TestStreamIdlePastWriteTimeout: a stream relay that wrote to its client
// and then has nothing to write for longer than write_timeout (the
// backend is quiet; no ping is due) must live on, as over HTTP/1.1: the
// write timeout bounds writes, not the silence between them.
func TestStreamIdlePastWriteTimeout(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOpts{})
	c := streamCaddy(t, a, "\t\t\twrite_timeout 1s\n\t\t\tping_interval 1m\n\t\t\tpong_timeout 1m")
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("HTTP/%d", proto), func(t *testing.T) {
			path := fmt.Sprintf("/idle%d/echo", proto)
			sc := dialStream(t, c, proto, path, http.Header{"Sec-Websocket-Version": {"13"}})
			a.accept(t, path)
			sc.send(t, ws.NewTextFrame([]byte("one")))
			if f := sc.read(t, 5*time.Second); string(f.Payload) != "one" {
				t.Fatalf("echo %q", f.Payload)
			}
			time.Sleep(2500 * time.Millisecond) // quiet, past write_timeout
			sc.send(t, ws.NewTextFrame([]byte("two")))
			if f, err := sc.next(5 * time.Second); err != nil || string(f.Payload) != "two" {
				t.Fatalf("after 2.5s of quiet: frame %q, error %v; want the echo of two", f.Payload, err)
			}
		})
	}
	for _, e := range c.ConnClosedLogs() {
		t.Logf("log: closed_by=%s cause=%q code=%v", e.Str("closed_by"), e.Str("cause"), e.Num("close_code"))
	}
}

// TestStreamWriteTimeoutCause: a stream client that stops reading while
// the backend floods is dropped by write_timeout, and the log line says
// so as over HTTP/1.1 (closed_by relay, cause write timeout); the
// backend gets 1001.
func TestStreamWriteTimeoutCause(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOpts{})
	c := streamCaddy(t, a, "\t\t\twrite_timeout 1s")
	for i, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("HTTP/%d", proto), func(t *testing.T) {
			path := fmt.Sprintf("/flood%d/push", proto)
			dialStream(t, c, proto, path, http.Header{"Sec-Websocket-Version": {"13"}})
			bc := a.accept(t, path)
			big := bytes.Repeat([]byte("x"), 1<<20)
			go func() {
				for bc.Send(websocket.BinaryMessage, big) == nil {
				}
			}()
			rec := bc.waitClosed(t, 20*time.Second)
			lines := c.WaitConnClosed(i + 1)
			e := lines[len(lines)-1]
			if e.Str("closed_by") != "relay" || e.Str("cause") != "write timeout" || rec.Code != 1001 {
				t.Errorf("log closed_by=%q cause=%q code=%v, backend %+v; want relay, write timeout, backend 1001",
					e.Str("closed_by"), e.Str("cause"), e.Num("close_code"), rec)
			}
		})
	}
}

// TestStreamBackend2xxNotUpgrade: a backend that answers the upgrade with
// 200 (no 101: it is no WebSocket) must not be passed on to a stream
// client as 200, which on HTTP/2 and HTTP/3 means the WebSocket is open
// (RFC 8441 5, RFC 9220 3): its page would be read as frames.
func TestStreamBackend2xxNotUpgrade(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOpts{})
	c := streamCaddy(t, a, "")
	for _, proto := range []int{2, 3} {
		sc := dialStream(t, c, proto, "/status/200", http.Header{"Sec-Websocket-Version": {"13"}})
		body, _ := io.ReadAll(io.LimitReader(sc.resp.Body, 200))
		if sc.resp.StatusCode/100 == 2 {
			t.Errorf("HTTP/%d: backend's 200 (not 101) passed on as %d %q: the client takes its WebSocket as open", proto, sc.resp.StatusCode, body)
		}
	}
}

// TestStreamClientSilentPastReadBodyIdle: Caddy's read_body_idle (1m by
// default) bounds reads of a request body, and read_body and write bound
// a request; a stream relay's client may stay silent longer
// (ping_interval off or longer) and the relay live longer, as over
// HTTP/1.1, where the relay owns the socket; with an access log and a
// request_body max_size too, whose readers wrap the body's idle reader
// (a relay's client is not capped by max_size, over HTTP/1.1 neither).
func TestStreamClientSilentPastReadBodyIdle(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOpts{})
	c := newCaddy(t, caddyOpts{Env: []string{"GODEBUG=http2xconnect=1"},
		Servers: "\ttimeouts {\n\t\tread_body_idle 1s\n\t\tread_body 2s\n\t\twrite 2s\n\t}"})
	c.Start(fmt.Sprintf("https://localhost:%d {\n\ttls internal\n\tlog\n\trequest_body {\n\t\tmax_size 1KB\n\t}\n\twebsocket_relay %s {\n\t\tping_interval 1m\n\t\tpong_timeout 1m\n\t}\n}\n", c.HTTPSPort, a.Addr))
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("HTTP/%d", proto), func(t *testing.T) {
			path := fmt.Sprintf("/silent%d/echo", proto)
			sc := dialStream(t, c, proto, path, http.Header{"Sec-Websocket-Version": {"13"}})
			a.accept(t, path)
			sc.send(t, ws.NewTextFrame([]byte("one")))
			sc.read(t, 5*time.Second)
			time.Sleep(2500 * time.Millisecond)
			sc.send(t, ws.NewTextFrame([]byte("two")))
			big := bytes.Repeat([]byte("m"), 4096) // past max_size
			sc.send(t, ws.NewBinaryFrame(big))
			if f, err := sc.next(5 * time.Second); err != nil || string(f.Payload) != "two" {
				t.Fatalf("after 2.5s of client silence: frame %v %q, error %v; want the echo of two", f.Header.OpCode, f.Payload, err)
			}
			var got []byte
			for len(got) < len(big) {
				f, err := sc.next(5 * time.Second)
				if err != nil {
					t.Fatalf("after %d of the 4 KiB past max_size: %v", len(got), err)
				}
				got = append(got, f.Payload...)
			}
			if !bytes.Equal(got, big) {
				t.Fatal("the 4 KiB message came back changed")
			}
		})
	}
	for _, e := range c.ConnClosedLogs() {
		t.Logf("log: closed_by=%s cause=%q code=%v", e.Str("closed_by"), e.Str("cause"), e.Num("close_code"))
	}
}
