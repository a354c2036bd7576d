//go:build linux

package engine

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// The differential test of the event loops: one seeded plan (both peers'
// byte streams, how they are cut into writes, the pauses between them) is
// run through a relay with Config.Loops and through one without, and the
// two must look the same from outside: the same bytes reach each peer and
// the relay reports the same result. Both runs are also held against a
// model of what the pumps do (minimal headers, relay pongs consumed), so a
// failure says which side is off. The relay never pings (PingInterval 0)
// and nothing else depends on timing, so any difference is a bug.

// diffSeeds is how many plans TestLoopMatchesPumps runs, seeds 1 to
// diffSeeds.
const diffSeeds = 24

// diffChunk is one write of a peer: the wire bytes up to end (from the
// previous chunk's end), then an optional pause, then optionally a meeting
// with the other peer's writer, after which both pause (so both legs go
// idle together and the relay may return to a loop).
type diffChunk struct {
	end   int
	pause time.Duration
	sync  bool
}

// diffFrame describes a frame of a stream's expected output, for messages.
type diffFrame struct {
	at   int // where it starts in want
	desc string
}

// diffStream is what one peer sends and what the other must receive.
type diffStream struct {
	side     Side
	wire     []byte      // as the peer writes it
	ends     []int       // where each frame ends in wire
	chunks   []diffChunk // how wire[:cut] is written
	cut      int         // the end of the chunked part; the rest is written alone
	plain    int         // wire[:plain] is a burst: whole frames, minimal headers, no cuts
	want     []byte      // what the relay must write to the other peer
	frames   []diffFrame // want's frames
	counters Counters    // the relay's counters for this direction
	pongs    int64       // relay pongs in wire (consumed, not forwarded)
}

// diffPlan is one seed's whole scenario.
type diffPlan struct {
	seed      int64
	linger    time.Duration // lingerTime for both runs
	syncs     int           // meetings of the two writers
	syncPause time.Duration // both writers' pause after a meeting
	slow      bool          // a small socket buffer to the backend, which ...
	slowDelay time.Duration // ... starts reading this long after the burst
	up, down  diffStream    // client to backend, backend to client
}

// diffHeader encodes h minimally (form 0, as ws.WriteHeader and the pump
// do), with a 16-bit length (form 1) or a 64-bit one (form 2).
func diffHeader(h ws.Header, form int) []byte {
	if form == 0 {
		var b bytes.Buffer
		if err := ws.WriteHeader(&b, h); err != nil {
			panic(err)
		}
		return b.Bytes()
	}
	b := []byte{byte(h.OpCode) | h.Rsv<<4, 0}
	if h.Fin {
		b[0] |= 0x80
	}
	if h.Masked {
		b[1] = 0x80
	}
	if form == 1 {
		b[1] |= 126
		b = binary.BigEndian.AppendUint16(b, uint16(h.Length))
	} else {
		b[1] |= 127
		b = binary.BigEndian.AppendUint64(b, uint64(h.Length))
	}
	if h.Masked {
		b = append(b, h.Mask[:]...)
	}
	return b
}

var diffOpNames = map[ws.OpCode]string{
	ws.OpContinuation: "continuation", ws.OpText: "text", ws.OpBinary: "binary",
	ws.OpClose: "close", ws.OpPing: "ping", ws.OpPong: "pong",
}

// add appends a frame with the (unmasked) payload: a client's is masked
// with a random key, and now and then its header is not minimal.
func (st *diffStream) add(rng *rand.Rand, fin bool, op ws.OpCode, payload []byte, what string) {
	h := ws.Header{Fin: fin, OpCode: op, Length: int64(len(payload))}
	if st.side == Client {
		h.Masked = true
		if rng.Intn(16) != 0 { // else the zero key, valid too
			rng.Read(h.Mask[:])
		}
	}
	onWire := append([]byte(nil), payload...)
	if h.Masked {
		ws.Cipher(onWire, h.Mask, 0)
	}
	form := 0
	if len(st.wire) >= st.plain && rng.Intn(12) == 0 {
		form = 1 + rng.Intn(2)
		if form == 1 && h.Length > 0xffff {
			form = 2
		}
	}
	hdr := diffHeader(h, form)
	odd := len(hdr) != ws.HeaderSize(h)
	st.wire = append(st.wire, hdr...)
	st.wire = append(st.wire, onWire...)
	st.ends = append(st.ends, len(st.wire))
	st.counters.Frames++
	st.counters.Bytes += int64(ws.HeaderSize(h)) + h.Length

	desc := fmt.Sprintf("frame %d (%s, %s fin=%v len=%d", len(st.ends)-1, what, diffOpNames[op], fin, len(payload))
	if odd {
		desc += fmt.Sprintf(", sent with a %d-byte header", len(hdr))
	}
	desc += fmt.Sprintf(", wire bytes %d-%d)", len(st.wire)-len(hdr)-len(onWire), len(st.wire))
	if st.side == Client && op == ws.OpPong && bytes.Equal(payload, pingPayload) {
		st.pongs++ // consumed: the relay forwards nothing
		return
	}
	st.frames = append(st.frames, diffFrame{at: len(st.want), desc: desc})
	st.want = append(st.want, diffHeader(h, 0)...)
	st.want = append(st.want, onWire...)
}

func diffPayload(rng *rand.Rand, n int, text bool) []byte {
	p := make([]byte, n)
	rng.Read(p)
	if text {
		for i := range p {
			p[i] = 'a' + p[i]%26
		}
	}
	return p
}

