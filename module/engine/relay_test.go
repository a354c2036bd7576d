package engine

import (
	"bytes"
	"encoding/binary"
	"io"
	"math/rand"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

func payloadOf(n int) []byte {
	p := make([]byte, n)
	rand.New(rand.NewSource(int64(n))).Read(p)
	return p
}

// TestFramesPassUnchanged sends frames of the boundary sizes of RFC 6455
// 5.2 each way and checks that they arrive bit for bit: a client frame
// keeps its mask key and masked payload.
func TestFramesPassUnchanged(t *testing.T) {
	sizes := []int{0, 125, 126, 65535, 65536, 16 << 20}
	for _, transport := range append([]string{"pipe", "tcp"}, loopTransports...) {
		for _, dir := range []string{"client to backend", "backend to client"} {
			for _, n := range sizes {
				t.Run(transport+"/"+dir+"/"+itoa(n), func(t *testing.T) {
					t.Parallel()
					h := startOver(t, transport, quickConfig())
					from, to := h.client, h.backend
					if dir == "backend to client" {
						from, to = h.backend, h.client
					}
					f := ws.NewBinaryFrame(payloadOf(n))
					if from.mask {
						f = ws.MaskFrame(f)
					}
					go from.send(f)
					sameFrame(t, to.next(10*time.Second), f)
				})
			}
		}
	}
}

// TestFragmentedWithPeerPings relays a fragmented message with the peers'
// own pings between its fragments (RFC 6455 5.4): every frame arrives in
// order and unchanged, and peer pings and pongs travel end to end.
func TestFragmentedWithPeerPings(t *testing.T) {
	seqs := map[string][]ws.Frame{
		"client": {
			ws.NewFrame(ws.OpText, false, []byte("hel")),
			ws.NewPingFrame([]byte("client-ping")),
			ws.NewFrame(ws.OpContinuation, false, []byte("lo ")),
			ws.NewPongFrame([]byte("client-pong")),
			ws.NewFrame(ws.OpContinuation, true, []byte("world")),
			ws.NewBinaryFrame([]byte{1, 2, 3}),
		},
		"backend": {
			ws.NewFrame(ws.OpBinary, false, payloadOf(70000)),
			ws.NewPingFrame([]byte("backend-ping")),
			ws.NewFrame(ws.OpContinuation, false, nil),
			ws.NewFrame(ws.OpContinuation, true, []byte("end")),
		},
	}
	for name, seq := range seqs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := start(t, quickConfig())
			from, to := h.client, h.backend
			if name == "backend" {
				from, to = h.backend, h.client
			}
			want := make([]ws.Frame, len(seq))
			for i, f := range seq {
				if from.mask {
					f = ws.MaskFrame(f)
				}
				want[i] = f
			}
			go func() {
				for _, f := range want {
					from.send(f)
				}
			}()
			for _, f := range want {
				sameFrame(t, to.next(5*time.Second), f)
			}
		})
	}
}

// TestRelayPingWaitsForFrameInFlight streams a large frame slowly from the
// backend while a relay ping is due: the ping reaches the client only after
// the whole frame.
func TestRelayPingWaitsForFrameInFlight(t *testing.T) {
	cfg := quickConfig()
	cfg.PingInterval = 50 * time.Millisecond
	cfg.PongTimeout = 5 * time.Second
	h := start(t, cfg)
	payload := payloadOf(1 << 20)
	raw := mustCompile(t, ws.NewBinaryFrame(payload))
	go func() {
		for off := 0; off < len(raw); off += 64 << 10 {
			end := min(off+64<<10, len(raw))
			h.backend.writeRaw(raw[off:end])
			time.Sleep(20 * time.Millisecond) // 16 chunks: ~320 ms, well past the ping's due time
		}
	}()
	// Pings may go out before the frame starts (under load the relay may
	// not have its header yet); none may go inside it, which would tear
	// it. One ping falls due while it streams and must follow it at once.
	f := h.client.next(10 * time.Second)
	for f.Header.OpCode == ws.OpPing {
		h.client.send(ws.NewPongFrame(f.Payload)) // else no ping follows until the pong timeout
		f = h.client.next(10 * time.Second)
	}
	if f.Header.OpCode != ws.OpBinary || !bytes.Equal(f.Payload, payload) {
		t.Fatalf("got %v of %d bytes, want the whole binary frame", f.Header.OpCode, len(f.Payload))
	}
	p := h.client.next(time.Second)
	if p.Header.OpCode != ws.OpPing || !bytes.Equal(p.Payload, pingPayload) {
		t.Fatalf("frame after the large one is %v %q, want a relay ping", p.Header.OpCode, p.Payload)
	}
}

