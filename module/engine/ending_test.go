package engine

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// Tests of how a relay ends when a leg fails while frames are stuck in
// flight: the close frames must not wait for each other, and a relay must
// end even when writes fail on both legs.

// TestClientWriteTimeoutMidFrame: a client that stops reading while a
// large frame trickles in from the backend is dropped after the write
// timeout, not once the whole frame has come: the backend gets 1001 at
// once, between its own frame's chunks.
func TestClientWriteTimeoutMidFrame(t *testing.T) {
	cfg := quickConfig()
	cfg.WriteTimeout = 100 * time.Millisecond
	cfg.CloseTimeout = 500 * time.Millisecond
	h := startOpts(t, cfg, false) // the client never reads
	const size = 8 << 20          // 64 KiB every 50 ms: 6.4 s to send it all
	stop := make(chan struct{})
	trickled := make(chan struct{})
	go func() {
		defer close(trickled)
		var hdr sliceWriter
		hdr.buf = make([]byte, 0, ws.MaxHeaderSize)
		_ = ws.WriteHeader(&hdr, ws.Header{Fin: true, OpCode: ws.OpBinary, Length: size})
		h.backend.writeRaw(hdr.buf)
		chunk := payloadOf(64 << 10)
		for sent := 0; sent < size; sent += len(chunk) {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			h.backend.writeRaw(chunk)
		}
	}()
	began := time.Now()
	h.backend.expectClose(CodeGoingAway, 10*time.Second)
	took := time.Since(began)
	close(stop)
	<-trickled
	if limit := cfg.WriteTimeout + time.Second; took > limit {
		t.Fatalf("the backend got 1001 %v after the client stopped reading, want within %v", took, limit)
	}
	r := h.wait(t, cfg.CloseTimeout+2*time.Second)
	if r.Cause != "write timeout" || r.ClosedBy != "relay" || r.CloseCode != CodeGoingAway {
		t.Fatalf("result %+v, want relay/write timeout/1001", r)
	}
}

// TestShutdownWhileClientDoesNotRead: a frame from the backend is stuck
// on a client that reads nothing, so the client's close frame waits; the
// backend's does not wait for it.
func TestShutdownWhileClientDoesNotRead(t *testing.T) {
	h := startOpts(t, quickConfig(), false) // the client never reads
	go h.backend.send(ws.NewBinaryFrame(payloadOf(1 << 20)))
	time.Sleep(100 * time.Millisecond) // the relay is now stuck writing it
	h.session.Shutdown(CodeServiceRestart, "service restart")
	h.backend.expectClose(CodeServiceRestart, time.Second)
}

// failWriteConn is a connection whose writes all fail with a reset.
type failWriteConn struct{ net.Conn }

func (failWriteConn) Write([]byte) (int, error) { return 0, syscall.ECONNRESET }

// TestWriteFailsOnBothLegs: a client frame's write to the backend fails
// (reset), and the 1001 to the client then fails too (it reads nothing,
// so its write times out). Ending the client leg goes back to the
// backend's writer, which the failed frame's pump must not still hold.
func TestWriteFailsOnBothLegs(t *testing.T) {
	cTest, cRelay := net.Pipe()
	bTest, bRelay := net.Pipe()
	t.Cleanup(func() { cTest.Close(); bTest.Close() })
	cfg := Config{WriteTimeout: 200 * time.Millisecond, CloseTimeout: time.Second}
	s := New(Leg{Conn: cRelay}, Leg{Conn: failWriteConn{bRelay}}, cfg)
	result := make(chan Result, 1)
	go func() { result <- s.Run() }()
	go cTest.Write(mustCompile(t, ws.MaskFrame(ws.NewBinaryFrame([]byte("hello"))))) // the client never reads
	r := endsWithin(t, result, cfg.CloseTimeout+3*time.Second)
	if r.ClosedBy != "backend" || r.Cause != "backend went away" {
		t.Fatalf("result %+v, want the backend gone", r)
	}
}