// control adds a ping or pong: a client's pong to a relay ping (consumed),
// or a peer's own ping or pong (forwarded), some of them look-alikes of a
// relay pong.
func (st *diffStream) control(rng *rand.Rand) {
	switch r := rng.Intn(10); {
	case st.side == Client && r < 4:
		st.add(rng, true, ws.OpPong, pingPayload, "relay pong")
	case r < 7:
		st.add(rng, true, ws.OpPing, diffPayload(rng, rng.Intn(126), false), "peer ping")
	default:
		p := diffPayload(rng, rng.Intn(126), false)
		switch rng.Intn(4) {
		case 0:
			p = append([]byte(nil), pingPayload...) // a backend's is never the relay's
			if st.side == Client {
				p[len(p)-1] ^= 1
			}
		case 1:
			p = append([]byte(nil), pingPayload[:8]...)
		}
		st.add(rng, true, ws.OpPong, p, "peer pong")
	}
}

// dataSize is a data frame's payload size: mostly small, some with a
// 16-bit length, a few larger than a read buffer (32 KiB).
func dataSize(rng *rand.Rand, large *int) int {
	switch r := rng.Intn(100); {
	case r < 70:
		return rng.Intn(126)
	case r < 92 || *large <= 0:
		return 126 + rng.Intn(6000)
	default:
		n := blockSize + 1 + rng.Intn(4*blockSize)
		*large -= n
		return n
	}
}

// more adds a random, valid stream of data frames, fragmented messages and
// pings and pongs, between frames and between fragments.
func (st *diffStream) more(rng *rand.Rand) {
	large := 400 << 10 // bytes of large frames, at most (about)
	items := 25 + rng.Intn(35)
	for range items {
		op := ws.OpBinary
		if rng.Intn(2) == 0 {
			op = ws.OpText
		}
		switch r := rng.Intn(100); {
		case r < 45:
			st.add(rng, true, op, diffPayload(rng, dataSize(rng, &large), op == ws.OpText), "message")
		case r < 65:
			parts := 2 + rng.Intn(4)
			for i := range parts {
				fop := op
				if i > 0 {
					fop = ws.OpContinuation
				}
				n := rng.Intn(300)
				if rng.Intn(3) == 0 {
					n = dataSize(rng, &large)
				}
				st.add(rng, i == parts-1, fop, diffPayload(rng, n, op == ws.OpText), fmt.Sprintf("fragment %d/%d", i+1, parts))
				for i < parts-1 && rng.Intn(10) < 4 {
					st.control(rng)
				}
			}
		default:
			st.control(rng)
		}
	}
}

// chunk cuts wire[:cut] into writes: at frame ends, several frames at once,
// or at random bytes (a burst only at frame ends, a millisecond apart);
// some followed by a pause, syncs of them (at most) by a meeting.
func (st *diffStream) chunk(rng *rand.Rand, syncs int) {
	st.chunks = nil
	pos, fi := 0, 0
	for pos < st.cut {
		for st.ends[fi] <= pos {
			fi++
		}
		var end int
		switch r := rng.Intn(100); {
		case pos < st.plain: // one to three whole frames, a read of the loop's each
			st.chunks = append(st.chunks, diffChunk{end: min(st.ends[min(fi+rng.Intn(3), len(st.ends)-1)], st.plain), pause: time.Millisecond})
			pos = st.chunks[len(st.chunks)-1].end
			continue
		case r < 45:
			end = st.ends[fi]
		case r < 70:
			end = st.ends[min(fi+1+rng.Intn(6), len(st.ends)-1)]
		case r < 90:
			end = pos + 1 + rng.Intn(16)
		default:
			end = pos + 1 + rng.Intn(4096)
		}
		c := diffChunk{end: min(end, st.cut)}
		if rng.Intn(100) < 15 {
			c.pause = time.Duration(rng.Intn(4000)) * time.Microsecond
		}
		st.chunks = append(st.chunks, c)
		pos = c.end
	}
	// The meetings, spread over the chunks after the burst (those the
	// stream has too few chunks for come after its last).
	first := 0
	for first < len(st.chunks) && st.chunks[first].end <= st.plain {
		first++
	}
	if n := len(st.chunks) - first; n > 0 {
		for _, i := range rng.Perm(n)[:min(syncs, n)] {
			st.chunks[first+i].sync = true
		}
	}
}

func genDiffPlan(seed int64) *diffPlan {
	rng := rand.New(rand.NewSource(seed))
	p := &diffPlan{seed: seed}
	p.linger = time.Duration(1+rng.Intn(5)) * time.Millisecond
	p.syncs = 6 + rng.Intn(8)
	p.syncPause = p.linger + 3*time.Millisecond
	if p.slow = rng.Intn(4) == 0; p.slow {
		p.slowDelay = time.Duration(5+rng.Intn(40)) * time.Millisecond
	}
	bye := ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye")

	p.up = diffStream{side: Client}
	if p.slow {
		// A burst of whole frames that the loop relays until the
		// backend's socket is full (it takes about 170 KB): it hands the
		// relay back with bytes owed, among them now and then a relay
		// pong.
		p.up.plain = 1 << 30
		for len(p.up.wire) < 240<<10 {
			if rng.Intn(6) == 0 {
				p.up.control(rng)
			}
			p.up.add(rng, true, ws.OpBinary, diffPayload(rng, 2000+rng.Intn(6000), false), "burst")
		}
		p.up.plain = len(p.up.wire)
	}
	p.up.more(rng)
	p.up.add(rng, true, ws.OpClose, bye, "close") // written with the frames before it
	p.up.cut = len(p.up.wire)
	p.up.chunk(rng, p.syncs)

	p.down = diffStream{side: Backend}
	p.down.more(rng)
	p.down.cut = len(p.down.wire)
	p.down.add(rng, true, ws.OpClose, bye, "close") // written once the client's came
	p.down.chunk(rng, p.syncs)
	return p
}

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
