//go:build linux

package engine

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand"
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
	st.counters.Bytes += int64(len(hdr)) + h.Length // as the bytes came

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
