package engine

import (
	"runtime"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// Tests of the relay's own socket paths: stalls, idle legs that give back
// their buffer and goroutine, large frames.

// TestStallMidFrame: a leg that announces a frame and then stalls is cut
// after the stall timeout. While nothing of the frame was forwarded yet
// the other leg still gets a proper close (1001 for a stalled client);
// once part of it was, the other leg's frame is torn and its connection
// is closed instead.
func TestStallMidFrame(t *testing.T) {
	cfg := quickConfig()
	cfg.StallTimeout = 150 * time.Millisecond
	for _, transport := range append([]string{"pipe", "tcp"}, loopTransports...) {
		t.Run(transport+"/header only", func(t *testing.T) {
			h := startOver(t, transport, cfg)
			// 4 GiB announced, nothing sent.
			h.client.writeRaw([]byte{0x82, 0x80 | 127, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4})
			began := time.Now()
			h.backend.expectClose(CodeGoingAway, 2*time.Second)
			if took := time.Since(began); took < 100*time.Millisecond || took > time.Second {
				t.Fatalf("cut after %v, want about 150ms", took)
			}
			h.client.expectEnd(time.Second)
			h.backend.send(closeFrame(1001, ""))
			if r := h.wait(t, 2*time.Second); r.Cause != "stalled mid-frame" || r.ClosedBy != "relay" {
				t.Fatalf("result %+v", r)
			}
		})
		t.Run(transport+"/part of the payload", func(t *testing.T) {
			h := startOver(t, transport, cfg)
			go h.client.writeRaw(append([]byte{0x82, 0x80 | 126, 0x10, 0, 1, 2, 3, 4}, make([]byte, 100)...))
			h.backend.expectEnd(2 * time.Second)
			h.client.expectEnd(time.Second)
			if r := h.wait(t, 2*time.Second); r.Cause != "stalled mid-frame" {
				t.Fatalf("result %+v", r)
			}
		})
	}
}

// TestIdleLegHoldsNoBuffer: between frames a plain-TCP leg gives its read
// buffer back.
func TestIdleLegHoldsNoBuffer(t *testing.T) {
	before := BuffersHeld()
	h := startTCP(t, quickConfig())
	f := ws.MaskFrame(ws.NewTextFrame([]byte("hello")))
	h.client.send(f)
	sameFrame(t, h.backend.next(2*time.Second), f)
	b := ws.NewTextFrame([]byte("back"))
	h.backend.send(b)
	sameFrame(t, h.client.next(2*time.Second), b)
	deadline := time.Now().Add(2 * time.Second)
	for BuffersHeld() != before {
		if time.Now().After(deadline) {
			t.Fatalf("%d read buffers held while idle, want %d", BuffersHeld(), before)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestIdleRelayParks: a relay over plain TCP that has been idle for the
// linger time keeps no goroutine: both legs are parked in the poller, and
// wake up when bytes arrive.
func TestIdleRelayParks(t *testing.T) {
	if thePoller() == nil {
		t.Skip("no poller on this platform: idle legs keep their goroutine")
	}
	pairListener() // its accepting goroutine is there for good
	base := runtime.NumGoroutine()
	// The harness adds three goroutines: the two peers' readers and the
	// one waiting for Run's result. The relay itself must add none.
	h := startTCP(t, quickConfig())
	base += 3
	for i := 0; i < 3; i++ {
		f := ws.MaskFrame(ws.NewTextFrame([]byte("ping " + itoa(i))))
		h.client.send(f)
		sameFrame(t, h.backend.next(2*time.Second), f)
		b := ws.NewBinaryFrame(payloadOf(100000))
		go h.backend.send(b)
		sameFrame(t, h.client.next(2*time.Second), b)
		waitGoroutines(t, base, 2*time.Second+lingerTime)
	}
	h.client.send(closeFrame(1000, ""))
	h.backend.expectClose(1000, 2*time.Second)
	h.backend.send(closeFrame(1000, ""))
	if r := h.wait(t, 2*time.Second); r.ClosedBy != "client" {
		t.Fatalf("result %+v", r)
	}
}

// TestParkedLegsEndOnTeardown: closing one peer of an idle, fully parked
// relay still ends the session (the parked legs are woken to finish).
func TestParkedLegsEndOnTeardown(t *testing.T) {
	h := startTCP(t, quickConfig())
	time.Sleep(20 * time.Millisecond) // both legs park
	h.backend.conn.Close()
	h.client.expectClose(CodeBadGateway, 2*time.Second)
	h.client.conn.Close()
	if r := h.wait(t, 3*time.Second); r.ClosedBy != "backend" {
		t.Fatalf("result %+v", r)
	}
	h2 := startTCP(t, quickConfig())
	time.Sleep(20 * time.Millisecond)
	h2.session.Shutdown(CodeGoingAway, "bye")
	h2.client.expectClose(CodeGoingAway, 2*time.Second)
	h2.backend.expectClose(CodeGoingAway, 2*time.Second)
	// Nobody answers: the close timeout tears the parked legs down.
	if r := h2.wait(t, 5*time.Second); r.Cause != "shutdown" {
		t.Fatalf("result %+v", r)
	}
}

// TestLargeFrameTornBySource: a large frame (many read buffers long)
// whose source dies half way can never be finished, so the other leg's
// connection is closed rather than sent a close frame after a torn frame.
func TestLargeFrameTornBySource(t *testing.T) {
	h := startTCP(t, quickConfig())
	full := mustCompile(t, ws.NewBinaryFrame(payloadOf(1<<20)))
	h.backend.writeRaw(full[:300<<10])
	time.Sleep(50 * time.Millisecond)
	h.backend.conn.Close()
	h.client.expectEnd(3 * time.Second)
	select {
	case f := <-h.client.frames:
		t.Fatalf("client got a %v frame of %d bytes from a torn frame", f.Header.OpCode, len(f.Payload))
	default:
	}
	r := h.wait(t, 3*time.Second)
	if r.Cause != "backend went away" || r.BackendToClient.Frames != 1 || r.CloseCode != 0 {
		t.Fatalf("result %+v, want backend went away with no close code (none could be sent)", r)
	}
}

// TestLargeFramesBothWays relays several large frames each way at once
// between TCP legs, checking every byte.
func TestLargeFramesBothWays(t *testing.T) {
	h := startTCP(t, quickConfig())
	var fromClient, fromBackend []ws.Frame
	for i := 0; i < 4; i++ {
		fromClient = append(fromClient, ws.MaskFrame(ws.NewBinaryFrame(payloadOf(700<<10+i))))
		fromBackend = append(fromBackend, ws.NewBinaryFrame(payloadOf(900<<10+i)))
	}
	go func() {
		for _, f := range fromClient {
			h.client.send(f)
		}
	}()
	go func() {
		for _, f := range fromBackend {
			h.backend.send(f)
		}
	}()
	for i := range fromClient {
		sameFrame(t, h.backend.next(10*time.Second), fromClient[i])
		sameFrame(t, h.client.next(10*time.Second), fromBackend[i])
	}
}

// TestParkedLegOutlivesLingerDeadline: a leg that parks straight after a
// frame (over the linger cap) and sleeps longer than the linger deadline
// still reads its next frame. A read deadline left behind once failed the
// first read after the wake-up, and the relay took the peer for gone.
func TestParkedLegOutlivesLingerDeadline(t *testing.T) {
	cfg := quickConfig()
	cfg.StallTimeout = 5 * time.Second // armed frames keep the read deadline they find
	h := startTCP(t, cfg)
	f := ws.MaskFrame(ws.NewTextFrame([]byte("one")))
	h.client.send(f)
	sameFrame(t, h.backend.next(2*time.Second), f) // the client leg lingers, then parks
	lingering.Add(lingerCap)                       // from now on legs park at once
	defer lingering.Add(-lingerCap)
	g := ws.MaskFrame(ws.NewTextFrame([]byte("two")))
	h.client.send(g) // read while lingering: the linger deadline stays set
	sameFrame(t, h.backend.next(2*time.Second), g)
	time.Sleep(lingerTime + 300*time.Millisecond) // parked past that deadline
	k := ws.MaskFrame(ws.NewTextFrame([]byte("three")))
	h.client.send(k)
	sameFrame(t, h.backend.next(2*time.Second), k)
}
