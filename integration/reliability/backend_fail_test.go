package reliability

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	rt "github.com/websocket-relay/websocket_relay/integration/relaytest"
)

// expectStatus dials path and checks that the relay answers status
// within [min, max] after the request and relays nothing else.
func expectStatus(t *testing.T, f *fixture, path string, status int, lo, hi time.Duration) {
	t.Helper()
	start := time.Now()
	_, err := rt.Dial(f.caddy.HTTPAddr(), path, rt.DialOptions{Timeout: 30 * time.Second})
	took := time.Since(start)
	var he *rt.HandshakeError
	if !errors.As(err, &he) || he.Resp == nil {
		t.Fatalf("want HTTP %d, got %v", status, err)
	}
	if he.Resp.StatusCode != status {
		t.Errorf("status %s (%q), want %d", he.Resp.Status, he.Body, status)
	}
	if took < lo || took > hi {
		t.Errorf("answered after %v, want between %v and %v", took, lo, hi)
	}
	t.Logf("%s: %s %q after %v", path, he.Resp.Status, strings.TrimSpace(string(he.Body)), took.Round(time.Millisecond))
}

// TestFailingBackends: a backend that refuses, hangs, babbles, lies about
// the accept key, resets mid-frame or between frames, or closes cleanly.
// Before the 101 every failure is a 502; after it, the client gets 1014
// between frames, a closed connection inside a frame (never a wrong
// message), or the backend's own close code.
func TestFailingBackends(t *testing.T) {
	t.Parallel()
	const handshakeTimeout = 2 * time.Second
	f := startRelay(t, relayOpts{options: []string{"handshake_timeout 2s", "dial_timeout 2s", "ping_interval 10s", "close_timeout 2s"}})

	t.Run("cases", func(t *testing.T) { failingBackendCases(t, f, handshakeTimeout) })
	f.caddy.CheckNoPanic()
}

func failingBackendCases(t *testing.T, f *fixture, handshakeTimeout time.Duration) {
	t.Run("refuses connections", func(t *testing.T) {
		t.Parallel()
		expectStatus(t, f, "/refused/x", http.StatusBadGateway, 0, time.Second)
	})
	t.Run("never answers the handshake", func(t *testing.T) {
		t.Parallel()
		f.backend.Handle("/silent", func(bc *rt.BackendConn) { _, _ = rt.WaitEnd(bc.R, bc.Conn, 30*time.Second) })
		expectStatus(t, f, "/silent", http.StatusBadGateway, handshakeTimeout-100*time.Millisecond, handshakeTimeout+2*time.Second)
	})
	t.Run("answers garbage", func(t *testing.T) {
		t.Parallel()
		f.backend.Handle("/garbage", func(bc *rt.BackendConn) {
			_ = bc.Answer("SSH-2.0-OpenSSH_9.6\r\n\x00\xff garbage\r\n\r\n")
			_, _ = rt.WaitEnd(bc.R, bc.Conn, 10*time.Second)
		})
		expectStatus(t, f, "/garbage", http.StatusBadGateway, 0, time.Second)
	})
	t.Run("wrong Sec-WebSocket-Accept", func(t *testing.T) { t.Parallel(); wrongAccept(t, f) })
	t.Run("resets mid-frame", func(t *testing.T) { t.Parallel(); resetMidFrame(t, f) })
	t.Run("resets between frames", func(t *testing.T) {
		t.Parallel()
		f.backend.Handle("/reset-between", func(bc *rt.BackendConn) {
			if bc.Accept() == nil && bc.Send(true, rt.OpText, []byte("last words")) == nil {
				time.Sleep(100 * time.Millisecond)
			}
			bc.Reset()
		})
		c := f.dial(t, "/reset-between", rt.DialOptions{})
		end := c.ReadToClose(10 * time.Second)
		if len(end.Data) != 1 || string(end.Data[0].Payload) != "last words" {
			t.Errorf("client got %d data frames before the end, want the one sent before the reset", len(end.Data))
		}
		expectClose(t, "client", end, 1014, "backend")
		if end.Close != nil {
			_ = c.Send(true, rt.OpClose, end.Close.Payload)
		}
		expectLog(t, f, c, 1014)
	})
	t.Run("closes cleanly", func(t *testing.T) {
		t.Parallel()
		for _, code := range []uint16{1000, 4001} {
			path := "/clean-close/" + http.StatusText(int(code))
			echoed := make(chan rt.Ending, 1)
			f.backend.Handle(path, func(bc *rt.BackendConn) {
				if bc.Accept() != nil || bc.Send(true, rt.OpClose, rt.ClosePayload(code, "bye")) != nil {
					return
				}
				echoed <- bc.ReadToClose(10 * time.Second)
			})
			c := f.dial(t, path, rt.DialOptions{})
			end := c.ReadToClose(10 * time.Second)
			expectClose(t, "client", end, int(code), "bye")
			if end.Close != nil && end.Close.Payload[2:] != nil && string(end.Close.Payload[2:]) != "bye" {
				t.Errorf("reason %q, want %q", end.Close.Payload[2:], "bye")
			}
			_ = c.Send(true, rt.OpClose, end.Close.Payload)
			expectClose(t, "backend (the client's answer)", <-echoed, int(code), "bye")
			if _, err := rt.WaitEnd(c.R, c.Conn, 10*time.Second); !rt.IsEnd(err) {
				t.Errorf("the relay did not close the client's connection after the close handshake: %v", err)
			}
			expectLog(t, f, c, float64(code))
		}
	})
}

