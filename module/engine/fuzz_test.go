package engine

import (
	"bytes"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// FuzzParseClose feeds arbitrary close payloads to the parser: it must
// never panic, and whatever it accepts must be a code allowed on the wire
// with a UTF-8 reason.
func FuzzParseClose(f *testing.F) {
	for _, seed := range [][]byte{nil, {3}, closeBody(1000, ""), closeBody(1005, ""), closeBody(4999, "bye"), append(closeBody(1000, ""), 0xff)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		code, reason, err := ParseClose(p)
		if err != nil || len(p) == 0 {
			return
		}
		if !validCloseCode(code) || len(reason) != len(p)-2 {
			t.Fatalf("accepted %x as %d %q", p, code, reason)
		}
	})
}

// FuzzRelay feeds an arbitrary byte stream to the relay from the client
// and another from the backend. The relay must never panic or hang, and
// must always end with both connections closed.
func FuzzRelay(f *testing.F) {
	masked := func(fr ws.Frame) []byte {
		var b bytes.Buffer
		_ = ws.WriteFrame(&b, ws.MaskFrame(fr))
		return b.Bytes()
	}
	plain := func(fr ws.Frame) []byte {
		var b bytes.Buffer
		_ = ws.WriteFrame(&b, fr)
		return b.Bytes()
	}
	f.Add(masked(ws.NewTextFrame([]byte("hi"))), plain(ws.NewBinaryFrame([]byte{1, 2})))
	f.Add(masked(ws.NewFrame(ws.OpText, false, []byte("a"))), plain(ws.NewCloseFrame(closeBody(1000, ""))))
	f.Add(rawFrame(0x82, false, []byte("x")), rawFrame(0x89, true, nil))
	f.Add([]byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, []byte{0x88, 0x01, 0x03})
	f.Add(masked(ws.NewPingFrame(pingPayload)), plain(ws.NewPongFrame(nil)))
	f.Fuzz(func(t *testing.T, fromClient, fromBackend []byte) {
		cTest, cRelay := net.Pipe()
		bTest, bRelay := net.Pipe()
		s := New(Leg{Conn: cRelay, Prefix: fromClient}, Leg{Conn: bRelay, Prefix: fromBackend},
			Config{WriteTimeout: time.Second, CloseTimeout: 50 * time.Millisecond, PingInterval: 10 * time.Millisecond, PongTimeout: 20 * time.Millisecond})
		go func() { _, _ = io.Copy(io.Discard, cTest) }()
		go func() { _, _ = io.Copy(io.Discard, bTest) }()
		done := make(chan Result, 1)
		go func() { done <- s.Run() }()
		// The prefixes are all the peers say; then they hang up.
		time.AfterFunc(2*time.Millisecond, func() { cTest.Close(); bTest.Close() })
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			buf := make([]byte, 1<<20)
			t.Fatalf("relay did not end:\n%s", buf[:runtime.Stack(buf, true)])
		}
	})
}

// FuzzRelayTCP is FuzzRelay over loopback TCP, where the relay's own
// socket paths run: waiting through syscall.RawConn, lingering, parking
// in the poller, batches of frames. The peers write their bytes, then hang up.
func FuzzRelayTCP(f *testing.F) { fuzzRelayTCP(f, false) }

// FuzzRelayLoop is FuzzRelayTCP with the event loops on: the peers write
// once the relay is on a loop (or after 50 ms), so the loop reads their
// bytes first and hands back whatever it does not relay.
func FuzzRelayLoop(f *testing.F) { fuzzRelayTCP(f, true) }

func fuzzRelayTCP(f *testing.F, loops bool) {
	f.Add(rawFrame(0x82, true, []byte("hi")), rawFrame(0x81, false, []byte("yo")))
	f.Add(append(rawFrame(0x01, true, []byte("a")), rawFrame(0x80, true, []byte("b"))...), rawFrame(0x88, false, closeBody(1000, "")))
	f.Add([]byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, []byte{0x88, 0x03, 0x03})
	f.Add(rawFrame(0x8a, true, pingPayload), append([]byte{0x82, 126, 0x80, 0}, make([]byte, 200)...))
	f.Fuzz(func(t *testing.T, fromClient, fromBackend []byte) {
		cTest, cRelay := loopbackPair(t)
		bTest, bRelay := loopbackPair(t)
		defer cTest.Close()
		defer bTest.Close()
		s := New(Leg{Conn: cRelay}, Leg{Conn: bRelay},
			Config{WriteTimeout: time.Second, CloseTimeout: 50 * time.Millisecond, StallTimeout: 50 * time.Millisecond,
				PingInterval: 10 * time.Millisecond, PongTimeout: 20 * time.Millisecond, Loops: loops})
		go func() { _, _ = io.Copy(io.Discard, cTest) }()
		go func() { _, _ = io.Copy(io.Discard, bTest) }()
		done := make(chan Result, 1)
		go func() { done <- s.Run() }()
		for deadline := time.Now().Add(50 * time.Millisecond); loops && !s.onLoop() && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		_, _ = cTest.Write(fromClient)
		_, _ = bTest.Write(fromBackend)
		time.AfterFunc(5*time.Millisecond, func() { cTest.Close(); bTest.Close() })
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			buf := make([]byte, 1<<20)
			t.Fatalf("relay did not end:\n%s", buf[:runtime.Stack(buf, true)])
		}
	})
}
