package engine

import (
	"bufio"
	"bytes"
	"encoding/binary"
	mrand "math/rand"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// burst compiles frames into one byte stream, masking them for a client.
func burst(t *testing.T, mask bool, frames []ws.Frame) (raw []byte, sent []ws.Frame) {
	t.Helper()
	for _, f := range frames {
		if mask {
			f = ws.MaskFrame(f)
		}
		sent = append(sent, f)
		raw = append(raw, mustCompile(t, f)...)
	}
	return raw, sent
}

// longForm is a frame whose 5-byte payload length is written in the
// 16-bit form: legal to read, not minimal; the relay re-encodes it.
func longForm(payload string) []byte {
	return append([]byte{0x82, 126, 0, byte(len(payload))}, payload...)
}

// TestBurstRelaysEveryFrame writes many frames in one write, so the relay
// finds several in one read and forwards them together: data frames of
// every length form, a fragmented message with the peer's pings between
// its fragments, a non-minimal header, and a pong to a relay ping that
// must be consumed, not forwarded. Each frame must arrive unchanged and
// in order, over a pipe and over TCP, each way.
func TestBurstRelaysEveryFrame(t *testing.T) {
	for _, transport := range append([]string{"pipe", "tcp"}, loopTransports...) {
		for _, from := range []Side{Client, Backend} {
			t.Run(transport+"/"+from.String(), func(t *testing.T) {
				t.Parallel()
				h := startOver(t, transport, quickConfig())
				src, dst := h.client, h.backend
				if from == Backend {
					src, dst = h.backend, h.client
				}
				frames := []ws.Frame{
					ws.NewBinaryFrame(nil),
					ws.NewTextFrame([]byte("a")),
					ws.NewBinaryFrame(payloadOf(125)),
					ws.NewBinaryFrame(payloadOf(126)),
					ws.NewBinaryFrame(payloadOf(3000)),
					ws.NewFrame(ws.OpText, false, []byte("frag")),
					ws.NewPingFrame([]byte("peer ping")),
					ws.NewFrame(ws.OpContinuation, false, payloadOf(70000)),
					ws.NewFrame(ws.OpContinuation, true, []byte("end")),
				}
				for i := 0; i < 200; i++ {
					frames = append(frames, ws.NewBinaryFrame(payloadOf(i)))
				}
				raw, want := burst(t, src.mask, frames)
				var relayPong []byte
				if from == Client {
					relayPong = mustCompile(t, ws.MaskFrame(ws.NewPongFrame(pingPayload)))
				}
				tail, tailWant := burst(t, src.mask, []ws.Frame{ws.NewBinaryFrame([]byte("after"))})
				// The relay's pong goes at a frame boundary past the middle.
				var stream []byte
				cut := 0
				for _, f := range want {
					cut += len(mustCompile(t, f))
					if cut >= len(raw)/2 {
						break
					}
				}
				stream = append(stream, raw[:cut]...)
				stream = append(stream, relayPong...)
				stream = append(stream, raw[cut:]...)
				if from == Backend {
					stream = append(stream, longForm("hello")...)
				} else {
					f := ws.MaskFrame(ws.NewBinaryFrame([]byte("hello")))
					b := mustCompile(t, f) // 2-byte header + 4-byte mask + payload
					stream = append(stream, b[0], 0x80|126, 0, 5)
					stream = append(stream, b[2:]...)
				}
				stream = append(stream, tail...)
				go src.writeRaw(stream)
				for i, f := range want {
					got := dst.nextSkipPings(5 * time.Second)
					if got.Header != f.Header || !bytes.Equal(got.Payload, f.Payload) {
						t.Fatalf("frame %d: header %+v len %d, want %+v len %d", i, got.Header, len(got.Payload), f.Header, len(f.Payload))
					}
				}
				got := dst.nextSkipPings(5 * time.Second)
				if got.Header.Length != 5 {
					t.Fatalf("long-form frame arrived as %+v", got.Header)
				}
				if got.Header.Masked {
					got = ws.UnmaskFrame(got)
				}
				if string(got.Payload) != "hello" {
					t.Fatalf("long-form payload %q", got.Payload)
				}
				sameFrame(t, dst.nextSkipPings(5*time.Second), tailWant[0])
				counted, r := closeAndCount(t, h, src, dst, from)
				// Every frame, the consumed pong and the close included.
				n := int64(len(want) + 3)
				if from == Client {
					n++
				}
				if counted.Frames != n {
					t.Fatalf("%d frames counted, want %d", counted.Frames, n)
				}
				if from == Client && r.PongsReceived != 1 {
					t.Fatalf("%d relay pongs counted, want 1", r.PongsReceived)
				}
			})
		}
	}
}

// TestBurstEndingInViolation: valid frames and then a bad one in the same
// write. The valid frames are all forwarded; then the offender gets 1002
// and the other side 1001.
func TestBurstEndingInViolation(t *testing.T) {
	for _, from := range []Side{Client, Backend} {
		t.Run(from.String(), func(t *testing.T) {
			t.Parallel()
			h := startTCP(t, quickConfig())
			src, dst := h.client, h.backend
			if from == Backend {
				src, dst = h.backend, h.client
			}
			var frames []ws.Frame
			for i := 0; i < 50; i++ {
				frames = append(frames, ws.NewBinaryFrame(payloadOf(i*10)))
			}
			raw, want := burst(t, src.mask, frames)
			raw = append(raw, rawFrame(0x80|0x40|0x2, src.mask, []byte("x"))...) // RSV1, none negotiated
			go src.writeRaw(raw)
			for i, f := range want {
				got := dst.nextSkipPings(5 * time.Second)
				if got.Header != f.Header || !bytes.Equal(got.Payload, f.Payload) {
					t.Fatalf("frame %d differs", i)
				}
			}
			if got := src.expectClose(CodeProtocolError, 5*time.Second); got != "RSV bits set without a negotiated extension" {
				t.Fatalf("reason %q", got)
			}
			dst.expectClose(CodeGoingAway, 5*time.Second)
		})
	}
}

// TestBatchStopsWhereThePumpMustLook checks batch on buffers directly:
// it takes whole data frames and the start of one cut short (not while a
// relay-made frame waits for the writer), and stops at control frames,
// cut headers, bad or non-minimal headers, and a header with none of its
// payload.
func TestBatchStopsWhereThePumpMustLook(t *testing.T) {
	bin := func(n int) []byte { return mustCompile(t, ws.NewBinaryFrame(payloadOf(n))) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name      string
		buf       []byte
		inMessage bool
		cutOK     bool
		n         int
		remaining int64
		frames    int64
	}{
		{"empty", nil, false, true, 0, 0, 0},
		{"three whole frames", cat(bin(0), bin(10), bin(200)), false, true, len(cat(bin(0), bin(10), bin(200))), 0, 3},
		{"whole then cut payload", cat(bin(10), bin(300)[:100]), false, true, len(bin(10)) + 100, 300 - (100 - 4), 2},
		{"whole then cut payload, a writer waiting", cat(bin(10), bin(300)[:100]), false, false, len(bin(10)), 0, 1},
		{"header with no payload", cat(bin(10), bin(300)[:4]), false, true, len(bin(10)), 0, 1},
		{"cut header", cat(bin(10), bin(300)[:3]), false, true, len(bin(10)), 0, 1},
		{"control frame", cat(bin(10), mustCompile(t, ws.NewPingFrame(nil)), bin(5)), false, true, len(bin(10)), 0, 1},
		{"bad RSV", cat(bin(1), rawFrame(0x80|0x40|0x2, false, []byte("x"))), false, true, len(bin(1)), 0, 1},
		{"non-minimal length", cat(bin(1), longForm("hello")), false, true, len(bin(1)), 0, 1},
		{"masked from backend", cat(bin(1), rawFrame(0x82, true, []byte("x"))), false, true, len(bin(1)), 0, 1},
		{"continuation ends message", cat(mustCompile(t, ws.NewFrame(ws.OpContinuation, true, []byte("x"))), bin(2)), true, true, len(cat(mustCompile(t, ws.NewFrame(ws.OpContinuation, true, []byte("x"))), bin(2))), 0, 2},
		{"new message inside fragmented", bin(2), true, true, 0, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Session{}
			l := &leg{side: Backend, inMessage: tc.inMessage}
			n, rem := s.batch(l, tc.buf, tc.cutOK)
			if n != tc.n || rem != tc.remaining || l.counters.frames.Load() != tc.frames {
				t.Fatalf("batch = %d, %d (%d frames); want %d, %d (%d frames)", n, rem, l.counters.frames.Load(), tc.n, tc.remaining, tc.frames)
			}
		})
	}
}

