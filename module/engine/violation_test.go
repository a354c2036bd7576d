package engine

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// rawFrame builds a frame's bytes by hand so that tests can break rules
// gobwas would not let them break.
func rawFrame(first byte, masked bool, payload []byte) []byte {
	b := []byte{first}
	lenByte := byte(len(payload))
	if masked {
		lenByte |= 0x80
	}
	b = append(b, lenByte)
	if masked {
		b = append(b, 0, 0, 0, 0) // zero mask: payload stays as is
	}
	return append(b, payload...)
}

func closeBody(code uint16, reason string) []byte {
	b := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(b, code)
	return append(b, reason...)
}

// TestProtocolViolations: the offender gets 1002 with a reason, the other
// leg gets 1001, and the result says who broke what.
func TestProtocolViolations(t *testing.T) {
	const fin = 0x80
	longLen := []byte{fin | 0x2, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	tests := []struct {
		name   string
		from   Side
		bytes  []byte
		reason string
	}{
		{"unmasked client frame", Client, rawFrame(fin|0x2, false, []byte("x")), "unmasked frame from client"},
		{"masked backend frame", Backend, rawFrame(fin|0x2, true, []byte("x")), "masked frame from backend"},
		{"control frame over 125 bytes", Backend, append([]byte{fin | 0x9, 126, 0, 126}, make([]byte, 126)...), "control frame over 125 bytes"},
		{"fragmented control frame", Client, rawFrame(0x9, true, nil), "fragmented control frame"},
		{"reserved opcode", Client, rawFrame(fin|0x3, true, nil), "reserved opcode 0x3"},
		{"reserved control opcode", Backend, rawFrame(fin|0xB, false, nil), "reserved opcode 0xb"},
		{"RSV without extension", Client, rawFrame(fin|0x40|0x1, true, []byte("x")), "RSV bits set without a negotiated extension"},
		{"continuation without start", Backend, rawFrame(fin|0x0, false, []byte("x")), "continuation frame with no message started"},
		{"new message inside fragmented", Client, append(rawFrame(0x1, true, []byte("a")), rawFrame(fin|0x1, true, []byte("b"))...), "new data frame inside a fragmented message"},
		{"one-byte close payload", Client, rawFrame(fin|0x8, true, []byte{3}), "close payload of 1 byte"},
		{"close reason not UTF-8", Backend, rawFrame(fin|0x8, false, append(closeBody(1000, ""), 0xff, 0xfe)), "close reason is not UTF-8"},
		{"64-bit length with top bit", Client, longLen, "invalid payload length"},
	}
	for _, code := range []uint16{0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000} {
		tests = append(tests, struct {
			name   string
			from   Side
			bytes  []byte
			reason string
		}{"close code " + itoa(int(code)), Client, rawFrame(fin|0x8, true, closeBody(code, "")), "invalid close code " + itoa(int(code))})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := start(t, quickConfig())
			offender, other := h.client, h.backend
			if tc.from == Backend {
				offender, other = h.backend, h.client
			}
			go offender.writeRaw(tc.bytes)
			if got := offender.expectClose(CodeProtocolError, 2*time.Second); got != tc.reason {
				t.Fatalf("reason %q, want %q", got, tc.reason)
			}
			other.expectClose(CodeGoingAway, 2*time.Second)
			other.send(closeFrame(1001, ""))
			r := h.wait(t, 5*time.Second)
			if r.ClosedBy != "relay" || r.CloseCode != CodeProtocolError || r.CloseReason != tc.reason {
				t.Fatalf("result %+v", r)
			}
		})
	}
}

// TestRSVAllowedWithExtension: with permessage-deflate negotiated, RSV1
// on a data frame passes through unchanged.
func TestRSVAllowedWithExtension(t *testing.T) {
	cfg := quickConfig()
	cfg.AllowedRSV = ws.Rsv(true, false, false)
	h := start(t, cfg)
	f := ws.MaskFrame(ws.Frame{Header: ws.Header{Fin: true, Rsv: ws.Rsv(true, false, false), OpCode: ws.OpText, Length: 3}, Payload: []byte{1, 2, 3}})
	go h.client.send(f)
	sameFrame(t, h.backend.next(2*time.Second), f)
}

func TestParseClose(t *testing.T) {
	tests := []struct {
		payload []byte
		code    uint16
		reason  string
		ok      bool
	}{
		{nil, 0, "", true},
		{closeBody(1000, ""), 1000, "", true},
		{closeBody(4999, "ok"), 4999, "ok", true},
		{closeBody(3000, "héllo"), 3000, "héllo", true},
		{[]byte{3}, 0, "", false},
		{closeBody(1005, ""), 1005, "", false},
		{append(closeBody(1000, ""), 0xc3), 1000, "", false},
	}
	for _, tc := range tests {
		code, reason, err := ParseClose(tc.payload)
		if (err == nil) != tc.ok || (tc.ok && (code != tc.code || reason != tc.reason)) {
			t.Errorf("ParseClose(%x) = %d %q %v", tc.payload, code, reason, err)
		}
	}
}

func TestClosePayloadTrimsAtRuneBoundary(t *testing.T) {
	var buf [maxControlPayload]byte
	reason := ""
	for len(reason) < 200 {
		reason += "é"
	}
	p := closePayload(buf[:], 1001, reason)
	if _, got, err := ParseClose(p); err != nil || len(p) > maxControlPayload || got == "" {
		t.Fatalf("closePayload gave %d bytes, parse %q %v", len(p), got, err)
	}
}

// TestViolationWhileBackendDoesNotRead: the backend breaks the protocol
// while the client's frame is stuck on it (it reads nothing, so the
// writer lock stays held and the relay's 1002 to it cannot go out). The
// client still gets its 1001 at once, and the close timer still ends the
// relay within CloseTimeout: it is armed before the close frames are
// written, not after. The result names the 1001, the close frame that
// went out.
func TestViolationWhileBackendDoesNotRead(t *testing.T) {
	client, backend, cRelay, bRelay := slowBackendLegs(t) // the backend reads nothing
	cfg := quickConfig()
	cfg.CloseTimeout = 1500 * time.Millisecond
	s := New(Leg{Conn: cRelay}, Leg{Conn: bRelay}, cfg)
	result := make(chan Result, 1)
	go func() { result <- s.Run() }()
	go client.send(ws.MaskFrame(ws.NewBinaryFrame(payloadOf(4 << 20))))
	time.Sleep(200 * time.Millisecond)           // the relay is now stuck writing it
	backend.writeRaw(rawFrame(0x83, false, nil)) // reserved opcode
	client.expectClose(CodeGoingAway, time.Second)
	select {
	case r := <-result:
		if r.CloseCode != CodeGoingAway || r.CloseReason != "protocol error from backend" || r.Cause != "protocol error from backend: reserved opcode 0x3" {
			t.Fatalf("result %+v, want the protocol error, with the client's 1001", r)
		}
	case <-time.After(cfg.CloseTimeout + 2*time.Second):
		t.Fatal("the relay did not end: its close timer was never armed")
	}
}
