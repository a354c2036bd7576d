package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/quic-go/quic-go/http3"
	"golang.org/x/net/http2"
)

// streamClient is a WebSocket opened with extended CONNECT on an HTTP/2
// or HTTP/3 stream: frames go out on the request body, come in on the
// response body.
type streamClient struct {
	resp *http.Response
	out  *io.PipeWriter
	// done closes the client's transport, as a client does once its
	// last stream ended (caddy's HTTP/3 server waits on exit until the
	// clients closed their connections).
	done func()
}

// dialStream opens path on caddy's https port with extended CONNECT over
// HTTP/2 or HTTP/3 (proto 2 or 3), with extra headers.
func dialStream(t *testing.T, c *caddyProc, proto int, path string, hdr http.Header) *streamClient {
	t.Helper()
	sc, _ := dialStreamCtx(t, c, proto, path, hdr)
	return sc
}

// dialStreamCtx is dialStream with a context whose cancel resets the
// stream (RST_STREAM on HTTP/2; both directions cancelled on HTTP/3).
func dialStreamCtx(t *testing.T, c *caddyProc, proto int, path string, hdr http.Header) (*streamClient, context.CancelFunc) {
	t.Helper()
	var rt http.RoundTripper
	var done func()
	switch proto {
	case 2:
		// x/net's transport: net/http's refuses the :protocol field
		// before its HTTP/2 code, which would send it, sees it.
		tr := &http2.Transport{TLSClientConfig: c.TLSConfig()}
		rt, done = tr, tr.CloseIdleConnections
	case 3:
		tr := &http3.Transport{TLSClientConfig: c.TLSConfig()}
		rt, done = tr, func() { tr.Close() }
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	req, _ := http.NewRequestWithContext(ctx, http.MethodConnect,
		fmt.Sprintf("https://localhost:%d%s", c.HTTPSPort, path), pr)
	for k, v := range hdr {
		req.Header[k] = v
	}
	if proto == 2 {
		req.Header.Set(":protocol", "websocket")
	} else {
		req.Proto = "websocket"
	}
	type result struct {
		resp *http.Response
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		resp, err := rt.RoundTrip(req)
		ch <- result{resp, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			cancel()
			t.Fatalf("HTTP/%d extended CONNECT %s: %v", proto, path, r.err)
		}
		t.Cleanup(func() { cancel(); pw.Close(); r.resp.Body.Close(); done() })
		return &streamClient{resp: r.resp, out: pw, done: done}, cancel
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatalf("HTTP/%d extended CONNECT %s: no answer in 10 s", proto, path)
		return nil, nil
	}
}

// send writes one masked client frame.
func (s *streamClient) send(t *testing.T, f ws.Frame) {
	t.Helper()
	if err := ws.WriteFrame(s.out, ws.MaskFrame(f)); err != nil {
		t.Fatalf("writing a frame on the stream: %v", err)
	}
}

// next reads one frame within d.
func (s *streamClient) next(d time.Duration) (ws.Frame, error) {
	type result struct {
		f   ws.Frame
		err error
	}
	ch := make(chan result, 1)
	go func() {
		f, err := ws.ReadFrame(s.resp.Body)
		ch <- result{f, err}
	}()
	select {
	case r := <-ch:
		return r.f, r.err
	case <-time.After(d):
		return ws.Frame{}, fmt.Errorf("no frame on the stream within %v", d)
	}
}

// read is next, failing the test on an error.
func (s *streamClient) read(t *testing.T, d time.Duration) ws.Frame {
	t.Helper()
	f, err := s.next(d)
	if err != nil {
		t.Fatalf("reading a frame from the stream: %v", err)
	}
	return f
}

// TestExtendedConnect: a WebSocket opened on an HTTP/2 stream (RFC 8441;
// Go's server offers it with GODEBUG=http2xconnect=1) or an HTTP/3
// stream (RFC 9220; caddy's HTTP/3 server always offers it) is relayed
// to an HTTP/1.1 backend: 200 with the negotiated subprotocol and no
// Accept, the backend's request as for an HTTP/1.1 client, frames byte
// for byte both ways (a 1 MiB message, a fragmented one), relay pings
// whose pongs the backend never sees, a close handshake end to end, one
// log line; and a client that goes silent is dropped in time, its
// backend told 1001.
func TestExtendedConnect(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOpts{Subprotocols: []string{"chat"}})
	c := newCaddy(t, caddyOpts{Env: []string{"GODEBUG=http2xconnect=1"}})
	c.Start(fmt.Sprintf(`https://localhost:%d {
	tls internal
	route {
		websocket_relay %s {
			ping_interval 1s
			pong_timeout 1s
		}
		respond "not an upgrade"
	}
}
`, c.HTTPSPort, a.Addr))
	ended := 0
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("HTTP/%d", proto), func(t *testing.T) {
			path := fmt.Sprintf("/h%d/echo", proto)
			sc := dialStream(t, c, proto, path+"?q=1", http.Header{
				"Sec-Websocket-Version":  {"13"},
				"Sec-Websocket-Protocol": {"chat"},
			})
			if sc.resp.StatusCode != http.StatusOK {
				body, _ := io.ReadAll(io.LimitReader(sc.resp.Body, 200))
				t.Fatalf("answer %d %q, want 200", sc.resp.StatusCode, body)
			}
			if got := sc.resp.Header.Get("Sec-WebSocket-Protocol"); got != "chat" {
				body, _ := io.ReadAll(io.LimitReader(sc.resp.Body, 200))
				t.Fatalf("subprotocol %q, want chat (answer %v %q)", got, sc.resp.Header, body)
			}
			if got := sc.resp.Header.Get("Sec-WebSocket-Accept"); got != "" {
				t.Errorf("Sec-WebSocket-Accept %q on a stream, which has no key", got)
			}
			bc := a.accept(t, path)
			if bc.Req.RequestURI != path+"?q=1" || bc.Req.Header.Get("X-Forwarded-Proto") != "https" {
				t.Errorf("backend got %s with X-Forwarded-Proto %q", bc.Req.RequestURI, bc.Req.Header.Get("X-Forwarded-Proto"))
			}
			big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
			sc.send(t, ws.NewTextFrame([]byte("hello")))
			sc.send(t, ws.NewBinaryFrame(big))
			sc.send(t, ws.NewFrame(ws.OpText, false, []byte("frag-")))
			sc.send(t, ws.NewFrame(ws.OpContinuation, true, []byte("ment")))
			var got [][]byte
			var msg []byte
			for len(got) < 3 {
				f := sc.read(t, 10*time.Second)
				if f.Header.Masked {
					t.Fatal("a masked frame from the relay")
				}
				switch f.Header.OpCode {
				case ws.OpPing:
					sc.send(t, ws.NewPongFrame(f.Payload))
					continue
				case ws.OpText, ws.OpBinary, ws.OpContinuation:
				default:
					t.Fatalf("frame %v", f.Header.OpCode)
				}
				// gorilla's echo may write a message in several frames
				msg = append(msg, f.Payload...)
				if f.Header.Fin {
					got = append(got, msg)
					msg = nil
				}
			}
			if string(got[0]) != "hello" || !bytes.Equal(got[1], big) || string(got[2]) != "frag-ment" {
				t.Fatalf("echoes: %q, %d bytes, %q", got[0], len(got[1]), got[2])
			}
			// Idle: the relay pings the client, whose pong stays with it.
			deadline := time.Now().Add(5 * time.Second)
			for {
				f := sc.read(t, 5*time.Second)
				if f.Header.OpCode == ws.OpPing {
					sc.send(t, ws.NewPongFrame(f.Payload))
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("no relay ping")
				}
			}
			time.Sleep(300 * time.Millisecond)
			bc.noPingsOrPongs(t)
			sc.send(t, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye")))
			for {
				f := sc.read(t, 5*time.Second)
				if f.Header.OpCode == ws.OpClose {
					if code, reason := ws.ParseCloseFrameData(f.Payload); code != ws.StatusNormalClosure {
						t.Errorf("close %d %q, want the backend's answer, 1000 (gorilla's sends no reason)", code, reason)
					}
					if _, err := io.Copy(io.Discard, sc.resp.Body); err != nil {
						t.Errorf("%v after the close handshake, want the stream's clean end", err)
					}
					break
				}
			}
			if rec := bc.waitClosed(t, 5*time.Second); rec.Code != 1000 || rec.Reason != "bye" {
				t.Errorf("backend's close %+v, want the client's 1000 bye", rec)
			}
			lines := c.WaitConnClosed(ended + 1)
			if e := lines[len(lines)-1]; e.Str("closed_by") != "client" || e.Num("close_code") != 1000 {
				t.Errorf("log line %v, want the client's 1000", e)
			}
			ended++
		})
		t.Run(fmt.Sprintf("HTTP/%d silent client", proto), func(t *testing.T) {
			path := fmt.Sprintf("/h%d/silent/echo", proto)
			sc := dialStream(t, c, proto, path, http.Header{"Sec-Websocket-Version": {"13"}})
			bc := a.accept(t, path)
			sc.send(t, ws.NewTextFrame([]byte("last words")))
			last := time.Now()
			// Nothing more from the client: no pong to the relay's ping.
			rec := bc.waitClosed(t, 10*time.Second)
			took := rec.At.Sub(last)
			if rec.Code != 1001 || took > 3*time.Second+time.Second {
				t.Errorf("backend's close %+v after %v, want 1001 within ping 1s + pong 1s + 1s", rec, took)
			}
			c.WaitConnClosed(ended + 1)
			ended++
		})
	}
	t.Run("no version", func(t *testing.T) {
		for _, proto := range []int{2, 3} {
			sc := dialStream(t, c, proto, "/nover/echo", nil)
			body, _ := io.ReadAll(io.LimitReader(sc.resp.Body, 200))
			if sc.resp.StatusCode != http.StatusUpgradeRequired || sc.resp.Header.Get("Sec-WebSocket-Version") != "13" {
				t.Errorf("HTTP/%d without Sec-WebSocket-Version: %d %v %q, want 426 with version 13", proto, sc.resp.StatusCode, sc.resp.Header, body)
			}
		}
	})
	// Caddy stops: both streams' clients and backends get 1001, and
	// caddy exits (its handlers returned: the streams ended).
	var scs []*streamClient
	var bcs []*backendConn
	for _, proto := range []int{2, 3} {
		path := fmt.Sprintf("/h%d/exit/echo", proto)
		scs = append(scs, dialStream(t, c, proto, path, http.Header{"Sec-Websocket-Version": {"13"}}))
		bcs = append(bcs, a.accept(t, path))
	}
	c.Signal(syscall.SIGTERM)
	stopped := time.Now()
	for i, sc := range scs {
		for {
			f := sc.read(t, 5*time.Second)
			if f.Header.OpCode == ws.OpClose {
				if code, _ := ws.ParseCloseFrameData(f.Payload); code != ws.StatusGoingAway {
					t.Errorf("stream %d: close %d on exit, want 1001", i, code)
				}
				sc.send(t, ws.NewCloseFrame(f.Payload)) // the answer
				if _, err := io.Copy(io.Discard, sc.resp.Body); err != nil {
					t.Errorf("stream %d: %v after the close, want its end", i, err)
				}
				sc.done()
				break
			}
		}
		if rec := bcs[i].waitClosed(t, 5*time.Second); rec.Code != 1001 {
			t.Errorf("stream %d: backend's close %+v on exit, want 1001", i, rec)
		}
	}
	if !c.WaitExit(15 * time.Second) {
		t.Errorf("caddy still running 15s after SIGTERM")
	}
	t.Logf("caddy exited %v after SIGTERM", time.Since(stopped))
}