// TestRelayPongsConsumed answers relay pings; the backend never sees those
// pongs, while a pong the client sends on its own still reaches it.
func TestRelayPongsConsumed(t *testing.T) {
	cfg := quickConfig()
	cfg.PingInterval = 30 * time.Millisecond
	cfg.PongTimeout = 2 * time.Second
	h := start(t, cfg)
	for i := 0; i < 3; i++ {
		p := h.client.next(2 * time.Second)
		if p.Header.OpCode != ws.OpPing {
			t.Fatalf("got %v, want a relay ping", p.Header.OpCode)
		}
		h.client.send(ws.NewPongFrame(p.Payload))
	}
	own := ws.MaskFrame(ws.NewPongFrame([]byte("unsolicited")))
	h.client.send(own)
	sameFrame(t, h.backend.next(2*time.Second), own)
	h.client.send(closeFrame(1000, ""))
	h.backend.expectClose(1000, 2*time.Second)
	h.backend.send(closeFrame(1000, ""))
	r := h.wait(t, 5*time.Second)
	if r.PingsSent < 3 || r.PongsReceived < 3 {
		t.Fatalf("pings sent %d, pongs received %d, want at least 3 each", r.PingsSent, r.PongsReceived)
	}
}

// TestDeadClient stops answering: the backend gets 1001 within
// PingInterval + PongTimeout (plus scheduling slack) and the client's
// connection is closed.
func TestDeadClient(t *testing.T) {
	for _, transport := range append([]string{"pipe"}, loopTransports...) { // on a loop, the relay pings from there
		t.Run(transport, func(t *testing.T) {
			cfg := quickConfig()
			cfg.PingInterval = 100 * time.Millisecond
			cfg.PongTimeout = 100 * time.Millisecond
			h := startOver(t, transport, cfg)
			began := time.Now()
			h.backend.expectClose(CodeGoingAway, 2*time.Second)
			if took := time.Since(began); took > 200*time.Millisecond+500*time.Millisecond {
				t.Fatalf("dead client noticed after %v", took)
			}
			h.client.expectEnd(time.Second)
			h.backend.send(closeFrame(1001, ""))
			r := h.wait(t, 3*time.Second)
			if r.ClosedBy != "relay" || r.Cause != "ping timeout" || r.CloseCode != CodeGoingAway || r.PingsSent == 0 {
				t.Fatalf("result %+v, want relay/ping timeout/1001 after a ping", r)
			}
		})
	}
}

// TestClientDeadMidFrame: a client that goes silent in the middle of a
// frame of its own, which a backend takes as fast as it comes, is dead
// after PingInterval + PongTimeout like an idle one: the wait for its
// next bytes does not count as a wait for the backend, and it cannot
// answer the ping inside its frame. (It was kept alive until the stall
// timeout, without a ping.)
func TestClientDeadMidFrame(t *testing.T) {
	cfg := quickConfig()
	cfg.PingInterval = 100 * time.Millisecond
	cfg.PongTimeout = 100 * time.Millisecond
	cfg.StallTimeout = 4 * time.Second
	h := startTCP(t, cfg)
	// A masked binary frame of 1,000 bytes, of which only 10 ever come.
	h.client.writeRaw(append([]byte{0x82, 0x80 | 126, 0x03, 0xE8, 1, 2, 3, 4}, make([]byte, 10)...))
	began := time.Now()
	r := h.wait(t, 8*time.Second)
	if took := time.Since(began); r.Cause != causePingTimeout || r.PingsSent == 0 || took > time.Second {
		t.Fatalf("after %v: %+v; want a ping, then %q within about 200 ms", took, r, causePingTimeout)
	}
}

