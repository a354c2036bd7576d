//go:build linux

package engine

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/gobwas/ws"
)

// uringWorks reports whether this machine gives the loops a ring.
func uringWorks() bool {
	u := newUring(2)
	if u == nil {
		return false
	}
	u.close()
	return true
}

// withFreshLoops runs f with the loops started anew (the running ones
// retired first, as a loop makes its ring when it starts), io_uring
// refused to new loops when plain is set.
func withFreshLoops(t *testing.T, plain bool, f func()) {
	t.Helper()
	idle := loopIdle.Load()
	loopIdle.Store(20)
	waitLoopsGone := func() {
		for deadline := time.Now().Add(5 * time.Second); loopsRunning() != 0; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d loops still running", loopsRunning())
			}
		}
	}
	waitLoopsGone()
	loopIdle.Store(idle)
	uringOff.Store(plain)
	defer uringOff.Store(false)
	f()
}

// TestLoopBatches: many relays on the loops, all busy at once, so that
// one epoll wait reports several sockets: with a ring, the loop reads
// and writes each batch through it; every frame arrives whole and in
// order both ways, the peers' pings and pongs with them, as without one.
func TestLoopBatches(t *testing.T) {
	for _, plain := range []bool{false, true} {
		t.Run(fmt.Sprintf("plain=%v", plain), func(t *testing.T) {
			withFreshLoops(t, plain, func() {
				before := loopsBatched()
				relayBusy(t, 30, 60)
				got := loopsBatched() - before
				switch {
				case plain && got != 0:
					t.Errorf("%d batches through a ring with io_uring off", got)
				case !plain && uringWorks() && got == 0:
					t.Error("no batch went through the ring")
				}
				t.Logf("batches through the ring: %d", got)
			})
		})
	}
}