// TestWritesFailCrossed: each pump holds the other leg's writer when its
// write fails: one is stuck writing a large backend frame to a client
// that reads nothing (until its write timeout), the other fails writing a
// client frame to a backend that went away. Neither may wait for the
// writer the other holds.
func TestWritesFailCrossed(t *testing.T) {
	cTest, cRelay := net.Pipe()
	bTest, bRelay := net.Pipe()
	t.Cleanup(func() { cTest.Close(); bTest.Close() })
	cfg := Config{WriteTimeout: 300 * time.Millisecond, CloseTimeout: 3 * time.Second}
	s := New(Leg{Conn: cRelay}, Leg{Conn: bRelay}, cfg)
	result := make(chan Result, 1)
	go func() { result <- s.Run() }()
	go func() { // the start of a 1 MiB frame for a client that never reads
		var hdr sliceWriter
		hdr.buf = make([]byte, 0, ws.MaxHeaderSize)
		_ = ws.WriteHeader(&hdr, ws.Header{Fin: true, OpCode: ws.OpBinary, Length: 1 << 20})
		_, _ = bTest.Write(hdr.buf)
		_, _ = bTest.Write(payloadOf(4 << 10))
	}()
	time.Sleep(50 * time.Millisecond)
	go cTest.Write(mustCompile(t, ws.MaskFrame(ws.NewBinaryFrame([]byte("hello")))))
	time.Sleep(50 * time.Millisecond) // its pump now waits for the backend to read
	bTest.Close()                     // and that write fails
	endsWithin(t, result, cfg.CloseTimeout+3*time.Second)
}

// TestRelayCloseAnswerNotForwarded: a peer's answer to the relay's own
// close frame ends that handshake and goes no further, so the other peer
// gets the relay's close frame, never the answer in its place: the
// offender of a protocol error gets 1002 even when the other peer answers
// its 1001 at once, and a shutdown's 1012 reaches both peers however fast
// each answers it.
func TestRelayCloseAnswerNotForwarded(t *testing.T) {
	// answer answers p's first close frame at once and reports its code.
	answer := func(p *peer) <-chan uint16 {
		got := make(chan uint16, 1)
		go func() {
			defer close(got)
			for f := range p.frames {
				if f.Header.OpCode == ws.OpClose {
					p.send(closeFrame(1000, "answer"))
					if f.Header.Masked {
						f = ws.UnmaskFrame(f)
					}
					code, _, _ := ParseClose(f.Payload)
					got <- code
					return
				}
			}
		}()
		return got
	}
	for i := range 120 {
		h := startTCP(t, quickConfig()) // writes that do not wait for the reader
		answer(h.backend)
		h.client.writeRaw(rawFrame(0x83, true, nil)) // reserved opcode
		if got := h.client.expectClose(CodeProtocolError, 2*time.Second); got == "answer" {
			t.Fatalf("run %d: the offender got the backend's answer", i)
		}
		h.wait(t, 3*time.Second)

		h = startTCP(t, quickConfig())
		client, backend := answer(h.client), answer(h.backend)
		h.session.Shutdown(CodeServiceRestart, "service restart")
		h.wait(t, 3*time.Second)
		for side, got := range map[string]<-chan uint16{"client": client, "backend": backend} {
			select {
			case code := <-got:
				if code != CodeServiceRestart {
					t.Fatalf("run %d: the %s got close %d, want the relay's 1012", i, side, code)
				}
			case <-time.After(2 * time.Second):
				t.Fatalf("run %d: the %s got no close frame", i, side)
			}
		}
	}
}