// TestClientControlBehindSlowBackend: a client's ping that waits for a
// backend that reads nothing keeps the client from counting as idle, as
// a data frame does: the relay pings it, its pong waits behind the ping,
// and the client must not be taken for dead. Once the backend reads, the
// ping, the pong's effect and a close handshake all go through.
func TestClientControlBehindSlowBackend(t *testing.T) {
	cfg := quickConfig()
	cfg.PingInterval = 100 * time.Millisecond
	cfg.PongTimeout = 300 * time.Millisecond // the close handshake below has 400 ms
	cTest, cRelay := net.Pipe()
	bTest, bRelay := net.Pipe() // a write to the backend waits until it reads
	client := newPeer(t, cTest, true, true)
	backend := newPeer(t, bTest, false, false)
	s := New(Leg{Conn: cRelay}, Leg{Conn: bRelay}, cfg)
	result := make(chan Result, 1)
	go func() { result <- s.Run() }()
	own := ws.MaskFrame(ws.NewPingFrame([]byte("client ping")))
	client.send(own)
	// Answer relay pings for five pong timeouts; the answers wait, unread,
	// behind the client's ping.
	var pongs sync.WaitGroup
	for deadline := time.Now().Add(5 * cfg.PongTimeout); time.Now().Before(deadline); {
		select {
		case f := <-client.frames:
			if f.Header.OpCode == ws.OpPing {
				pongs.Go(func() { client.send(ws.NewPongFrame(f.Payload)) })
			}
		case <-client.closed:
			t.Fatal("the relay dropped the client while its ping waited for the backend")
		case <-time.After(time.Until(deadline)):
		}
	}
	go backend.read()
	sameFrame(t, backend.nextSkipPings(2*time.Second), own)
	pongs.Wait() // the relay reads them now
	closeHandshake(t, client, backend)
	r := waitResult(t, result)
	if r.Cause == causePingTimeout {
		t.Fatalf("result %+v: the client was taken for dead", r)
	}
}

// TestClientWriteTimeout: a client that stops reading is dropped after the
// write timeout and the backend gets 1001.
func TestClientWriteTimeout(t *testing.T) {
	cfg := quickConfig()
	cfg.WriteTimeout = 100 * time.Millisecond
	h := startOpts(t, cfg, false) // the client never reads
	go h.backend.send(ws.NewBinaryFrame(payloadOf(1024)))
	h.backend.expectClose(CodeGoingAway, 3*time.Second)
	h.backend.send(closeFrame(1001, ""))
	r := h.wait(t, 3*time.Second)
	if r.Cause != "write timeout" || r.ClosedBy != "relay" {
		t.Fatalf("result %+v, want relay/write timeout", r)
	}
}

// TestCloseForwarded: close frames travel both ways with code and reason
// intact, and the relay ends when the handshake is done.
func TestCloseForwarded(t *testing.T) {
	tests := []struct {
		name      string
		initiator string
		code      uint16
		reason    string
	}{
		{"client closes", "client", 4001, "bye"},
		{"backend closes", "backend", 4002, "server says bye"},
		{"normal", "client", 1000, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := start(t, quickConfig())
			from, to := h.client, h.backend
			if tc.initiator == "backend" {
				from, to = h.backend, h.client
			}
			from.send(closeFrame(tc.code, tc.reason))
			if got := to.expectClose(tc.code, 2*time.Second); got != tc.reason {
				t.Fatalf("reason %q, want %q", got, tc.reason)
			}
			to.send(closeFrame(tc.code, tc.reason))
			from.expectClose(tc.code, 2*time.Second)
			r := h.wait(t, 2*time.Second)
			from.expectEnd(time.Second)
			to.expectEnd(time.Second)
			if r.ClosedBy != tc.initiator || r.CloseCode != tc.code || r.CloseReason != tc.reason {
				t.Fatalf("result %+v", r)
			}
		})
	}
}

