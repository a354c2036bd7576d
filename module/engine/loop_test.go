//go:build linux

package engine

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

func init() {
	loopTransports = []string{"loop"}
	waitLoop = func(t *testing.T, s *Session) { t.Helper(); waitOnLoop(t, s, 2*time.Second) }
}

func loopConfig() Config {
	cfg := quickConfig()
	cfg.Loops = true
	return cfg
}

func onLoop(s *Session) bool { return s.onLoop() }

func loopBatchesOf(s *Session) int {
	s.loopMu.Lock()
	defer s.loopMu.Unlock()
	return s.batches
}

// waitOnLoop waits until the relay is on an event loop.
func waitOnLoop(t *testing.T, s *Session, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !onLoop(s); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("relay not on an event loop after %v", timeout)
		}
	}
}

// echoRounds sends n small frames each way, one at a time, and checks
// that each arrives as it was sent.
func echoRounds(t *testing.T, h *harness, n int) {
	t.Helper()
	for i := range n {
		up := ws.MaskFrame(ws.NewTextFrame(payloadOf(1 + i%200)))
		h.client.send(up)
		sameFrame(t, h.backend.next(2*time.Second), up)
		down := ws.NewBinaryFrame(payloadOf(1 + (i*7)%300))
		h.backend.send(down)
		sameFrame(t, h.client.next(2*time.Second), down)
	}
}

// closeBoth ends a relay with a close handshake started by the client.
func closeBoth(t *testing.T, h *harness) Result {
	t.Helper()
	closeHandshake(t, h.client, h.backend)
	return h.wait(t, 5*time.Second)
}

// TestLoopRelaysRoundTrips: a relay of two idle plain legs moves onto an
// event loop, which then relays small frames both ways without handing
// the relay back; the counters still add up.
func TestLoopRelaysRoundTrips(t *testing.T) {
	h := startTCP(t, loopConfig())
	waitOnLoop(t, h.session, 2*time.Second)
	batches := loopBatchesOf(h.session)
	echoRounds(t, h, 200)
	if !onLoop(h.session) {
		t.Fatal("the relay left the event loop while relaying small data frames")
	}
	if got := loopBatchesOf(h.session) - batches; got < 400 {
		t.Fatalf("the loops relayed %d batches, want at least 400", got)
	}
	r := closeBoth(t, h)
	if r.ClientToBackend.Frames != 201 || r.BackendToClient.Frames != 201 {
		t.Fatalf("frames %d / %d, want 201 each way (200 data, 1 close)", r.ClientToBackend.Frames, r.BackendToClient.Frames)
	}
}

// TestLoopPingsAndPongs: relay pings go to a client whose relay is on a
// loop, and its answers are consumed there, between data frames in the
// same read, without handing the relay back.
func TestLoopPingsAndPongs(t *testing.T) {
	cfg := loopConfig()
	cfg.PingInterval = 40 * time.Millisecond
	cfg.PongTimeout = 2 * time.Second
	h := startTCP(t, cfg)
	waitOnLoop(t, h.session, 2*time.Second)
	entries := loopEntries.Load()
	for i := range 5 {
		p := h.client.next(2 * time.Second)
		if p.Header.OpCode != ws.OpPing || string(p.Payload) != string(pingPayload) {
			t.Fatalf("got %v %q, want a relay ping", p.Header.OpCode, p.Payload)
		}
		// The answer between two data frames, in one write.
		a := ws.MaskFrame(ws.NewTextFrame([]byte("before " + itoa(i))))
		b := ws.MaskFrame(ws.NewTextFrame([]byte("after " + itoa(i))))
		var burst []byte
		for _, f := range []ws.Frame{a, ws.MaskFrame(ws.NewPongFrame(p.Payload)), b} {
			burst = append(burst, mustCompile(t, f)...)
		}
		h.client.writeRaw(burst)
		sameFrame(t, h.backend.next(2*time.Second), a)
		sameFrame(t, h.backend.next(2*time.Second), b)
	}
	if n := loopEntries.Load() - entries; n != 0 || !onLoop(h.session) {
		t.Fatalf("the relay left the loop (%d entries since, on a loop now: %v)", n, onLoop(h.session))
	}
	r := closeBoth(t, h)
	if r.PingsSent < 5 || r.PongsReceived < 5 {
		t.Fatalf("pings sent %d, pongs received %d, want at least 5 each", r.PingsSent, r.PongsReceived)
	}
}

