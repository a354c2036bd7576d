//go:build linux

package engine

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// Running a differential plan (loop_diff_test.go) through both engines
// and comparing what the peers saw.

// diffSink collects every byte a peer receives until its connection ends,
// and notes the first close frame among them.
type diffSink struct {
	raw       bytes.Buffer
	closeSeen chan struct{}
	done      chan struct{}
}

func newDiffSink(conn net.Conn, start <-chan struct{}) *diffSink {
	k := &diffSink{closeSeen: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(k.done)
		<-start
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		br := bufio.NewReader(io.TeeReader(conn, &k.raw))
		seen := false
		for {
			f, err := readFrame(br)
			if err != nil {
				return
			}
			if f.Header.OpCode == ws.OpClose && !seen {
				seen = true
				close(k.closeSeen)
			}
		}
	}()
	return k
}

// diffOutcome is what one run looked like from outside, and how much of it
// went through a loop.
type diffOutcome struct {
	toClient, toBackend []byte
	result              Result
	entries             int64 // times the relay joined a loop
	batches             int   // writes of data frames the loops made
	paid                int   // writes of bytes owed by the loops or inline relays
}

// runDiff runs p through a relay, with the event loops or without.
func runDiff(t *testing.T, p *diffPlan, loops bool) diffOutcome {
	t.Helper()
	cTest, cRelay := loopbackPair(t)
	bTest, bRelay := loopbackPair(t)
	if p.slow {
		// As slowBackendLegs, on the relay's side only: a small receive
		// buffer on the backend's would make TCP crawl once it reads.
		bRelay.(*net.TCPConn).SetWriteBuffer(16 << 10)
	}
	client, backend := newPeer(t, cTest, true, false), newPeer(t, bTest, false, false)
	cfg := quickConfig() // PingInterval 0: the relay never pings
	cfg.CloseTimeout = 10 * time.Second
	cfg.Loops = loops
	entries := loopEntries.Load()
	s := New(Leg{Conn: cRelay}, Leg{Conn: bRelay}, cfg)
	result := make(chan Result, 1)
	go func() { result <- s.Run() }()
	if loops {
		waitOnLoop(t, s, 2*time.Second)
	}
	now, burst, late := make(chan struct{}), make(chan struct{}), make(chan struct{})
	close(now)
	if p.slow {
		go func() {
			<-burst
			time.Sleep(p.slowDelay)
			close(late)
		}()
	} else {
		close(late)
	}
	toClient, toBackend := newDiffSink(cTest, now), newDiffSink(bTest, late)

	meet := make([]sync.WaitGroup, p.syncs)
	for i := range meet {
		meet[i].Add(2)
	}
	write := func(pr *peer, st *diffStream) {
		pos, met := 0, 0
		if st.side == Client {
			defer func() {
				if pos < st.plain {
					close(burst)
				}
			}()
		}
		pass := func() {
			meet[met].Done()
			meet[met].Wait()
			met++
			time.Sleep(p.syncPause)
		}
		for _, c := range st.chunks {
			pr.writeRaw(st.wire[pos:c.end])
			if st.side == Client && pos < st.plain && c.end >= st.plain {
				close(burst)
			}
			pos = c.end
			if c.pause > 0 {
				time.Sleep(c.pause)
			}
			if c.sync {
				pass()
			}
		}
		for met < p.syncs {
			pass()
		}
	}
	go write(client, &p.up)
	go func() {
		write(backend, &p.down)
		select { // the backend answers the client's close
		case <-toBackend.closeSeen:
			backend.writeRaw(p.down.wire[p.down.cut:])
		case <-toBackend.done:
		}
	}()

	var r Result
	select {
	case r = <-result:
	case <-time.After(20 * time.Second):
		t.Fatalf("loops=%v: Run did not return", loops)
	}
	for _, k := range []*diffSink{toClient, toBackend} {
		select {
		case <-k.done:
		case <-time.After(5 * time.Second):
			t.Fatalf("loops=%v: a peer's connection is still open after Run returned", loops)
		}
	}
	if n := BuffersHeld(); n != 0 {
		t.Errorf("loops=%v: %d read buffers held after the relay ended", loops, n)
	}
	r.Duration = 0
	return diffOutcome{
		toClient: toClient.raw.Bytes(), toBackend: toBackend.raw.Bytes(), result: r,
		entries: loopEntries.Load() - entries, batches: loopBatchesOf(s),
		paid: s.legs[Client].paid + s.legs[Backend].paid,
	}
}

// diffBytes reports where got first differs from want, naming the frame
// of frames (want's) it falls in.
func diffBytes(got, want []byte, frames []diffFrame) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	where := "past the last frame"
	for _, f := range frames {
		if f.at <= i {
			where = f.desc
		}
	}
	return fmt.Sprintf("first difference at byte %d of %d (want %d), in %s: got % x, want % x",
		i, len(got), len(want), where, got[i:min(i+16, len(got))], want[i:min(i+16, len(want))])
}