// TestLegGone: a leg that disappears without a close frame gives the other
// leg 1014 (backend gone) or 1001 (client gone).
func TestLegGone(t *testing.T) {
	want := map[Side]uint16{Backend: 1014, Client: 1001}
	for _, gone := range []Side{Backend, Client} {
		t.Run(gone.String()+" gone", func(t *testing.T) {
			h := start(t, quickConfig())
			lost, survivor := h.backend, h.client
			if gone == Client {
				lost, survivor = h.client, h.backend
			}
			lost.conn.Close()
			survivor.expectClose(want[gone], 2*time.Second)
			survivor.send(closeFrame(1000, ""))
			r := h.wait(t, 3*time.Second)
			if r.ClosedBy != gone.String() || r.CloseCode != want[gone] {
				t.Fatalf("result %+v", r)
			}
		})
	}
	t.Run("backend gone mid-message between fragments", func(t *testing.T) {
		h := start(t, quickConfig())
		first := ws.NewFrame(ws.OpText, false, []byte("part"))
		h.backend.send(first)
		sameFrame(t, h.client.next(2*time.Second), first)
		h.backend.conn.Close()
		h.client.expectClose(CodeBadGateway, 2*time.Second)
	})
	t.Run("no answer to the close", func(t *testing.T) {
		cfg := quickConfig()
		cfg.CloseTimeout = 200 * time.Millisecond
		h := start(t, cfg)
		h.backend.conn.Close()
		h.client.expectClose(CodeBadGateway, 2*time.Second)
		h.client.expectEnd(2 * time.Second)
	})
}

// TestShutdown closes both legs between frames with the given code.
func TestShutdown(t *testing.T) {
	for _, code := range []uint16{CodeGoingAway, CodeServiceRestart} {
		t.Run(itoa(int(code)), func(t *testing.T) {
			t.Parallel()
			shutdown(t, start(t, quickConfig()), code)
		})
	}
}

