package integration

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	cws "github.com/coder/websocket"
	"github.com/gobwas/ws"
	gws "github.com/gorilla/websocket"
)

// echoSizes cross every payload length encoding of RFC 6455 5.2 (7-bit,
// 16-bit, 64-bit) at its edges, plus one large message.
var echoSizes = []int{0, 1, 125, 126, 65535, 65536, 16 << 20}

// payloads caches what payload generates: tests share them read-only.
var payloads sync.Map

// payload returns n deterministic bytes, the same for the same arguments:
// printable ASCII for text, any byte for binary. Callers must not modify
// them.
func payload(n int, text bool, seed uint64) []byte {
	key := fmt.Sprint(n, text, seed)
	if b, ok := payloads.Load(key); ok {
		return b.([]byte)
	}
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	binary.LittleEndian.PutUint64(s[8:], uint64(n))
	b := make([]byte, n)
	rand.NewChaCha8(s).Read(b)
	if text {
		for i := range b {
			b[i] = ' ' + b[i]%95
		}
	}
	payloads.Store(key, b)
	return b
}

// echoCase is one message of TestEcho.
type echoCase struct {
	text bool
	data []byte
}

// echoCases returns every size of echoSizes as text and as binary.
func echoCases() []echoCase {
	var out []echoCase
	for _, text := range []bool{true, false} {
		for _, n := range echoSizes {
			out = append(out, echoCase{text, payload(n, text, 1)})
		}
	}
	return out
}

