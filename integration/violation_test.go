package integration

import (
	"errors"
	"fmt"
	"testing"
	"time"

	cws "github.com/coder/websocket"
	"github.com/gobwas/ws"
	gws "github.com/gorilla/websocket"
)

// masked returns a client frame with a fresh mask key.
func masked(fin bool, rsv byte, op ws.OpCode, p []byte) frame {
	return frame{Header: ws.Header{Fin: fin, Rsv: rsv, OpCode: op, Masked: true, Mask: ws.NewMask()}, Payload: p}
}

// closeCodeOf parses a close frame's code and reason.
func closeCodeOf(f frame) (int, string) {
	code, reason := ws.ParseCloseFrameData(f.Payload)
	return int(code), reason
}

// TestClientProtocolViolation sends frames that break RFC 6455 from the
// client: the client must get close 1002 and the backend close 1001.
func TestClientProtocolViolation(t *testing.T) {
	t.Parallel()
	f := startRelay(t, appOpts{}, relayConf{})
	long := make([]byte, 126)
	cases := []struct {
		name   string
		frames []frame
	}{
		{"unmasked frame", []frame{{Header: ws.Header{Fin: true, OpCode: ws.OpText}, Payload: []byte("plain")}}},
		{"reserved opcode", []frame{masked(true, 0, 0x3, []byte("x"))}},
		{"RSV1 without extension", []frame{masked(true, ws.Rsv(true, false, false), ws.OpText, []byte("x"))}},
		{"fragmented ping", []frame{masked(false, 0, ws.OpPing, []byte("p"))}},
		{"ping over 125 bytes", []frame{masked(true, 0, ws.OpPing, long)}},
		{"continuation first", []frame{masked(true, 0, ws.OpContinuation, []byte("x"))}},
		{"text inside a fragmented message", []frame{masked(false, 0, ws.OpText, []byte("a")), masked(true, 0, ws.OpText, []byte("b"))}},
		{"close code 1005", []frame{masked(true, 0, ws.OpClose, []byte{0x03, 0xED})}},
		{"close payload of 1 byte", []frame{masked(true, 0, ws.OpClose, []byte{0x03})}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := fmt.Sprintf("/echo/violation-%d", i)
			c := dialRaw(t, f.URL(false, path), nil, nil)
			bc := f.App.accept(t, path)
			for _, fr := range tc.frames {
				if err := c.WriteFrame(fr); err != nil {
					t.Fatal(err)
				}
			}
			cl := readUntil(t, c, ws.OpClose)
			if code, reason := closeCodeOf(cl); code != 1002 {
				t.Errorf("client got close %d %q, want 1002", code, reason)
			}
			if rec := bc.waitClosed(t, 10*time.Second); rec.Code != 1001 {
				t.Errorf("backend got close %d %q (%v), want 1001", rec.Code, rec.Reason, rec.Err)
			}
		})
	}
	for _, e := range f.Caddy.WaitConnClosed(len(cases)) {
		checkConnLog(t, e, connLogWant{ClosedBy: "relay", CloseCode: 1002, Cause: "protocol"})
	}
}

// TestBackendProtocolViolation has the backend break RFC 6455: the
// backend must get close 1002 and the client close 1001.
func TestBackendProtocolViolation(t *testing.T) {
	t.Parallel()
	f := startRelay(t, appOpts{}, relayConf{})
	for i, cmd := range []string{"send reserved opcode", "send masked frame"} {
		t.Run(cmd, func(t *testing.T) {
			path := fmt.Sprintf("/frames/violation-%d", i)
			c := dialRaw(t, f.URL(false, path), nil, nil)
			rb := f.App.acceptRaw(t, path)
			c.MustWrite(t, true, ws.OpText, []byte(cmd))
			cl := readUntil(t, c, ws.OpClose)
			if code, reason := closeCodeOf(cl); code != 1001 {
				t.Errorf("client got close %d %q, want 1001", code, reason)
			}
			for {
				fr := rb.next(t, 10*time.Second)
				if fr.OpCode != ws.OpClose {
					continue
				}
				if code, reason := closeCodeOf(fr); code != 1002 {
					t.Errorf("backend got close %d %q, want 1002", code, reason)
				}
				break
			}
		})
	}
}

// TestNothingLostBeforeClose sends a burst of messages immediately
// followed by a close frame, each way: every message arrives, in order,
// before the close.
func TestNothingLostBeforeClose(t *testing.T) {
	t.Parallel()
	f := startRelay(t, appOpts{}, relayConf{})
	const n = 200
	t.Run("client to backend", func(t *testing.T) {
		c := dialRaw(t, f.URL(false, "/frames/burst"), nil, nil)
		rb := f.App.acceptRaw(t, "/frames/burst")
		go func() { // drain the echo
			for {
				if _, err := c.Read(30 * time.Second); err != nil {
					return
				}
			}
		}()
		for i := 0; i < n; i++ {
			if err := c.WriteFrame(masked(true, 0, ws.OpBinary, payload(1024, false, uint64(i)))); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.WriteFrame(masked(true, 0, ws.OpClose, ws.NewCloseFrameBody(4005, "end of burst"))); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			fr := rb.next(t, 10*time.Second)
			if fr.OpCode != ws.OpBinary || string(fr.Payload) != string(payload(1024, false, uint64(i))) {
				t.Fatalf("backend frame %d: %v of %d bytes, want message %d", i, fr.OpCode, len(fr.Payload), i)
			}
		}
		fr := rb.next(t, 10*time.Second)
		if code, reason := closeCodeOf(fr); fr.OpCode != ws.OpClose || code != 4005 || reason != "end of burst" {
			t.Fatalf("after the burst the backend got %v %d %q, want close 4005", fr.OpCode, code, reason)
		}
	})
	t.Run("backend to client", func(t *testing.T) {
		conn, _ := f.dialCoder(t, false, "/push/burst", nil)
		bc := f.App.accept(t, "/push/burst")
		msgs := readAll(conn)
		for i := 0; i < n; i++ {
			if err := bc.Send(gws.BinaryMessage, payload(1024, false, uint64(i))); err != nil {
				t.Fatal(err)
			}
		}
		if err := bc.CloseWith(4006, "end of push"); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			m := within(t, msgs, 10*time.Second, "pushed message")
			if m.err != nil || string(m.data) != string(payload(1024, false, uint64(i))) {
				t.Fatalf("client message %d: %d bytes, err %v", i, len(m.data), m.err)
			}
		}
		m := within(t, msgs, 10*time.Second, "close after the push")
		var ce cws.CloseError
		if !errors.As(m.err, &ce) || ce.Code != 4006 || ce.Reason != "end of push" {
			t.Fatalf("after the push the client got %v, want close 4006", m.err)
		}
	})
}
