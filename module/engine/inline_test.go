//go:build linux

package engine

import (
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// TestInlineRoundTrips: between plain TCP legs a lingering leg relays each
// frame from inside its read callback and then waits for the next one
// without the read that would find nothing. Every frame still arrives
// byte for byte, and the reads that found nothing stay far below one per
// frame (the relay used to make one after every frame).
func TestInlineRoundTrips(t *testing.T) {
	h := startTCP(t, quickConfig())
	requireInq(t, h.session)
	const trips = 300
	for i := 0; i < trips; i++ {
		up := ws.MaskFrame(ws.NewBinaryFrame([]byte(fmt.Sprintf("request %d", i))))
		h.client.send(up)
		sameFrame(t, h.backend.next(2*time.Second), up)
		down := ws.NewTextFrame([]byte(fmt.Sprintf("answer %d", i)))
		h.backend.send(down)
		sameFrame(t, h.client.next(2*time.Second), down)
	}
	h.client.send(closeFrame(1000, "bye"))
	h.backend.expectClose(1000, 2*time.Second)
	h.backend.send(closeFrame(1000, "bye"))
	h.client.expectClose(1000, 2*time.Second)
	h.wait(t, 5*time.Second)
	for _, l := range h.session.legs {
		t.Logf("%s leg: %d frames, %d inline batches, %d empty reads", l.side, l.counters.frames.Load(), l.inlined, l.rd.empties)
		if l.inlined < trips/2 {
			t.Errorf("%s leg relayed %d of %d frames inline, want most", l.side, l.inlined, trips)
		}
		if l.rd.empties > trips/4 {
			t.Errorf("%s leg made %d reads that found nothing over %d frames, want few", l.side, l.rd.empties, trips)
		}
	}
}

// TestInlineOwedBytesReachSlowBackend: when the backend's socket takes
// only part of a frame relayed inline, the rest is owed and written by
// the pump before anything else goes to that leg. A backend that reads
// nothing for a while, behind small socket buffers, still gets every
// frame whole and in order.
func TestInlineOwedBytesReachSlowBackend(t *testing.T) {
	client, backend, cRelay, bRelay := slowBackendLegs(t) // the backend reads nothing yet
	s := New(Leg{Conn: cRelay}, Leg{Conn: bRelay}, quickConfig())
	requireInq(t, s)
	result := make(chan Result, 1)
	go func() { result <- s.Run() }()

	var sent []ws.Frame
	for i := 0; i < 12; i++ {
		sent = append(sent, ws.MaskFrame(ws.NewBinaryFrame(payloadOf(20<<10+i))))
	}
	go func() {
		for _, f := range sent {
			client.send(f)
			// One frame per read, so that each can go inline: the next
			// goes once the relay has read this one (under load, frames
			// sent 1 ms apart could pile up in the socket and all go
			// through the pump).
			waitRead(t, cRelay, 2*time.Second)
		}
	}()
	time.Sleep(200 * time.Millisecond) // the relay blocks on the backend meanwhile
	go backend.read()
	expectSent(t, backend, sent)
	closeHandshake(t, client, backend)
	waitResult(t, result)
	c := s.legs[Client]
	t.Logf("client leg: %d inline batches, %d owed writes", c.inlined, c.paid)
	if c.inlined == 0 || c.paid == 0 {
		t.Errorf("client leg: %d inline batches, %d owed writes; want both", c.inlined, c.paid)
	}
	if n := BuffersHeld(); n != 0 {
		t.Errorf("%d read buffers held after the relay ended", n)
	}
}

// waitRead waits until the relay has read all that its end of a loopback
// connection, conn, received (the socket's SIOCINQ is 0), or for d.
func waitRead(t *testing.T, conn net.Conn, d time.Duration) {
	raw, err := conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Error(err)
		return
	}
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		n, ierr := 0, error(nil)
		if err := raw.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }); err != nil || ierr != nil {
			return // the relay closed it: nothing more to wait for
		}
		if n == 0 {
			return
		}
	}
}