// TestLoopShutdownAndPeerGone: Shutdown and a vanished peer reach a relay
// on a loop as they reach any other.
func TestLoopShutdownAndPeerGone(t *testing.T) {
	t.Run("shutdown", func(t *testing.T) {
		h := startTCP(t, loopConfig())
		waitOnLoop(t, h.session, 2*time.Second)
		shutdown(t, h, CodeServiceRestart)
	})
	t.Run("client gone", func(t *testing.T) {
		h := startTCP(t, loopConfig())
		waitOnLoop(t, h.session, 2*time.Second)
		h.client.conn.Close()
		if reason := h.backend.expectClose(CodeGoingAway, 2*time.Second); reason != "client went away" {
			t.Fatalf("reason %q", reason)
		}
		h.backend.send(closeFrame(CodeGoingAway, ""))
		r := h.wait(t, 3*time.Second)
		if r.ClosedBy != "client" || r.Cause != "client went away" {
			t.Fatalf("result %+v", r)
		}
	})
	t.Run("teardown", func(t *testing.T) {
		cfg := loopConfig()
		cfg.CloseTimeout = 100 * time.Millisecond
		h := startTCP(t, cfg)
		waitOnLoop(t, h.session, 2*time.Second)
		h.session.Shutdown(CodeGoingAway, "bye") // nobody answers: the close timer tears down
		h.client.expectClose(CodeGoingAway, 2*time.Second)
		h.client.expectEnd(2 * time.Second)
		h.backend.expectEnd(2 * time.Second)
		h.wait(t, 3*time.Second)
	})
}

// TestLoopCount: one loop per two of the runtime's CPUs, at least one, at
// most eight.
func TestLoopCount(t *testing.T) {
	for procs, want := range map[int]int{1: 1, 2: 1, 3: 1, 4: 2, 7: 3, 16: 8, 64: 8} {
		if got := loopsFor(procs); got != want {
			t.Errorf("%d CPUs: %d loops, want %d", procs, got, want)
		}
	}
	if got, want := loopCount(), loopsFor(runtime.GOMAXPROCS(0)); got != want {
		t.Errorf("loopCount() = %d with GOMAXPROCS %d, want %d", got, runtime.GOMAXPROCS(0), want)
	}
}

// TestLoopRelayHoldsNoGoroutine: relays on a loop run no goroutine of
// their own, and none is left when they end.
func TestLoopRelayHoldsNoGoroutine(t *testing.T) {
	thePoller()
	pairListener() // its accepting goroutine is there for good
	base := runtime.NumGoroutine() + loopCount() - loopsRunning()
	var hs []*harness
	for range 20 {
		hs = append(hs, startTCP(t, loopConfig()))
	}
	for _, h := range hs {
		waitOnLoop(t, h.session, 2*time.Second)
	}
	// Each harness runs Run's goroutine and two peer readers.
	waitGoroutines(t, base+3*len(hs), 2*time.Second)
	for _, h := range hs {
		echoRounds(t, h, 3)
		closeBoth(t, h)
	}
}

// TestLoopsExitWhenIdle: a loop that has had no relay for a while ends,
// and a new relay starts one again.
func TestLoopsExitWhenIdle(t *testing.T) {
	old := loopIdle.Swap(50)
	t.Cleanup(func() { loopIdle.Store(old) })
	waitLoops := func(want int) {
		t.Helper()
		for deadline := time.Now().Add(3 * time.Second); loopsRunning() != want; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d loops running, want %d", loopsRunning(), want)
			}
		}
	}
	waitLoops(0) // those of earlier tests
	h := startTCP(t, loopConfig())
	waitOnLoop(t, h.session, 2*time.Second)
	time.Sleep(200 * time.Millisecond) // idle relays keep their loop
	if loopsRunning() != 1 {
		t.Fatalf("%d loops running with one relay, want 1", loopsRunning())
	}
	echoRounds(t, h, 5)
	closeBoth(t, h)
	waitLoops(0)
}