// relayBusy starts n relays on the loops and has every client and
// backend send rounds bursts at once, each of a few frames (data of
// several sizes, and a peer's own ping or pong now and then), checking
// that each side gets every frame whole and in order, then closes them.
func relayBusy(t *testing.T, n, rounds int) {
	t.Helper()
	hs := make([]*harness, n)
	for i := range hs {
		hs[i] = startTCP(t, loopConfig())
		waitOnLoop(t, hs[i].session, 2*time.Second)
	}
	burst := func(i, r int, masked bool) []ws.Frame {
		var fs []ws.Frame
		for k := range 1 + (i+r)%3 {
			f := ws.NewBinaryFrame(payloadOf(1 + (i*31+r*7+k*13)%1500))
			if (i+r+k)%5 == 0 {
				f = ws.NewPingFrame([]byte(fmt.Sprint("peer ping ", i, r, k)))
			}
			if masked {
				f = ws.MaskFrame(f)
			}
			fs = append(fs, f)
		}
		return fs
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i, h := range hs {
		for _, dir := range []struct {
			from, to *peer
			masked   bool
		}{{h.client, h.backend, true}, {h.backend, h.client, false}} {
			wg.Go(func() {
				var want []ws.Frame
				for r := range rounds {
					fs := burst(i, r, dir.masked)
					var raw []byte
					for _, f := range fs {
						raw = append(raw, mustCompile(t, f)...)
					}
					dir.from.writeRaw(raw)
					want = append(want, fs...)
				}
				for k, w := range want {
					select {
					case f := <-dir.to.frames:
						if f.Header.OpCode != w.Header.OpCode || !bytes.Equal(unmasked(f), unmasked(w)) {
							errs <- fmt.Errorf("relay %d, frame %d: got %v of %d bytes, want %v of %d", i, k,
								f.Header.OpCode, len(f.Payload), w.Header.OpCode, len(w.Payload))
							return
						}
					case <-time.After(5 * time.Second):
						errs <- fmt.Errorf("relay %d: frame %d of %d not within 5 s", i, k, len(want))
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, h := range hs {
		closeBoth(t, h)
	}
}

// unmasked is f's payload as sent, unmasked.
func unmasked(f ws.Frame) []byte {
	p := bytes.Clone(f.Payload)
	if f.Header.Masked {
		ws.Cipher(p, f.Header.Mask, 0)
	}
	return p
}

// TestLoopBatchOwedBytes: in batches, writes the backends' full sockets
// take only in part are handed back with the rest, which the pumps
// finish: every backend gets every frame whole and in order.
func TestLoopBatchOwedBytes(t *testing.T) {
	withFreshLoops(t, false, func() {
		const n = 8
		type relay struct {
			client, backend *peer
			s               *Session
			result          chan Result
		}
		rs := make([]relay, n)
		for i := range rs {
			client, backend, cRelay, bRelay := slowBackendLegs(t)
			s := New(Leg{Conn: cRelay}, Leg{Conn: bRelay}, loopConfig())
			rs[i] = relay{client, backend, s, make(chan Result, 1)}
			go func() { rs[i].result <- s.Run() }()
			waitOnLoop(t, s, 2*time.Second)
		}
		sent := make([][]ws.Frame, n)
		var wg sync.WaitGroup
		for i := range rs {
			for k := range 40 {
				sent[i] = append(sent[i], ws.MaskFrame(ws.NewBinaryFrame(payloadOf(3000+k+i))))
			}
			wg.Go(func() {
				for _, f := range sent[i] {
					rs[i].client.send(f)
					time.Sleep(time.Millisecond)
				}
			})
		}
		time.Sleep(200 * time.Millisecond) // the backends read nothing meanwhile
		for i := range rs {
			go rs[i].backend.read()
		}
		wg.Wait()
		paid := 0
		for i := range rs {
			expectSent(t, rs[i].backend, sent[i])
			closeHandshake(t, rs[i].client, rs[i].backend)
			waitResult(t, rs[i].result)
			if rs[i].s.legs[Client].paid > 0 {
				paid++
			}
		}
		if paid == 0 {
			t.Error("no relay had owed writes: the test did not fill a backend's socket")
		}
		if n := BuffersHeld(); n != 0 {
			t.Errorf("%d read buffers held after the relays ended", n)
		}
	})
}

// TestUringABI: the ring's structures have the kernel's sizes
// (include/uapi/linux/io_uring.h), so every field lands where the
// kernel reads and writes it.
func TestUringABI(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"io_uring_sqe", unsafe.Sizeof(uringSQE{}), uringSQESize},
		{"io_uring_cqe", unsafe.Sizeof(uringCQE{}), uringCQESize},
		{"io_uring_params", unsafe.Sizeof(uringParams{}), 120},
		{"sqe.user_data", unsafe.Offsetof(uringSQE{}.userData), 32},
		{"sqe.msg_flags", unsafe.Offsetof(uringSQE{}.msgFlags), 28},
		{"params.sq_off", unsafe.Offsetof(uringParams{}.sqOff), 40},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", c.name, c.got, c.want)
		}
	}
}

// TestLoopBatchAllocatesNothing: frames relayed in batches through the
// ring allocate nothing either (the loop's blocks, slots and results are
// its own from its first batch on).
func TestLoopBatchAllocatesNothing(t *testing.T) {
	withFreshLoops(t, false, func() {
		const relays = 8
		var cTests, bTests []net.Conn
		results := make(chan Result, relays)
		for range relays {
			cTest, cRelay := loopbackPair(t)
			bTest, bRelay := loopbackPair(t)
			cTests, bTests = append(cTests, cTest), append(bTests, bTest)
			s := New(Leg{Conn: cRelay}, Leg{Conn: bRelay}, loopConfig())
			go func() { results <- s.Run() }()
			waitOnLoop(t, s, 2*time.Second)
		}
		frame := mustCompile(t, ws.MaskFrame(ws.NewBinaryFrame(payloadOf(128))))
		got := make([]byte, len(frame))
		round := func() {
			for _, c := range cTests {
				if _, err := c.Write(frame); err != nil {
					t.Fatal(err)
				}
			}
			for _, b := range bTests {
				if _, err := io.ReadFull(b, got); err != nil {
					t.Fatal(err)
				}
			}
		}
		for range 100 { // warm up
			round()
		}
		const n = 500
		batched := loopsBatched()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		for range n {
			round()
		}
		runtime.ReadMemStats(&m1)
		if per := float64(m1.Mallocs-m0.Mallocs) / (n * relays); per > 0.1 {
			t.Fatalf("%.2f allocations per frame relayed in batches, want 0", per)
		}
		if uringWorks() && loopsBatched() == batched {
			t.Fatal("no batch went through the ring")
		}
		t.Logf("batches: %d for %d frames", loopsBatched()-batched, n*relays)
		for i := range cTests {
			cTests[i].Close()
			bTests[i].Close()
		}
		for range relays {
			waitResult(t, results)
		}
	})
}