// TestInlineWriteToResetBackend: a backend that resets its connection
// while the client streams frames ends the relay (the backend went away),
// whichever of the inline write, the owed write or the read notices it
// first, and the client gets 1014.
func TestInlineWriteToResetBackend(t *testing.T) {
	h := startTCP(t, quickConfig())
	warm := ws.MaskFrame(ws.NewBinaryFrame([]byte("warm")))
	h.client.send(warm)
	sameFrame(t, h.backend.next(2*time.Second), warm)
	h.backend.conn.(*net.TCPConn).SetLinger(0)
	h.backend.conn.Close() // RST
	go func() {
		for i := 0; i < 200; i++ {
			h.client.send(ws.MaskFrame(ws.NewBinaryFrame(payloadOf(1000 + i))))
		}
	}()
	h.client.expectClose(CodeBadGateway, 3*time.Second)
	r := h.wait(t, 5*time.Second)
	if r.ClosedBy != "backend" {
		t.Errorf("closed by %q (%s), want backend", r.ClosedBy, r.Cause)
	}
}

// requireInq fails when a TCP leg's reads do not say what the socket
// still holds (TCP_INQ, Linux 4.18); elsewhere legs read until the
// socket would block (sysinq_other.go) and these tests do not build.
func requireInq(t *testing.T, s *Session) {
	t.Helper()
	for _, l := range s.legs {
		if !l.rd.inq || !l.inlineOK {
			t.Fatalf("%s leg: TCP_INQ %v, inline relay %v; want both", l.side, l.rd.inq, l.inlineOK)
		}
	}
}

// TestInlineSeesFINBehindLastFrame: a backend whose last frame and FIN
// come in one segment (corked) is seen gone at once: the read that took
// the frame says a FIN is left (TCP_INQ counts it), so the leg reads
// again instead of waiting for bytes that will never come.
func TestInlineSeesFINBehindLastFrame(t *testing.T) {
	shortLinger(t, 10*time.Second) // a leg that missed the FIN would wait this long
	h := startTCP(t, quickConfig())
	requireInq(t, h.session)
	first := ws.NewTextFrame([]byte("first"))
	h.backend.send(first)
	sameFrame(t, h.client.next(2*time.Second), first) // the backend leg now lingers
	raw, err := h.backend.conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	_ = raw.Control(func(fd uintptr) {
		err = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, 1)
	})
	if err != nil {
		t.Fatal(err)
	}
	last := ws.NewTextFrame([]byte("last"))
	h.backend.send(last)
	start := time.Now()
	h.backend.conn.Close() // uncorks: the frame and the FIN go together
	sameFrame(t, h.client.next(2*time.Second), last)
	h.client.expectClose(CodeBadGateway, 2*time.Second)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("the backend's FIN was seen after %v", d)
	}
	r := h.wait(t, 5*time.Second)
	if r.ClosedBy != "backend" {
		t.Fatalf("closed by %q (%s), want backend", r.ClosedBy, r.Cause)
	}
}

// TestOwedWriteToClientKeepsBackendBlocked: paying bytes owed to the
// client leaves alone the flag that says a client frame waits for the
// backend (it belongs to the other direction): clearing it would let the
// keepalive take a client stuck behind a slow backend for dead.
func TestOwedWriteToClientKeepsBackendBlocked(t *testing.T) {
	cTest, cRelay := loopbackPair(t)
	bTest, bRelay := loopbackPair(t)
	defer bTest.Close()
	client := newPeer(t, cTest, true, true)
	s := New(Leg{Conn: cRelay}, Leg{Conn: bRelay}, quickConfig()) // not started: no pump runs
	defer cRelay.Close()
	defer bRelay.Close()
	src, dst := s.legs[Backend], s.legs[Client]
	f := ws.NewBinaryFrame([]byte("owed to the client"))
	wire := mustCompile(t, f)
	// As relayInline leaves it: the frame buffered in the backend leg's
	// reader, owed whole, the client's writer locked.
	dst.w.mu.Lock()
	src.rd.take()
	src.rd.w = copy(src.rd.blk[:], wire)
	src.owed = len(wire)
	s.backendBlocked.Store(true)
	s.payOwed(src, dst)
	src.rd.close()
	if !s.backendBlocked.Load() {
		t.Fatal("paying the client cleared backendBlocked")
	}
	if !dst.w.mu.TryLock() {
		t.Fatal("the client's writer is still locked after the owed bytes went")
	}
	sameFrame(t, client.next(2*time.Second), f)
}