// TestLargeAndSmallFramesInterleaved alternates frames far larger than a
// read buffer with small ones, which end in the middle of a buffer and are
// batched with what follows, in one burst each way over TCP.
func TestLargeAndSmallFramesInterleaved(t *testing.T) {
	h := startTCP(t, quickConfig())
	sizes := []int{1 << 20, 10, 300 << 10, 0, 5, 129 << 10, 128<<10 - 1, 70000, 2 << 20, 1}
	for _, from := range []*peer{h.client, h.backend} {
		to := h.backend
		if from == h.backend {
			to = h.client
		}
		var frames []ws.Frame
		for _, n := range sizes {
			frames = append(frames, ws.NewBinaryFrame(payloadOf(n)))
		}
		raw, want := burst(t, from.mask, frames)
		go from.writeRaw(raw)
		for i, f := range want {
			got := to.nextSkipPings(10 * time.Second)
			if got.Header != f.Header || !bytes.Equal(got.Payload, f.Payload) {
				t.Fatalf("frame %d (%d bytes) differs", i, sizes[i])
			}
		}
	}
}

// slowReader hands the client at most n bytes per read, after a pause.
type slowReader struct {
	c net.Conn
	n int
	d time.Duration
}

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(s.d)
	return s.c.Read(p[:min(len(p), s.n)])
}