// TestLoopPassesPeersPingsAndPongs: the peers' own pings and pongs, alone
// or between data frames, go through a loop unchanged, without a
// hand-back, as the pump would forward them.
func TestLoopPassesPeersPingsAndPongs(t *testing.T) {
	h := startTCP(t, loopConfig())
	waitOnLoop(t, h.session, 2*time.Second)
	entries := loopEntries.Load()
	up := []ws.Frame{
		ws.MaskFrame(ws.NewPingFrame([]byte("client ping"))),
		ws.MaskFrame(ws.NewTextFrame([]byte("data"))),
		ws.MaskFrame(ws.NewPongFrame([]byte("client pong"))),
		ws.MaskFrame(ws.NewPongFrame(pingPayload[:8])), // not a relay pong
		ws.MaskFrame(ws.NewPingFrame(nil)),
	}
	down := []ws.Frame{
		ws.NewPingFrame([]byte("backend ping")),
		ws.NewPongFrame(pingPayload), // a backend's pong is never the relay's
		ws.NewBinaryFrame([]byte{1, 2, 3}),
	}
	for _, f := range up {
		h.client.send(f)
		sameFrame(t, h.backend.next(2*time.Second), f)
	}
	var burst []byte
	for _, f := range up {
		burst = append(burst, mustCompile(t, f)...)
	}
	h.client.writeRaw(burst)
	for _, f := range up {
		sameFrame(t, h.backend.next(2*time.Second), f)
	}
	for _, f := range down {
		h.backend.send(f)
		sameFrame(t, h.client.next(2*time.Second), f)
	}
	if n := loopEntries.Load() - entries; n != 0 || !onLoop(h.session) {
		t.Fatalf("the relay left the loop (%d entries since, on a loop now: %v)", n, onLoop(h.session))
	}
	r := closeBoth(t, h)
	if r.ClientToBackend.Frames != 11 || r.BackendToClient.Frames != 4 || r.PongsReceived != 0 {
		t.Fatalf("frames %d / %d, pongs %d; want 11 / 4, 0", r.ClientToBackend.Frames, r.BackendToClient.Frames, r.PongsReceived)
	}
}

// TestLoopRelayAllocatesNothing: a frame relayed on a loop allocates
// nothing (the loop reads into its own buffer and parses with the leg's
// scratch space).
func TestLoopRelayAllocatesNothing(t *testing.T) {
	cTest, cRelay := loopbackPair(t)
	bTest, bRelay := loopbackPair(t)
	defer cTest.Close()
	defer bTest.Close()
	s := New(Leg{Conn: cRelay}, Leg{Conn: bRelay}, loopConfig())
	result := make(chan Result, 1)
	go func() { result <- s.Run() }()
	waitOnLoop(t, s, 2*time.Second)
	frame := mustCompile(t, ws.MaskFrame(ws.NewBinaryFrame(payloadOf(128))))
	got := make([]byte, len(frame))
	roundTrip := func() {
		if _, err := cTest.Write(frame); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(bTest, got); err != nil {
			t.Fatal(err)
		}
	}
	for range 100 { // warm up
		roundTrip()
	}
	const n = 2000
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for range n {
		roundTrip()
	}
	runtime.ReadMemStats(&m1)
	if !onLoop(s) {
		t.Fatal("the relay left its loop")
	}
	if per := float64(m1.Mallocs-m0.Mallocs) / n; per > 0.1 {
		t.Fatalf("%.2f allocations per frame relayed on a loop, want 0", per)
	}
	cTest.Close()
	bTest.Close()
	waitResult(t, result)
}