// wrongAccept: the backend answers 101 with a wrong Sec-WebSocket-Accept
// and a frame right behind it; the client, which pipelined a frame behind
// its request, must get 502, and no byte may cross in either direction.
func wrongAccept(t *testing.T, f *fixture) {
	fromClient := make(chan []byte, 1)
	f.backend.Handle("/wrong-accept", func(bc *rt.BackendConn) {
		_ = bc.Answer(rt.SwitchingProtocols(rt.AcceptFor("not the client's key")) + string(rt.ServerFrame(true, rt.OpText, []byte("leaked")).Bytes()))
		got, _ := rt.WaitEnd(bc.R, bc.Conn, 3*time.Second)
		fromClient <- got
	})
	conn, err := rt.DialTCP(f.caddy.HTTPAddr(), rt.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := rt.UpgradeRequest(f.caddy.HTTPAddr(), "/wrong-accept", rt.NewKey(), nil)
	pipelined := rt.ClientFrame(true, rt.OpText, []byte("too early")).Bytes()
	if _, err := conn.Write(append(req, pipelined...)); err != nil {
		t.Fatal(err)
	}
	// Caddy keeps the connection after the 502 (the pipelined frame reads
	// as the start of a next request); all that matters arrives at once.
	got, _ := rt.WaitEnd(conn, conn, 2*time.Second)
	if !bytes.HasPrefix(got, []byte("HTTP/1.1 502 ")) {
		t.Errorf("client got %q, want a 502", got[:min(len(got), 64)])
	}
	if bytes.Contains(got, []byte("leaked")) || bytes.Contains(got, []byte(" 101 ")) {
		t.Errorf("the backend's 101 or frame reached the client: %q", got)
	}
	if b := <-fromClient; len(b) > 0 {
		t.Errorf("the backend got %d bytes after the upgrade request: %q", len(b), b)
	}
}

// resetMidFrame: the backend announces a 1 MiB frame, sends part of it and
// resets. The relay cannot finish the client's frame, so the client's
// connection must end with the bytes it got being a true prefix of that
// frame: no close frame slipped in, no complete message.
func resetMidFrame(t *testing.T, f *fixture) {
	const size, sent = 1 << 20, 300 << 10
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	f.backend.Handle("/reset-mid", func(bc *rt.BackendConn) {
		if bc.Accept() != nil {
			return
		}
		frame := rt.ServerFrame(true, rt.OpBinary, payload).Bytes()
		_ = bc.Write(frame[:len(frame)-size+sent])
		time.Sleep(300 * time.Millisecond)
		bc.Reset()
	})
	c := f.dial(t, "/reset-mid", rt.DialOptions{})
	h, n, err := rt.ReadHeader(c.R)
	if err != nil {
		t.Fatalf("client read no frame header: %v", err)
	}
	if h.Op != rt.OpBinary || n != size {
		t.Fatalf("client got a %#x frame of %d bytes first, want the binary frame of %d", h.Op, n, size)
	}
	_ = c.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, size)
	k, err := io.ReadFull(c.R, got)
	if err == nil {
		t.Fatalf("client got the whole %d-byte frame, but the backend sent only %d bytes of it", size, sent)
	}
	if !rt.IsEnd(err) {
		t.Fatalf("the client's connection did not end: %v after %d bytes", err, k)
	}
	if !bytes.Equal(got[:k], payload[:k]) || k > sent {
		t.Errorf("client got %d bytes that are not a prefix of the %d the backend sent", k, sent)
	}
	t.Logf("client got %d of the %d payload bytes sent, then %v", k, sent, err)
	lines := f.caddy.WaitLogs(1, 10*time.Second, rt.ConnClosedFrom(c.LocalAddr()))
	if len(lines) != 1 {
		t.Fatalf("%d \"connection closed\" lines, want 1", len(lines))
	}
	t.Logf("log: closed_by %q, cause %q, close_code %v", lines[0].Str("closed_by"), lines[0].Str("cause"), lines[0].Num("close_code"))
}

// expectLog checks the one "connection closed" line of client c.
func expectLog(t *testing.T, f *fixture, c *rt.Client, code float64) {
	t.Helper()
	lines := f.caddy.WaitLogs(1, 10*time.Second, rt.ConnClosedFrom(c.LocalAddr()))
	if len(lines) != 1 || lines[0].Num("close_code") != code {
		t.Errorf("want one \"connection closed\" line with close_code %v, got %v", code, lines)
	}
}