// TestViolationWhileOtherLegFails: the client breaks the protocol and the
// 1001 to the backend fails (every write to it resets). The backend's
// going must not put its own close frame (1014) in place of the 1002 the
// relay already owes the offender.
func TestViolationWhileOtherLegFails(t *testing.T) {
	for range 50 {
		cTest, cRelay := net.Pipe()
		bTest, bRelay := net.Pipe()
		client := newPeer(t, cTest, true, true)
		t.Cleanup(func() { bTest.Close() })
		s := New(Leg{Conn: cRelay}, Leg{Conn: failWriteConn{bRelay}}, quickConfig())
		result := make(chan Result, 1)
		go func() { result <- s.Run() }()
		client.writeRaw(rawFrame(0x83, true, nil)) // reserved opcode
		client.expectClose(CodeProtocolError, 2*time.Second)
		endsWithin(t, result, 5*time.Second)
	}
}

// TestTLSClientWriteTimeout: a TLS client that stops reading, its socket
// full, is given up on at the write timeout, and the backend gets its
// 1001 at once: the client's connection is closed beneath crypto/tls,
// whose close_notify alert would wait 5 s for the full socket first.
func TestTLSClientWriteTimeout(t *testing.T) {
	cTest, cRelay := loopbackPair(t)
	for _, c := range []net.Conn{cTest, cRelay} {
		c.(*net.TCPConn).SetReadBuffer(16 << 10)
		c.(*net.TCPConn).SetWriteBuffer(16 << 10)
	}
	client, server := tls.Client(cTest, clientTLS()), tls.Server(cRelay, serverTLS())
	handshakeBoth(t, server, client)
	t.Cleanup(func() { client.Close() })
	bTest, bRelay := net.Pipe()
	backend := newPeer(t, bTest, false, true)
	cfg := quickConfig()
	cfg.WriteTimeout = 100 * time.Millisecond
	s := New(Leg{Conn: server}, Leg{Conn: bRelay}, cfg)
	result := make(chan Result, 1)
	go func() { result <- s.Run() }()
	go backend.send(ws.NewBinaryFrame(payloadOf(4 << 20))) // the client reads none of it
	began := time.Now()
	backend.expectClose(CodeGoingAway, 10*time.Second)
	if took := time.Since(began); took > 2*time.Second {
		t.Fatalf("the backend got 1001 %v after the relay began writing to a client that reads nothing (write timeout 100ms)", took)
	}
	backend.send(closeFrame(CodeGoingAway, ""))
	r := endsWithin(t, result, 3*time.Second)
	if r.Cause != "write timeout" || r.CloseCode != CodeGoingAway {
		t.Fatalf("result %+v, want write timeout/1001", r)
	}
}

// TestViolationWhileLegGone: the backend goes away and the client breaks
// the protocol in the same instant. Whichever ending came first says why
// the relay ended, and the close frame the client gets says the same: the
// relay must not send the violation's 1002 while its log line says the
// backend went away (1014), nor the other way round.
func TestViolationWhileLegGone(t *testing.T) {
	t.Cleanup(func() { testHook.Store(nil) })
	for range 10 {
		cTest, cRelay := net.Pipe()
		bTest, bRelay := net.Pipe()
		client := newPeer(t, cTest, true, true)
		s := New(Leg{Conn: cRelay}, Leg{Conn: bRelay}, quickConfig())
		hook := func(hs *Session, at string, side Side) {
			if hs != s || at != "legGone sends" || side != Backend {
				return
			}
			// The client's violation arrives while the backend's going is
			// on its way to its close frame.
			client.writeRaw(rawFrame(0x83, true, nil)) // reserved opcode
			deadline := time.Now().Add(2 * time.Second)
			for {
				violated := s.running.Load() < 2 // the client's pump ended in violate
				if violated || time.Now().After(deadline) {
					if !violated {
						t.Error("the client's violation was not handled within 2s")
					}
					break
				}
				time.Sleep(time.Millisecond)
			}
			time.Sleep(20 * time.Millisecond) // the violation's frames would be out
		}
		testHook.Store(&hook)
		result := make(chan Result, 1)
		go func() { result <- s.Run() }()
		bTest.Close()
		reason := client.expectClose(CodeBadGateway, 3*time.Second)
		r := endsWithin(t, result, 5*time.Second)
		testHook.Store(nil)
		if r.Cause != "backend went away" || r.CloseCode != CodeBadGateway || r.CloseReason != reason {
			t.Fatalf("result %+v; the client got 1014 %q", r, reason)
		}
	}
}