// TestBusyRelaysJoinLoops: relays that never fall idle for long go back
// onto the event loops soon after a hand-back: their legs park at the end
// of each linger, and a relay joins when both are parked at once. With a
// linger of a second, a busy relay could not be back before that second
// was out, and in a 100-connection round-trip run a tenth of the relays
// were still off the loops after 5 s.
func TestBusyRelaysJoinLoops(t *testing.T) {
	const n = 10
	hs := make([]*harness, n)
	big := ws.MaskFrame(ws.NewBinaryFrame(payloadOf(3 * blockSize))) // more than a read: handed back
	for i := range hs {
		hs[i] = startTCP(t, loopConfig())
		waitOnLoop(t, hs[i].session, 2*time.Second)
		hs[i].client.send(big)
		sameFrame(t, hs[i].backend.next(2*time.Second), big)
		if onLoop(hs[i].session) {
			t.Fatal("the relay stayed on its loop for a frame larger than a read")
		}
	}
	up := ws.MaskFrame(ws.NewBinaryFrame(payloadOf(128)))
	down := ws.NewBinaryFrame(payloadOf(128))
	upRaw, downRaw := mustCompile(t, up), mustCompile(t, down)
	// Each relay carries round trips back to back, as in a round-trip run,
	// until all are back on the loops or the test gives up.
	var stop atomic.Bool
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for _, h := range hs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				for _, leg := range []struct {
					from, to *peer
					raw      []byte
					want     ws.Frame
				}{{h.client, h.backend, upRaw, up}, {h.backend, h.client, downRaw, down}} {
					leg.from.writeRaw(leg.raw)
					select {
					case f := <-leg.to.frames:
						if !bytes.Equal(f.Payload, leg.want.Payload) {
							errs <- errors.New("a frame changed on the way")
							return
						}
					case <-time.After(2 * time.Second):
						errs <- errors.New("no round trip within 2 s")
						return
					}
				}
			}
		}()
	}
	defer func() { stop.Store(true); wg.Wait() }()
	began := time.Now()
	limit := 900 * time.Millisecond // a linger of a second could not be over
	for {
		on := 0
		for _, h := range hs {
			if onLoop(h.session) {
				on++
			}
		}
		if on == n {
			t.Logf("all %d busy relays back on the loops after %v", n, time.Since(began).Round(time.Millisecond))
			return
		}
		select {
		case err := <-errs:
			t.Fatal(err)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Since(began) > limit {
			t.Fatalf("%d of %d busy relays back on the event loops after %v, want all", on, n, limit)
		}
	}
}

// TestLoopJoinedAfterPingHeldWriter: when both legs of a relay park
// while a relay ping holds the client's writer, the last to park cannot
// take the relay onto a loop; once the ping is written, the relay joins
// one then, not at the peers' next frame (a client that never answers
// pings and a backend with nothing to say would keep it off for good).
// The test holds the writer itself while the legs park, as a ping in
// flight would, and lets the keepalive's ping take it from there.
func TestLoopJoinedAfterPingHeldWriter(t *testing.T) {
	cfg := loopConfig()
	cfg.PingInterval = 500 * time.Millisecond
	cfg.PongTimeout = 10 * time.Second
	h := startTCP(t, cfg)
	s := h.session
	waitOnLoop(t, s, 2*time.Second)
	c := s.legs[Client]
	// Off the loop, with a writer waiting, so both legs park in the poller.
	c.w.waiting.Add(1)
	s.recall()
	waitBothParked(t, h, 2*time.Second)
	c.w.mu.Lock() // held, as by a ping being written
	c.w.waiting.Add(-1)
	if onLoop(s) {
		t.Fatal("the relay joined a loop with the client's writer held")
	}
	// The keepalive's ping waits for the writer, then goes out through it.
	for deadline := time.Now().Add(2 * time.Second); c.w.waiting.Load() == 0; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			c.w.mu.Unlock()
			t.Fatal("no ping waited for the client's writer")
		}
	}
	c.w.mu.Unlock()
	if p := h.client.next(2 * time.Second); p.Header.OpCode != ws.OpPing || string(p.Payload) != string(pingPayload) {
		t.Fatalf("got %v %q, want a relay ping", p.Header.OpCode, p.Payload)
	}
	// Not answered: nothing comes from either peer now.
	for deadline := time.Now().Add(time.Second); !onLoop(s); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("relay still off the loops a second after the ping, both legs parked")
		}
	}
	closeBoth(t, h)
}