// TestParkedLegDropsInlineState: the state a leg takes to relay inline
// (its callback's binding and the other writer's no-wait write state) is
// made as the leg starts to linger and dropped before it parks, so an
// idle connection carries none of it; a leg woken later makes it again.
func TestParkedLegDropsInlineState(t *testing.T) {
	shortLinger(t, 20*time.Millisecond)
	h := startTCP(t, quickConfig())
	requireInq(t, h.session)
	kept := func(l *leg) bool {
		l.park.mu.Lock()
		defer l.park.mu.Unlock()
		return l.rd.relay != nil || h.session.legs[l.side.other()].w.nb != nil
	}
	for i := 0; i < 3; i++ {
		up := ws.MaskFrame(ws.NewBinaryFrame([]byte("up " + itoa(i))))
		h.client.send(up)
		sameFrame(t, h.backend.next(2*time.Second), up)
		down := ws.NewBinaryFrame([]byte("down " + itoa(i)))
		h.backend.send(down)
		sameFrame(t, h.client.next(2*time.Second), down)
		waitBothParked(t, h, 2*time.Second)
		for _, l := range h.session.legs {
			if kept(l) {
				t.Fatalf("round %d: %v leg parked with its inline state", i, l.side)
			}
		}
	}
	for _, l := range h.session.legs {
		if l.inlined == 0 {
			t.Errorf("%v leg relayed nothing inline", l.side)
		}
	}
}

// TestLingerStartAllocatesNothing: a leg whose messages come more than a
// linger apart takes its inline state each time it starts to linger and
// gives it back before it parks; that state comes from a pool, so the
// cycle makes no garbage. (Under -race, sync.Pool drops a quarter of what
// it is given, so the bound is an average below one allocation; the
// state made anew each time took three.)
func TestLingerStartAllocatesNothing(t *testing.T) {
	shortLinger(t, 20*time.Millisecond)
	h := startTCP(t, quickConfig())
	requireInq(t, h.session)
	up := ws.MaskFrame(ws.NewBinaryFrame([]byte("up")))
	h.client.send(up)
	sameFrame(t, h.backend.next(2*time.Second), up)
	waitBothParked(t, h, 2*time.Second)
	l := h.session.legs[Client]
	l.park.mu.Lock() // a parked leg's state is its parking's to hand on
	given := true
	allocs := testing.AllocsPerRun(200, func() {
		h.session.inlineOn(l)
		given = given && l.rd.relay != nil
		h.session.inlineOff(l)
	})
	before := l.inlined
	l.park.mu.Unlock() // before any failure: the cleanup's teardown takes it
	if !given {
		t.Fatal("inlineOn gave the client leg no inline state")
	}
	if allocs >= 1 {
		t.Errorf("a linger start and end made %.2f allocations, want none (pooled)", allocs)
	}
	// The leg still relays, inline, after it is woken.
	up = ws.MaskFrame(ws.NewBinaryFrame([]byte("up again")))
	h.client.send(up)
	sameFrame(t, h.backend.next(2*time.Second), up)
	waitBothParked(t, h, 2*time.Second)
	l.park.mu.Lock()
	after := l.inlined
	l.park.mu.Unlock()
	if after == before {
		t.Error("the client leg relayed nothing inline after it was woken")
	}
}