// TestLoopMatchesPumps: for each seed, a random but valid stream each way
// (small and large data frames, fragmented messages, the peers' pings and
// pongs between frames and fragments, the client's answers to relay pings,
// now and then a header that is not minimal; written in pieces cut at
// random bytes or several frames at once, with pauses that let the relay
// return to a loop; sometimes to a backend that reads late behind a small
// socket buffer), ended by a close handshake, gets through a relay with
// the event loops exactly as through one without: the same bytes to each
// peer, the same result. The loops' run must have been on a loop, and
// over all seeds the loops must have relayed and the relay gone back onto
// them after hand-backs. LOOPDIFF_SEEDS=n runs seeds 1 to n instead.
func TestLoopMatchesPumps(t *testing.T) {
	seeds := int64(diffSeeds)
	if v := os.Getenv("LOOPDIFF_SEEDS"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			t.Fatalf("LOOPDIFF_SEEDS=%q", v)
		}
		seeds = n
	}
	var entries, batches, slowPaid []int
	for seed := int64(1); seed <= seeds; seed++ {
		p := genDiffPlan(seed)
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			shortLinger(t, p.linger)
			lp := runDiff(t, p, true)
			pp := runDiff(t, p, false)
			if lp.entries < 1 {
				t.Errorf("seed %d: the relay with loops never joined one", seed)
			}
			if pp.entries != 0 {
				t.Errorf("seed %d: the relay without loops joined one %d times", seed, pp.entries)
			}
			entries, batches = append(entries, int(lp.entries)), append(batches, lp.batches)
			if p.slow {
				slowPaid = append(slowPaid, lp.paid)
			}
			t.Logf("linger %v, slow backend %v, frames %d up (%d relay pongs) / %d down, wire bytes %d / %d; with loops: %d loop entries, %d loop batches, %d owed writes paid",
				p.linger, p.slow, p.up.counters.Frames, p.up.pongs, p.down.counters.Frames, len(p.up.wire), len(p.down.wire), lp.entries, lp.batches, lp.paid)

			checkDiff(t, seed, p, lp, pp)
		})
	}
	t.Logf("with loops, per seed: loop entries %v, loop batches %v; owed writes paid in the slow-backend runs %v", entries, batches, slowPaid)
	// Each run starts on a loop; the rest must have come back to one and
	// relayed there, not only handed back at the first frame.
	var e, b int
	for i := range entries {
		e, b = e+entries[i], b+batches[i]
	}
	if n := len(entries); n == int(seeds) && (e < 2*n || b < 2*n) {
		t.Errorf("over %d seeds the relay joined a loop %d times and the loops wrote %d batches; want at least %d each", n, e, b, 2*n)
	}
}

// checkDiff holds one plan's run with loops (lp) and without (pp) against
// each other and against the model.
func checkDiff(t *testing.T, seed int64, p *diffPlan, lp, pp diffOutcome) {
	t.Helper()
	// The loops against the pumps: what must be equal.
	if !bytes.Equal(lp.toBackend, pp.toBackend) {
		t.Errorf("seed %d: the backend got different bytes with loops than without: %s", seed, diffBytes(lp.toBackend, pp.toBackend, p.up.frames))
	}
	if !bytes.Equal(lp.toClient, pp.toClient) {
		t.Errorf("seed %d: the client got different bytes with loops than without: %s", seed, diffBytes(lp.toClient, pp.toClient, p.down.frames))
	}
	if lp.result != pp.result {
		t.Errorf("seed %d: results differ:\n with loops    %+v\n without loops %+v", seed, lp.result, pp.result)
	}

	// Both against the model, so that a failure says which is off.
	want := Result{
		ClosedBy: "client", Cause: "client closed", CloseCode: CodeNormal, CloseReason: "bye",
		ClientToBackend: p.up.counters, BackendToClient: p.down.counters, PongsReceived: p.up.pongs,
	}
	for _, o := range []struct {
		name string
		out  diffOutcome
	}{{"with loops", lp}, {"without loops", pp}} {
		if !bytes.Equal(o.out.toBackend, p.up.want) {
			t.Errorf("seed %d, %s: the backend's bytes are not the model's: %s", seed, o.name, diffBytes(o.out.toBackend, p.up.want, p.up.frames))
		}
		if !bytes.Equal(o.out.toClient, p.down.want) {
			t.Errorf("seed %d, %s: the client's bytes are not the model's: %s", seed, o.name, diffBytes(o.out.toClient, p.down.want, p.down.frames))
		}
		if o.out.result != want {
			t.Errorf("seed %d, %s: result %+v, the model's %+v", seed, o.name, o.out.result, want)
		}
	}
}

// FuzzLoopMatchesPumps is TestLoopMatchesPumps with the fuzzer choosing
// the seeds of the plans: the bytes each peer gets and the result must be
// the same with the event loops and without, and the model's.
func FuzzLoopMatchesPumps(f *testing.F) {
	for _, seed := range []int64{1, 7, 19, 24} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, seed int64) {
		p := genDiffPlan(seed)
		shortLinger(t, p.linger)
		lp := runDiff(t, p, true)
		pp := runDiff(t, p, false)
		if pp.entries != 0 {
			t.Fatalf("seed %d: the relay without loops joined one %d times", seed, pp.entries)
		}
		checkDiff(t, seed, p, lp, pp)
	})
}