// TestTLSCloseNotifyBounded: a wss client that took the close handshake's
// last frame and then reads nothing more (its socket full, or gone) does
// not hold the relay's end for crypto/tls's fixed 5 s wait on the
// close_notify alert that closing a TLS connection sends.
func TestTLSCloseNotifyBounded(t *testing.T) {
	cTest, cRelay := net.Pipe() // writes wait for a reader: the alert cannot go
	srv := serverTLS()
	srv.SessionTicketsDisabled = true // nothing written after the handshake
	client, server := tls.Client(cTest, clientTLS()), tls.Server(cRelay, srv)
	handshakeBoth(t, server, client)
	peer := newPeer(t, client, true, false)
	bTest, bRelay := net.Pipe()
	backend := newPeer(t, bTest, false, true)
	s := New(Leg{Conn: server}, Leg{Conn: bRelay}, quickConfig())
	result := make(chan Result, 1)
	go func() { result <- s.Run() }()
	backend.send(closeFrame(CodeNormal, "bye"))
	f, err := readFrame(bufio.NewReader(client)) // and nothing after it
	if err != nil || f.Header.OpCode != ws.OpClose {
		t.Fatalf("client read %+v, %v; want the backend's close frame", f.Header, err)
	}
	began := time.Now()
	peer.send(closeFrame(CodeNormal, "bye"))
	backend.expectClose(CodeNormal, 2*time.Second)
	r := endsWithin(t, result, 8*time.Second)
	if took := time.Since(began); took > 2*time.Second {
		t.Fatalf("the relay ended %v after the close handshake, waiting on a close_notify the client does not read", took)
	}
	if r.Cause != "backend closed" || r.CloseCode != CodeNormal {
		t.Fatalf("result %+v, want backend closed/1000", r)
	}
}

// raceHook sets testHook to run f once, at the point at of s's ending.
func raceHook(t *testing.T, s *Session, at string, f func()) {
	var once sync.Once
	hook := func(hs *Session, hat string, _ Side) {
		if hs == s && hat == at {
			once.Do(f)
		}
	}
	testHook.Store(&hook)
	t.Cleanup(func() { testHook.Store(nil) })
}

// TestBothLegsStall: the client stalls mid-frame and the backend gets
// 1001; then the backend stalls too. The result keeps the 1001 that went
// out: the second leg given up on sends nothing (its peer is gone) and
// must not wipe the first one's close code, the cause being the same.
func TestBothLegsStall(t *testing.T) {
	cfg := quickConfig()
	cfg.StallTimeout = 100 * time.Millisecond
	h := start(t, cfg)
	h.client.writeRaw([]byte{0x82}) // a frame's first byte, then nothing
	reason := h.backend.expectClose(CodeGoingAway, 2*time.Second)
	h.backend.writeRaw([]byte{0x82})
	r := h.wait(t, 5*time.Second)
	if r.Cause != "stalled mid-frame" || r.CloseCode != CodeGoingAway || r.CloseReason != reason {
		t.Fatalf("result %+v; the backend got 1001 %q", r, reason)
	}
}

// TestGoneLegGetsNoClose: a client cut for ping timeout gets no close
// frame, not even from a reload that comes in as it is cut; the backend
// gets the ping timeout's 1001, which the result gives.
func TestGoneLegGetsNoClose(t *testing.T) {
	client, backend, s := pingTimeoutRelay(t)
	raceHook(t, s, "legGone claimed", func() {
		s.Shutdown(CodeServiceRestart, "reload")
		time.Sleep(50 * time.Millisecond) // the reload's frames would be out
	})
	result := make(chan Result, 1)
	go func() { result <- s.Run() }()
	backend.expectClose(CodeGoingAway, 3*time.Second)
	backend.send(closeFrame(CodeGoingAway, ""))
	r := endsWithin(t, result, 5*time.Second)
	client.expectEnd(time.Second)
	for len(client.frames) > 0 {
		if f := <-client.frames; f.Header.OpCode == ws.OpClose {
			t.Fatalf("the client, cut for ping timeout, got a close frame %q", ws.UnmaskFrame(f).Payload)
		}
	}
	if r.Cause != causePingTimeout || r.CloseCode != CodeGoingAway {
		t.Fatalf("result %+v, want ping timeout/1001", r)
	}
}