// checkEchoes sends every case with send while the connection is read in
// the background (so the client answers relay pings and no buffer fills
// up) and wants each message back in order, type and bytes intact.
func checkEchoes(t *testing.T, send func(echoCase) error, recv <-chan message, isText func(message) bool) {
	t.Helper()
	cases := echoCases()
	werr := make(chan error, 1)
	go func() {
		for _, c := range cases {
			if err := send(c); err != nil {
				werr <- fmt.Errorf("writing %d bytes (text %v): %w", len(c.data), c.text, err)
				return
			}
		}
		werr <- nil
	}()
	for _, c := range cases {
		m := within(t, recv, 60*time.Second, fmt.Sprintf("echo of %d bytes", len(c.data)))
		if m.err != nil {
			t.Fatalf("reading the echo of %d bytes (text %v): %v (writer: %v)", len(c.data), c.text, m.err, pending(werr))
		}
		if isText(m) != c.text || !bytes.Equal(m.data, c.data) {
			t.Fatalf("echo of %d bytes (text %v): got %d bytes (text %v), equal %v",
				len(c.data), c.text, len(m.data), isText(m), bytes.Equal(m.data, c.data))
		}
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
}

// pending returns what ch holds now, or nil.
func pending(ch <-chan error) error {
	select {
	case err := <-ch:
		return err
	default:
		return nil
	}
}

// readAllGorilla is readAll for a gorilla connection; the message type is
// stored as a coder type.
func readAllGorilla(conn *gws.Conn) <-chan message {
	ch := make(chan message, 64)
	go func() {
		for {
			typ, data, err := conn.ReadMessage()
			mt := cws.MessageBinary
			if typ == gws.TextMessage {
				mt = cws.MessageText
			}
			ch <- message{mt, data, err}
			if err != nil {
				return
			}
		}
	}()
	return ch
}

// TestEcho sends text and binary messages of every size through the relay
// to an echo backend over ws and wss, with coder/websocket and
// gorilla/websocket clients, and wants every byte back.
func TestEcho(t *testing.T) {
	t.Parallel()
	echoCases() // generate the payloads before any connection is open
	f := startRelay(t, appOpts{}, relayConf{})
	isText := func(m message) bool { return m.typ == cws.MessageText }
	for _, sc := range schemes {
		t.Run(sc.name+"/coder", func(t *testing.T) {
			t.Parallel()
			conn, _ := f.dialCoder(t, sc.secure, "/echo", nil)
			ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
			defer cancel()
			send := func(c echoCase) error {
				typ := cws.MessageBinary
				if c.text {
					typ = cws.MessageText
				}
				return conn.Write(ctx, typ, c.data)
			}
			checkEchoes(t, send, readAll(conn), isText)
			conn.Close(cws.StatusNormalClosure, "")
		})
		t.Run(sc.name+"/gorilla", func(t *testing.T) {
			t.Parallel()
			conn, _ := f.dialGorilla(t, sc.secure, "/echo", nil, nil)
			send := func(c echoCase) error {
				typ := gws.BinaryMessage
				if c.text {
					typ = gws.TextMessage
				}
				conn.SetWriteDeadline(time.Now().Add(60 * time.Second))
				return conn.WriteMessage(typ, c.data)
			}
			checkEchoes(t, send, readAllGorilla(conn), isText)
			conn.WriteControl(gws.CloseMessage, gws.FormatCloseMessage(gws.CloseNormalClosure, ""), time.Now().Add(time.Second))
		})
		t.Run(sc.name+"/gorilla-fragmented", func(t *testing.T) {
			t.Parallel()
			// A 512-byte write buffer makes gorilla send a message of
			// several kilobytes as a text frame and continuation frames.
			conn, _ := f.dialGorilla(t, sc.secure, "/echo", &gws.Dialer{WriteBufferSize: 512}, nil)
			want := payload(5000, true, 3)
			w, err := conn.NextWriter(gws.TextMessage)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < len(want); i += 700 {
				if _, err := w.Write(want[i:min(i+700, len(want))]); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			typ, got, err := conn.ReadMessage()
			if err != nil || typ != gws.TextMessage || !bytes.Equal(got, want) {
				t.Fatalf("fragmented echo: type %d, %d bytes (want %d), err %v", typ, len(got), len(want), err)
			}
		})
	}
}

// TestFramesPassThrough checks frame-level forwarding with a raw client
// and a raw backend: every frame arrives with the same FIN, RSV, opcode,
// length and payload, a client frame keeps its mask key, fragments stay
// fragments, and a ping between fragments travels in its place.
func TestFramesPassThrough(t *testing.T) {
	t.Parallel()
	f := startRelay(t, appOpts{}, relayConf{})
	for _, sc := range schemes {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			var tlsCfg = f.Caddy.TLSConfig()
			path := "/frames/" + sc.name
			c := dialRaw(t, f.URL(sc.secure, path+"?x=1"), tlsCfg, nil)
			rb := f.App.acceptRaw(t, path)
			type step struct {
				fin bool
				op  ws.OpCode
				p   []byte
			}
			steps := []step{
				{false, ws.OpText, []byte("Hel")},
				{true, ws.OpPing, []byte("p1")},
				{false, ws.OpContinuation, []byte("lo, ")},
				{true, ws.OpContinuation, []byte("world")},
			}
			for _, n := range []int{0, 125, 126, 65535, 65536} {
				steps = append(steps, step{true, ws.OpBinary, payload(n, false, uint64(n))})
			}
			steps = append(steps,
				step{false, ws.OpBinary, payload(70000, false, 9)},
				step{true, ws.OpContinuation, nil},
			)
			sent := make([]frame, len(steps))
			for i, s := range steps {
				sent[i] = frame{Header: ws.Header{Fin: s.fin, OpCode: s.op, Masked: true, Mask: ws.NewMask()}, Payload: s.p}
			}
			// Write in the background, so that the echo is read while the
			// client still writes and no buffer on the way fills up.
			werr := make(chan error, 1)
			go func() {
				c.wmu.Lock()
				defer c.wmu.Unlock()
				for _, fr := range sent {
					if err := writeFrame(c.Conn, fr); err != nil {
						werr <- err
						return
					}
				}
				werr <- nil
			}()
			for i, want := range sent {
				got := c.MustRead(t, 10*time.Second)
				for got.OpCode == ws.OpPing && want.OpCode != ws.OpPing {
					// A relay ping, not part of the echo.
					c.MustWrite(t, true, ws.OpPong, got.Payload)
					got = c.MustRead(t, 10*time.Second)
				}
				if got.Fin != want.Fin || got.Rsv != want.Rsv || got.OpCode != want.OpCode ||
					got.Length != int64(len(want.Payload)) || !bytes.Equal(got.Payload, want.Payload) || got.Masked {
					t.Fatalf("client frame %d: got fin=%v rsv=%d op=%v len=%d masked=%v, want fin=%v rsv=%d op=%v len=%d unmasked",
						i, got.Fin, got.Rsv, got.OpCode, got.Length, got.Masked, want.Fin, want.Rsv, want.OpCode, len(want.Payload))
				}
			}
			for i, want := range sent {
				got := rb.next(t, 10*time.Second)
				if got.Fin != want.Fin || got.Rsv != want.Rsv || got.OpCode != want.OpCode ||
					got.Length != int64(len(want.Payload)) || !bytes.Equal(got.Payload, want.Payload) {
					t.Fatalf("backend frame %d: got fin=%v rsv=%d op=%v len=%d, want fin=%v rsv=%d op=%v len=%d (payload equal %v)",
						i, got.Fin, got.Rsv, got.OpCode, got.Length, want.Fin, want.Rsv, want.OpCode, len(want.Payload), bytes.Equal(got.Payload, want.Payload))
				}
				if !got.Masked || got.Mask != want.Mask {
					t.Errorf("backend frame %d: masked=%v mask=%x, want the client's mask %x passed through", i, got.Masked, got.Mask, want.Mask)
				}
			}
			if err := <-werr; err != nil {
				t.Fatalf("raw client writing: %v", err)
			}
			c.MustWrite(t, true, ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, "done"))
			got := c.MustRead(t, 10*time.Second)
			if got.OpCode != ws.OpClose {
				t.Fatalf("after the close handshake the client got %v, want a close frame", got.OpCode)
			}
			code, reason := ws.ParseCloseFrameData(got.Payload)
			if code != ws.StatusNormalClosure || reason != "done" {
				t.Errorf("close echo: code %d reason %q, want 1000 %q", code, reason, "done")
			}
		})
	}
}
