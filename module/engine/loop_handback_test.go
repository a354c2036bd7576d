//go:build linux

package engine

import (
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// Tests of relays handed back from an event loop to the goroutines.

// TestLoopHandsBackAndReturns: a frame the loop does not relay (a frame
// larger than a read, a header the pump must judge) hands the relay back
// to the pumps, which relay it as they always do; once both legs are idle
// again the relay returns to a loop.
func TestLoopHandsBackAndReturns(t *testing.T) {
	shortLinger(t, 20*time.Millisecond)
	h := startTCP(t, loopConfig())
	waitOnLoop(t, h.session, 2*time.Second)
	entries := loopEntries.Load()

	// A 2-byte length for a payload that fits in 7 bits: valid, but the
	// pump writes its header anew (minimally).
	long := append([]byte{0x82, 0x80 | 126, 0, 5, 1, 2, 3, 4}, []byte("hello")...)
	h.client.writeRaw(long)
	got := h.backend.next(2 * time.Second)
	if got.Header.Length != 5 || !got.Header.Masked || got.Header.Mask != [4]byte{1, 2, 3, 4} || string(got.Payload) != "hello" {
		t.Fatalf("got %+v %q", got.Header, got.Payload)
	}
	waitOnLoop(t, h.session, 2*time.Second)

	big := ws.NewBinaryFrame(payloadOf(300 << 10)) // cut across reads
	h.backend.send(big)
	sameFrame(t, h.client.next(5*time.Second), big)
	waitOnLoop(t, h.session, 2*time.Second)
	if loopEntries.Load()-entries < 2 {
		t.Fatalf("the relay joined a loop %d times after the first, want at least 2", loopEntries.Load()-entries)
	}
	echoRounds(t, h, 20)
	closeBoth(t, h)
}

// TestLoopOwedBytesReachSlowBackend: frames the loop could write only in
// part to a backend that reads nothing for a while are finished by the
// pump; the backend gets every frame whole and in order.
func TestLoopOwedBytesReachSlowBackend(t *testing.T) {
	client, backend, cRelay, bRelay := slowBackendLegs(t)
	s := New(Leg{Conn: cRelay}, Leg{Conn: bRelay}, loopConfig())
	result := make(chan Result, 1)
	go func() { result <- s.Run() }()
	waitOnLoop(t, s, 2*time.Second)
	var sent []ws.Frame
	for i := range 40 {
		sent = append(sent, ws.MaskFrame(ws.NewBinaryFrame(payloadOf(3000+i))))
	}
	go func() {
		for _, f := range sent {
			client.send(f)
			time.Sleep(time.Millisecond)
		}
	}()
	time.Sleep(200 * time.Millisecond) // the relay blocks on the backend meanwhile
	go backend.read()
	expectSent(t, backend, sent)
	closeHandshake(t, client, backend)
	waitResult(t, result)
	if c := s.legs[Client]; c.paid == 0 {
		t.Errorf("client leg: no owed writes; the test did not fill the backend's socket")
	}
	if n := BuffersHeld(); n != 0 {
		t.Errorf("%d read buffers held after the relay ended", n)
	}
}

// TestLoopHandBackFails: when the relay cannot take a socket back from a
// loop (net.FileConn fails, e.g. out of descriptors), that leg is lost: the
// other peer gets the close frame that says so, and the result agrees.
func TestLoopHandBackFails(t *testing.T) {
	calls := 0
	fileConnFn = func(fd int32) (net.Conn, error) {
		if calls++; calls == 1 { // the client's
			syscall.Close(int(fd))
			return nil, syscall.EMFILE
		}
		return fileConn(fd)
	}
	t.Cleanup(func() { fileConnFn = fileConn })
	h := startTCP(t, loopConfig())
	waitOnLoop(t, h.session, 2*time.Second)
	h.backend.send(ws.NewBinaryFrame(payloadOf(100 << 10))) // cut across reads: handed back
	const reason = "client lost in a hand-back from an event loop (too many open files)"
	if got := h.backend.expectClose(CodeGoingAway, 2*time.Second); got != reason {
		t.Fatalf("backend got reason %q, want %q", got, reason)
	}
	h.client.expectEnd(2 * time.Second)
	h.backend.send(closeFrame(CodeGoingAway, ""))
	r := h.wait(t, 3*time.Second)
	if r.ClosedBy != "relay" || r.CloseCode != CodeGoingAway || r.CloseReason != reason ||
		r.Cause != "lost in a hand-back from an event loop (too many open files)" {
		t.Fatalf("result %+v", r)
	}
	if n := BuffersHeld(); n != 0 {
		t.Errorf("%d read buffers held after the relay ended", n)
	}
}

// TestLoopPongAfterPartialWrite: a relay pong that follows data frames the
// loop could not write (the backend's socket is full) is handed back with
// them and consumed by the pump: counted once, never forwarded.
func TestLoopPongAfterPartialWrite(t *testing.T) {
	client, backend, cRelay, bRelay := slowBackendLegs(t) // the backend reads nothing
	cfg := loopConfig()
	cfg.PingInterval = 50 * time.Millisecond
	cfg.PongTimeout = 5 * time.Second
	s := New(Leg{Conn: cRelay}, Leg{Conn: bRelay}, cfg)
	result := make(chan Result, 1)
	go func() { result <- s.Run() }()
	waitOnLoop(t, s, 2*time.Second)
	p := client.next(2 * time.Second)
	if p.Header.OpCode != ws.OpPing {
		t.Fatalf("got %v, want a relay ping", p.Header.OpCode)
	}
	// Fill the backend's socket from the loop's side, as the loop would.
	s.loopMu.Lock()
	if !s.inLoop {
		s.loopMu.Unlock()
		t.Fatal("the relay left the loop")
	}
	junk := make([]byte, 4096)
	for {
		if _, err := sysWrite(uintptr(s.fds[Backend]), junk); err != nil {
			break
		}
	}
	s.loopMu.Unlock()
	var burst []byte
	for _, f := range []ws.Frame{ws.NewTextFrame([]byte("a")), ws.NewPongFrame(p.Payload), ws.NewTextFrame([]byte("b"))} {
		burst = append(burst, mustCompile(t, ws.MaskFrame(f))...)
	}
	client.writeRaw(burst)
	time.Sleep(200 * time.Millisecond) // the relay reads it all, then blocks on the backend
	client.conn.Close()
	backend.conn.Close()
	var r Result
	select {
	case r = <-result:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if r.PongsReceived != 1 || r.ClientToBackend.Frames != 3 {
		t.Fatalf("pongs received %d, client frames %d; want 1 and 3", r.PongsReceived, r.ClientToBackend.Frames)
	}
}

// TestLoopHandBackKeepsKeepalive: a socket handed back by a loop keeps its
// TCP keep-alive settings (net.FileConn would set Go's defaults).
func TestLoopHandBackKeepsKeepalive(t *testing.T) {
	cTest, cRelay := loopbackPair(t)
	bTest, bRelay := loopbackPair(t)
	want := net.KeepAliveConfig{Enable: true, Idle: 77 * time.Second, Interval: 7 * time.Second, Count: 3}
	if err := cRelay.(*net.TCPConn).SetKeepAliveConfig(want); err != nil {
		t.Fatal(err)
	}
	client, backend := newPeer(t, cTest, true, true), newPeer(t, bTest, false, true)
	s := New(Leg{Conn: cRelay}, Leg{Conn: bRelay}, loopConfig())
	result := make(chan Result, 1)
	go func() { result <- s.Run() }()
	waitOnLoop(t, s, 2*time.Second)
	big := ws.MaskFrame(ws.NewBinaryFrame(payloadOf(100 << 10)))
	client.send(big) // cut across reads: handed back; the legs then linger for a second
	sameFrame(t, backend.next(2*time.Second), big)
	// Under loopMu the relay cannot go back onto a loop (which would take
	// the conn away) meanwhile.
	s.loopMu.Lock()
	if s.inLoop {
		s.loopMu.Unlock()
		t.Fatal("still on the loop")
	}
	raw, err := s.legs[Client].rd.conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		s.loopMu.Unlock()
		t.Fatal(err)
	}
	var got [4]int
	_ = raw.Control(func(fd uintptr) {
		got[0], _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
		got[1], _ = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE)
		got[2], _ = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL)
		got[3], _ = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT)
	})
	s.loopMu.Unlock()
	if got != [4]int{1, 77, 7, 3} {
		t.Fatalf("keep-alive on, idle, interval, count = %v, want [1 77 7 3]", got)
	}
	closeHandshake(t, client, backend)
	waitResult(t, result)
}