// TestPeerCloseVsShutdown: a client's close frame and a reload in the
// same instant, either one first. The backend gets the close frame of the
// first, and the result says the same.
func TestPeerCloseVsShutdown(t *testing.T) {
	for _, first := range []string{"client", "reload"} {
		t.Run(first, func(t *testing.T) {
			h := start(t, quickConfig())
			if first == "client" {
				raceHook(t, h.session, "peer close claimed", func() {
					h.session.Shutdown(CodeServiceRestart, "reload")
					time.Sleep(50 * time.Millisecond)
				})
				h.client.send(closeFrame(CodeNormal, "bye"))
			} else {
				raceHook(t, h.session, "Shutdown claimed", func() {
					h.client.send(closeFrame(CodeNormal, "bye")) // the client pump reads it now
					time.Sleep(50 * time.Millisecond)
				})
				h.session.Shutdown(CodeServiceRestart, "reload")
			}
			want := map[string]uint16{"client": CodeNormal, "reload": CodeServiceRestart}[first]
			f := ws.UnmaskFrame(h.backend.nextSkipPings(2 * time.Second))
			h.backend.send(closeFrame(CodeNormal, ""))
			// The client's handshake, begun first, ends with the
			// backend's answer; else the client has the reload's.
			h.client.expectClose(want, 2*time.Second)
			r := h.wait(t, 5*time.Second)
			if f.Header.OpCode != ws.OpClose || len(f.Payload) < 2 {
				t.Fatalf("backend got %+v, want a close frame", f.Header)
			}
			if got := binary.BigEndian.Uint16(f.Payload); got != want || r.CloseCode != want {
				t.Fatalf("backend got close %d %q, result %+v; want %d for both", got, f.Payload[2:], r, want)
			}
		})
	}
}

// TestShutdownAsPeersClose: both peers send their close frames just as a
// reload has claimed both legs' close frames. The peers' frames then go
// unforwarded, so the relay must not end before its own are out: each
// peer gets the reload's 1012, which the result gives.
func TestShutdownAsPeersClose(t *testing.T) {
	h := start(t, quickConfig())
	raceHook(t, h.session, "Shutdown claimed", func() {
		h.client.send(closeFrame(CodeNormal, "client bye"))
		h.backend.send(closeFrame(CodeNormal, "backend bye"))
		time.Sleep(50 * time.Millisecond)
	})
	h.session.Shutdown(CodeServiceRestart, "reload")
	h.client.expectClose(CodeServiceRestart, 2*time.Second)
	h.backend.expectClose(CodeServiceRestart, 2*time.Second)
	if r := h.wait(t, 5*time.Second); r.Cause != "shutdown" || r.CloseCode != CodeServiceRestart {
		t.Fatalf("result %+v, want shutdown/1012", r)
	}
}

// TestShutdownDuringPeerHandshake: a reload while a close handshake the
// client began waits for the backend's answer leaves it to finish: the
// client gets the backend's answer, not 1012.
func TestShutdownDuringPeerHandshake(t *testing.T) {
	h := start(t, quickConfig())
	h.client.send(closeFrame(CodeNormal, "client bye"))
	h.backend.expectClose(CodeNormal, 2*time.Second)
	h.session.Shutdown(CodeServiceRestart, "reload")
	time.Sleep(50 * time.Millisecond)
	h.backend.send(closeFrame(CodeNormal, "backend answer"))
	if reason := h.client.expectClose(CodeNormal, 2*time.Second); reason != "backend answer" {
		t.Fatalf("client got 1000 %q, want the backend's answer", reason)
	}
	if r := h.wait(t, 5*time.Second); r.Cause != "client closed" || r.CloseCode != CodeNormal {
		t.Fatalf("result %+v, want client closed/1000", r)
	}
}

