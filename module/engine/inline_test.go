package engine

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// TestInlineRoundTrips: between plain TCP legs a lingering leg relays each
// frame from inside its read callback and then waits for the next one
// without the read that would find nothing. Every frame still arrives
// byte for byte, and the reads that found nothing stay far below one per
// frame (the relay used to make one after every frame).
func TestInlineRoundTrips(t *testing.T) {
	if !shortReadDrains {
		t.Skip("reads go on until the socket would block on this platform (poller_other.go)")
	}
	h := startTCP(t, quickConfig())
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
		t.Logf("%s leg: %d frames, %d inline batches, %d empty reads", l.side, l.counters.Frames, l.inlined, l.rd.empties)
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
	if !shortReadDrains {
		t.Skip("no inline relay on this platform (poller_other.go)")
	}
	cTest, cRelay := loopbackPair(t)
	bTest, bRelay := loopbackPair(t)
	for _, c := range []net.Conn{bTest, bRelay} {
		c.(*net.TCPConn).SetReadBuffer(16 << 10)
		c.(*net.TCPConn).SetWriteBuffer(16 << 10)
	}
	client := newPeer(t, cTest, true, true)
	backend := newPeer(t, bTest, false, false) // reads nothing yet
	s := New(Leg{Conn: cRelay}, Leg{Conn: bRelay}, quickConfig())
	result := make(chan Result, 1)
	go func() { result <- s.Run() }()

	var sent []ws.Frame
	for i := 0; i < 12; i++ {
		sent = append(sent, ws.MaskFrame(ws.NewBinaryFrame(payloadOf(20<<10+i))))
	}
	go func() {
		for _, f := range sent {
			client.send(f)
			time.Sleep(time.Millisecond) // one frame per read: each goes inline
		}
	}()
	time.Sleep(200 * time.Millisecond) // the relay blocks on the backend meanwhile
	go backend.read()
	for i, want := range sent {
		got := backend.next(5 * time.Second)
		if got.Header != want.Header || string(got.Payload) != string(want.Payload) {
			t.Fatalf("frame %d differs", i)
		}
	}
	client.send(closeFrame(1000, "bye"))
	backend.expectClose(1000, 2*time.Second)
	backend.send(closeFrame(1000, "bye"))
	client.expectClose(1000, 2*time.Second)
	select {
	case <-result:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	c := s.legs[Client]
	t.Logf("client leg: %d inline batches, %d owed writes", c.inlined, c.paid)
	if c.inlined == 0 || c.paid == 0 {
		t.Errorf("client leg: %d inline batches, %d owed writes; want both", c.inlined, c.paid)
	}
	if n := BuffersHeld(); n != 0 {
		t.Errorf("%d read buffers held after the relay ended", n)
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
