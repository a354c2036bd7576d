//go:build linux

package engine

import (
	"bytes"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// TestLoopBatchPingsCloseManyLoops: many relays on four
// loops (GOMAXPROCS 8), relay pings every few ms answered by the clients
// inside their bursts, and each relay ending with a close frame written
// in the same write as its last data frames (a close inside a batch's
// read). Every data frame arrives whole and in order, every relay ends
// with the client's close, pongs are counted, no buffer is held.
func TestLoopBatchPingsCloseManyLoops(t *testing.T) {
	if !uringWorks() {
		t.Skip("no io_uring")
	}
	old := runtime.GOMAXPROCS(8)
	defer runtime.GOMAXPROCS(old)
	withFreshLoops(t, false, func() {
		const n, rounds = 24, 80
		cfg := loopConfig()
		cfg.PingInterval = 3 * time.Millisecond
		cfg.PongTimeout = 5 * time.Second
		hs := make([]*harness, n)
		for i := range hs {
			hs[i] = startTCP(t, cfg)
			waitOnLoop(t, hs[i].session, 2*time.Second)
		}
		before := loopsBatched()
		if got := loopsRunning(); got < 2 {
			t.Logf("loops running: %d", got)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 4*n)
		for i, h := range hs {
			// Client side: answers relay pings at once, checks the
			// backend's data frames in order.
			var wantDown []ws.Frame
			doneDown := make(chan struct{})
			for r := range rounds {
				for k := range 1 + (i+r)%3 {
					wantDown = append(wantDown, ws.NewBinaryFrame(payloadOf(1+(i*31+r*7+k*13)%1200)))
				}
			}
			wg.Go(func() {
				defer close(doneDown)
				k := 0
				for k < len(wantDown) {
					select {
					case f := <-h.client.frames:
						if f.Header.OpCode == ws.OpPing && bytes.Equal(f.Payload, pingPayload) {
							h.client.writeRaw(mustCompile(t, ws.MaskFrame(ws.NewPongFrame(f.Payload))))
							continue
						}
						w := wantDown[k]
						if f.Header.OpCode != w.Header.OpCode || !bytes.Equal(f.Payload, w.Payload) {
							errs <- fmt.Errorf("relay %d, down frame %d: got %v of %d bytes, want %v of %d", i, k, f.Header.OpCode, len(f.Payload), w.Header.OpCode, len(w.Payload))
							return
						}
						k++
					case <-time.After(5 * time.Second):
						errs <- fmt.Errorf("relay %d: down frame %d of %d not within 5 s", i, k, len(wantDown))
						return
					}
				}
			})
			wg.Go(func() {
				for r := range rounds {
					var raw []byte
					for k := range 1 + (i+r)%3 {
						raw = append(raw, mustCompile(t, ws.NewBinaryFrame(payloadOf(1+(i*31+r*7+k*13)%1200)))...)
					}
					h.backend.writeRaw(raw)
				}
			})
			// Client to backend: bursts, the last with a close frame.
			wg.Go(func() {
				var want []ws.Frame
				for r := range rounds {
					var raw []byte
					for k := range 1 + (i+r)%3 {
						f := ws.MaskFrame(ws.NewTextFrame(payloadOf(1 + (i*17+r*5+k*11)%1400)))
						want = append(want, f)
						raw = append(raw, mustCompile(t, f)...)
					}
					if r == rounds-1 {
						<-doneDown
						raw = append(raw, mustCompile(t, ws.MaskFrame(closeFrame(1000, "bye")))...)
					}
					h.client.writeRaw(raw)
				}
				for k, w := range want {
					select {
					case f := <-h.backend.frames:
						if f.Header.OpCode != w.Header.OpCode || !bytes.Equal(unmasked(f), unmasked(w)) {
							errs <- fmt.Errorf("relay %d, up frame %d: got %v of %d bytes, want %v", i, k, f.Header.OpCode, len(f.Payload), w.Header.OpCode)
							return
						}
					case <-time.After(5 * time.Second):
						errs <- fmt.Errorf("relay %d: up frame %d of %d not within 5 s", i, k, len(want))
						return
					}
				}
				select {
				case f := <-h.backend.frames:
					if f.Header.OpCode != ws.OpClose {
						errs <- fmt.Errorf("relay %d: got %v, want the client's close", i, f.Header.OpCode)
						return
					}
				case <-time.After(5 * time.Second):
					errs <- fmt.Errorf("relay %d: no close at the backend", i)
					return
				}
				h.backend.send(closeFrame(1000, "bye"))
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		pongs := int64(0)
		for i, h := range hs {
			r := h.wait(t, 5*time.Second)
			if r.CloseCode != 1000 || r.ClosedBy != "client" {
				t.Errorf("relay %d ended %+v", i, r)
			}
			pongs += r.PongsReceived
		}
		t.Logf("batches %d, pongs %d, loops %d", loopsBatched()-before, pongs, loopsRunning())
		if n := BuffersHeld(); n != 0 {
			t.Errorf("%d read buffers held after the relays ended", n)
		}
	})
}