// TestPingTimeoutAsBackendCloses: the client is cut for ping timeout (off
// the pumps, from the keepalive's timer) and the backend's own close
// frame comes in before the relay's 1001 to it is written. That close
// frame, which the 1001 crosses, is not forwarded and ends the backend's
// pump; the relay must still write the 1001 before it ends.
func TestPingTimeoutAsBackendCloses(t *testing.T) {
	_, backend, s := pingTimeoutRelay(t)
	raceHook(t, s, "legGone sends", func() {
		backend.send(closeFrame(CodeNormal, "app bye"))
		time.Sleep(100 * time.Millisecond) // its pump ends meanwhile
	})
	result := make(chan Result, 1)
	go func() { result <- s.Run() }()
	backend.expectClose(CodeGoingAway, 3*time.Second)
	if r := endsWithin(t, result, 5*time.Second); r.Cause != causePingTimeout || r.CloseCode != CodeGoingAway {
		t.Fatalf("result %+v, want ping timeout/1001", r)
	}
}

// TestClientCloseBackendNotReading: the client's close frame cannot be
// forwarded to a backend that reads nothing (writes to the backend have
// no timeout); the close handshake still ends within CloseTimeout.
func TestClientCloseBackendNotReading(t *testing.T) {
	cTest, cRelay := net.Pipe()
	bTest, bRelay := net.Pipe()
	client := newPeer(t, cTest, true, true)
	newPeer(t, bTest, false, false) // never reads
	cfg := quickConfig()
	cfg.CloseTimeout = 300 * time.Millisecond
	s := New(Leg{Conn: cRelay}, Leg{Conn: bRelay}, cfg)
	result := make(chan Result, 1)
	go func() { result <- s.Run() }()
	client.send(closeFrame(CodeNormal, "bye"))
	if r := endsWithin(t, result, 2*time.Second); r.Cause != "client closed" || r.CloseCode != CodeNormal {
		t.Fatalf("result %+v, want client closed/1000", r)
	}
}

// TestBackendCloseToSlowClient: a client that reads nothing for a while,
// less than WriteTimeout but more than CloseTimeout, still gets the
// backend's close frame, and then CloseTimeout to answer it: the close
// timer starts once the frame went out, not when it came in.
func TestBackendCloseToSlowClient(t *testing.T) {
	cTest, cRelay := net.Pipe()
	bTest, bRelay := net.Pipe()
	client := newPeer(t, cTest, true, false) // starts reading after 1 s
	backend := newPeer(t, bTest, false, true)
	cfg := quickConfig()
	cfg.WriteTimeout = 3 * time.Second
	cfg.CloseTimeout = 500 * time.Millisecond
	s := New(Leg{Conn: cRelay}, Leg{Conn: bRelay}, cfg)
	result := make(chan Result, 1)
	go func() { result <- s.Run() }()
	backend.send(closeFrame(CodeNormal, "done"))
	time.Sleep(time.Second)
	go client.read()
	client.expectClose(CodeNormal, 2*time.Second)
	client.send(closeFrame(CodeNormal, "done"))
	backend.expectClose(CodeNormal, 2*time.Second)
	if r := endsWithin(t, result, 3*time.Second); r.Cause != "backend closed" || r.CloseCode != CodeNormal {
		t.Fatalf("result %+v, want backend closed/1000", r)
	}
}