// shutdown shuts h's relay down with code and checks that both peers get
// it and the relay ends saying so.
func shutdown(t *testing.T, h *harness, code uint16) {
	t.Helper()
	h.session.Shutdown(code, "server shutting down")
	h.client.expectClose(code, 2*time.Second)
	h.backend.expectClose(code, 2*time.Second)
	h.client.send(closeFrame(code, ""))
	h.backend.send(closeFrame(code, ""))
	r := h.wait(t, 2*time.Second)
	if r.ClosedBy != "relay" || r.Cause != "shutdown" || r.CloseCode != code {
		t.Fatalf("result %+v", r)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestTickGrid: the keepalive timer fires on a grid of 1/16 of the ping
// interval (at most 250 ms), the same grid for every relay, never before
// what is due and less than a step after it.
func TestTickGrid(t *testing.T) {
	base := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		interval, step time.Duration
	}{
		{160 * time.Millisecond, 10 * time.Millisecond},
		{time.Second, 62500 * time.Microsecond},
		{25 * time.Second, 250 * time.Millisecond},
		{time.Hour, 250 * time.Millisecond},
		{8 * time.Nanosecond, 0}, // too short for a grid: as due
	} {
		s := &Session{cfg: Config{PingInterval: tc.interval}}
		for _, off := range []time.Duration{0, 1, 3 * time.Millisecond, 61 * time.Millisecond, 249 * time.Millisecond, 7*time.Second + 5} {
			due := base.Add(off)
			got := s.tickAt(due)
			if tc.step == 0 {
				if !got.Equal(due) {
					t.Errorf("interval %v: tickAt(+%v) = +%v, want as due", tc.interval, off, got.Sub(base))
				}
				continue
			}
			if got.Before(due) || got.Sub(due) >= tc.step || got.UnixNano()%int64(tc.step) != 0 {
				t.Errorf("interval %v: tickAt(+%v) = +%v, want the first multiple of %v at or after it", tc.interval, off, got.Sub(base), tc.step)
			}
		}
	}
}

// TestCountsReceivedBytesOnly: a frame's bytes are counted as they come,
// not as its header announces them. A client announces the largest
// length RFC 6455 allows (2^63-1), sends 100 bytes of it and goes away:
// the count is the header and those 100 bytes (an announced length once
// wrapped the count negative, and a negative count panics in the
// module's Prometheus counter, which ended the process).
func TestCountsReceivedBytesOnly(t *testing.T) {
	for _, transport := range append([]string{"pipe", "tcp"}, loopTransports...) {
		t.Run(transport, func(t *testing.T) {
			cfg := quickConfig()
			pair := pairFor(t, transport, &cfg)
			cTest, cRelay := pair()
			bTest, bRelay := pair()
			defer bTest.Close()
			go io.Copy(io.Discard, bTest) // takes the frame's start, unparsed
			s := New(Leg{Conn: cRelay}, Leg{Conn: bRelay}, cfg)
			result := make(chan Result, 1)
			go func() { result <- s.Run() }()
			if cfg.Loops {
				waitLoop(t, s)
			}
			hdr := []byte{0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}
			binary.BigEndian.PutUint64(hdr[2:10], 1<<63-1)
			if _, err := cTest.Write(append(hdr, make([]byte, 100)...)); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
			cTest.Close()
			r := waitResult(t, result)
			if r.ClientToBackend.Bytes != 14+100 || r.ClientToBackend.Frames != 1 {
				t.Fatalf("client to backend: %d bytes in %d frames, want 114 in 1 (header and the payload that came)",
					r.ClientToBackend.Bytes, r.ClientToBackend.Frames)
			}
		})
	}
}

// TestCountsCutFrames: a peer sends part of a frame and goes away: the
// count is the bytes that came, the header's and the payload's: a ping
// whose header announces 100 bytes and 40 of them (once only its header
// counted), or part of a header (once none of it counted), whether the
// goroutines or an event loop read them, from either side.
func TestCountsCutFrames(t *testing.T) {
	cases := []struct {
		name           string
		client, backnd []byte // what the client (masked) or the backend sends
		frames         int64
	}{
		{"control payload", append([]byte{0x80 | byte(ws.OpPing), 0x80 | 100, 1, 2, 3, 4}, make([]byte, 40)...),
			append([]byte{0x80 | byte(ws.OpPing), 100}, make([]byte, 40)...), 1},
		{"header", []byte{0x82, 0x80 | 126, 0x01, 9}, []byte{0x82, 126, 0x01}, 0},
		{"first byte", []byte{0x82}, []byte{0x82}, 0},
	}
	for _, tc := range cases {
		for _, transport := range append([]string{"pipe", "tcp"}, loopTransports...) {
			for _, from := range []Side{Client, Backend} {
				t.Run(tc.name+"/"+transport+"/"+from.String(), func(t *testing.T) {
					cfg := quickConfig()
					cfg.CloseTimeout = 200 * time.Millisecond // the other peer never answers
					pair := pairFor(t, transport, &cfg)
					cTest, cRelay := pair()
					bTest, bRelay := pair()
					defer cTest.Close()
					defer bTest.Close()
					go io.Copy(io.Discard, cTest)
					go io.Copy(io.Discard, bTest)
					s := New(Leg{Conn: cRelay}, Leg{Conn: bRelay}, cfg)
					result := make(chan Result, 1)
					go func() { result <- s.Run() }()
					if cfg.Loops {
						waitLoop(t, s)
					}
					src, sent := cTest, tc.client
					if from == Backend {
						src, sent = bTest, tc.backnd
					}
					if _, err := src.Write(sent); err != nil {
						t.Fatal(err)
					}
					time.Sleep(100 * time.Millisecond)
					src.Close()
					r := waitResult(t, result)
					counted := r.ClientToBackend
					if from == Backend {
						counted = r.BackendToClient
					}
					if counted.Bytes != int64(len(sent)) || counted.Frames != tc.frames {
						t.Fatalf("%s: %d bytes in %d frames, want %d in %d (what came)",
							from, counted.Bytes, counted.Frames, len(sent), tc.frames)
					}
				})
			}
		}
	}
}

// longHeader is a frame with its payload length in the 16-bit (form 16)
// or 64-bit (form 64) form, which RFC 6455 5.2 says must be minimal and
// the relay takes anyway (re-encoding it), masked with a zero key when
// masked is set.
func longHeader(first byte, masked bool, form int, payload []byte) []byte {
	b := []byte{first, 126}
	if form == 64 {
		b[1] = 127
		b = binary.BigEndian.AppendUint64(b, uint64(len(payload)))
	} else {
		b = binary.BigEndian.AppendUint16(b, uint16(len(payload)))
	}
	if masked {
		b[1] |= 0x80
		b = append(b, 0, 0, 0, 0)
	}
	return append(b, payload...)
}

// pairFor returns the connection pairs of transport ("pipe", "tcp" or an
// event-loop transport, which turns cfg.Loops on for "loop").
func pairFor(t *testing.T, transport string, cfg *Config) func() (net.Conn, net.Conn) {
	if transport == "pipe" {
		return net.Pipe
	}
	cfg.Loops = transport == "loop"
	return func() (net.Conn, net.Conn) { return loopbackPair(t) }
}

// closeAndCount has src close with 1000 and dst answer, waits for the
// relay's end and returns its counts of what came from from (src's side)
// and its result.
func closeAndCount(t *testing.T, h *harness, src, dst *peer, from Side) (Counters, Result) {
	t.Helper()
	src.send(closeFrame(1000, "done"))
	dst.expectClose(1000, 5*time.Second)
	dst.send(closeFrame(1000, "done"))
	r := h.wait(t, 5*time.Second)
	if from == Backend {
		return r.BackendToClient, r
	}
	return r.ClientToBackend, r
}

// TestCountsNonMinimalHeaders: frames whose lengths are not in the
// minimal form are relayed (re-encoded), and counted for the bytes their
// headers took on the wire, not the minimal form's (they once were).
func TestCountsNonMinimalHeaders(t *testing.T) {
	for _, transport := range append([]string{"pipe", "tcp"}, loopTransports...) {
		for _, from := range []Side{Client, Backend} {
			t.Run(transport+"/"+from.String(), func(t *testing.T) {
				h := startOver(t, transport, quickConfig())
				src, dst := h.client, h.backend
				if from == Backend {
					src, dst = h.backend, h.client
				}
				raw := bytes.Join([][]byte{
					longHeader(0x80|byte(ws.OpBinary), src.mask, 16, []byte("hello")),
					longHeader(0x80|byte(ws.OpText), src.mask, 64, []byte("world")),
					longHeader(0x80|byte(ws.OpPing), src.mask, 16, []byte("ping")),
				}, nil)
				go src.writeRaw(raw)
				for _, want := range []string{"hello", "world", "ping"} {
					got := dst.next(5 * time.Second)
					if got.Header.Masked {
						got = ws.UnmaskFrame(got)
					}
					if string(got.Payload) != want {
						t.Fatalf("got %q, want %q", got.Payload, want)
					}
				}
				cf := closeFrame(1000, "done")
				if src.mask {
					cf = ws.MaskFrame(cf)
				}
				closeLen := len(mustCompile(t, cf))
				counted, _ := closeAndCount(t, h, src, dst, from)
				if want := int64(len(raw) + closeLen); counted.Bytes != want || counted.Frames != 4 {
					t.Fatalf("%d bytes in %d frames, want %d in 4 (the bytes as they came)", counted.Bytes, counted.Frames, want)
				}
			})
		}
	}
}