// TestShutdownReachesClientUnderStream: a backend streams frames of
// assorted sizes faster than the client reads, so every read of the relay
// fills its buffer and rarely ends on a frame boundary. Relay pings and
// Shutdown's close frame must still get between two frames: a batch that
// went on into a frame cut short whatever waited kept the writer's lock
// from one read to the next for good, and the client got no close frame
// (a 1006 for it).
func TestShutdownReachesClientUnderStream(t *testing.T) {
	cTest, cRelay := loopbackPair(t)
	bTest, bRelay := loopbackPair(t)
	cfg := Config{WriteTimeout: 5 * time.Second, CloseTimeout: 3 * time.Second, PingInterval: 200 * time.Millisecond, PongTimeout: 10 * time.Second}
	s := New(Leg{Conn: cRelay}, Leg{Conn: bRelay}, cfg)
	ran := make(chan Result, 1)
	go func() { ran <- s.Run() }()
	var wg sync.WaitGroup
	defer func() {
		cTest.Close()
		bTest.Close()
		wg.Wait()
		<-ran
	}()
	wg.Go(func() { // the backend drains what the relay sends it
		br := bufio.NewReader(bTest)
		for {
			if _, err := readFrame(br); err != nil {
				return
			}
		}
	})
	wg.Go(func() { // and streams frames until its connection fails
		rng := mrand.New(mrand.NewSource(1))
		for {
			var buf []byte
			for i := 0; i < 16; i++ {
				buf = append(buf, mustCompile(t, ws.NewBinaryFrame(make([]byte, 1000+rng.Intn(4000))))...)
			}
			if _, err := bTest.Write(buf); err != nil {
				return
			}
		}
	})
	type event struct {
		op   ws.OpCode
		code uint16
	}
	events := make(chan event, 1<<16)
	wg.Go(func() {
		defer close(events)
		br := bufio.NewReaderSize(slowReader{cTest, 8 << 10, 2 * time.Millisecond}, 64<<10)
		for {
			f, err := readFrame(br)
			if err != nil {
				return
			}
			e := event{op: f.Header.OpCode}
			if f.Header.OpCode == ws.OpClose && len(f.Payload) >= 2 {
				e.code = binary.BigEndian.Uint16(f.Payload)
			}
			events <- e
		}
	})
	time.Sleep(time.Second)
	began := time.Now()
	s.Shutdown(CodeServiceRestart, "reload")
	pings := 0
	for e := range events {
		switch e.op {
		case ws.OpPing:
			pings++
		case ws.OpClose:
			if e.code != CodeServiceRestart {
				t.Fatalf("close code %d, want %d", e.code, CodeServiceRestart)
			}
			if pings == 0 {
				t.Errorf("no relay ping reached the streaming client in %v", time.Since(began)+time.Second)
			}
			return
		}
	}
	t.Fatalf("the client's connection ended %v after Shutdown with no close frame; %d relay pings seen", time.Since(began), pings)
}