// pingTimeoutRelay is a relay over pipes, not yet run, whose client reads
// but never answers the relay's pings, 50 ms apart: it is cut for ping
// timeout about 100 ms after Run.
func pingTimeoutRelay(t *testing.T) (client, backend *peer, s *Session) {
	cTest, cRelay := net.Pipe()
	bTest, bRelay := net.Pipe()
	client = newPeer(t, cTest, true, true)
	backend = newPeer(t, bTest, false, true)
	cfg := quickConfig()
	cfg.PingInterval = 50 * time.Millisecond
	cfg.PongTimeout = 50 * time.Millisecond
	return client, backend, New(Leg{Conn: cRelay}, Leg{Conn: bRelay}, cfg)
}

// TestUnwrittenCloseNotNamed: the result names only a relay-made close
// frame that was written. A shutdown whose 1012 fails on both legs ends
// with no close code, one whose 1012 reached one leg keeps it, and a
// protocol error whose 1002 fails on the offender names the 1001 the
// other leg got.
func TestUnwrittenCloseNotNamed(t *testing.T) {
	relay := func(t *testing.T, clientFails, backendFails bool) (client *peer, s *Session, result chan Result) {
		cTest, cRelay := net.Pipe()
		bTest, bRelay := net.Pipe()
		client = newPeer(t, cTest, true, true)
		newPeer(t, bTest, false, true)
		var c, b net.Conn = cRelay, bRelay
		if clientFails {
			c = failWriteConn{cRelay}
		}
		if backendFails {
			b = failWriteConn{bRelay}
		}
		s = New(Leg{Conn: c}, Leg{Conn: b}, quickConfig())
		result = make(chan Result, 1)
		go func() { result <- s.Run() }()
		return client, s, result
	}
	t.Run("shutdown, both fail", func(t *testing.T) {
		_, s, result := relay(t, true, true)
		s.Shutdown(CodeServiceRestart, "reload")
		r := endsWithin(t, result, 5*time.Second)
		if r.Cause != "shutdown" || r.CloseCode != 0 || r.CloseReason != "" {
			t.Fatalf("result %+v, want shutdown with no close code", r)
		}
	})
	t.Run("shutdown, one fails", func(t *testing.T) {
		client, s, result := relay(t, false, true)
		s.Shutdown(CodeServiceRestart, "reload")
		client.expectClose(CodeServiceRestart, 2*time.Second)
		r := endsWithin(t, result, 5*time.Second)
		if r.Cause != "shutdown" || r.CloseCode != CodeServiceRestart {
			t.Fatalf("result %+v, want shutdown with 1012", r)
		}
	})
	t.Run("violation, offender fails", func(t *testing.T) {
		client, _, result := relay(t, true, false)
		client.writeRaw(rawFrame(0x83, true, nil)) // reserved opcode
		r := endsWithin(t, result, 5*time.Second)
		if r.Cause != "protocol error from client: reserved opcode 0x3" || r.CloseCode != CodeGoingAway || r.CloseReason != "protocol error from client" {
			t.Fatalf("result %+v, want the protocol error with the backend's 1001", r)
		}
	})
}

// TestPeerCloseLikeRelayCloseKept: a peer's close frame that came first
// stays named even when a protocol error's later close frame, with the
// same code and reason, cannot be written.
func TestPeerCloseLikeRelayCloseKept(t *testing.T) {
	cTest, cRelay := net.Pipe()
	bTest, bRelay := net.Pipe()
	client := newPeer(t, cTest, true, true)
	backend := newPeer(t, bTest, false, true)
	s := New(Leg{Conn: cRelay}, Leg{Conn: failWriteConn{bRelay}}, quickConfig())
	result := make(chan Result, 1)
	go func() { result <- s.Run() }()
	backend.send(closeFrame(CodeGoingAway, "protocol error from client"))
	client.expectClose(CodeGoingAway, 2*time.Second)
	client.writeRaw(rawFrame(0x83, true, nil)) // reserved opcode; its 1001 to the backend fails
	r := endsWithin(t, result, 5*time.Second)
	if r.Cause != "backend closed" || r.CloseCode != CodeGoingAway || r.CloseReason != "protocol error from client" {
		t.Fatalf("result %+v, want the backend's close frame", r)
	}
}
