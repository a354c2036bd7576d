package engine

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// Close codes the relay sends itself (RFC 6455 7.4.1 and the IANA
// registry).
const (
	CodeNormal         uint16 = 1000
	CodeGoingAway      uint16 = 1001
	CodeProtocolError  uint16 = 1002
	CodeServiceRestart uint16 = 1012
	CodeBadGateway     uint16 = 1014
	maxControlPayload         = 125
)

// violation is a protocol error by one peer; its text becomes the reason
// of the 1002 close frame sent to that peer.
type violation string

func (v violation) Error() string { return string(v) }

// checkHeader checks a frame header read from side src against RFC 6455
// 5.2-5.5. inMessage tells whether a fragmented data message is open in
// this direction; allowedRSV holds the RSV bits that the negotiated
// extensions define for data frames.
func checkHeader(h ws.Header, src Side, inMessage bool, allowedRSV byte) error {
	if src == Client && !h.Masked {
		return violation("unmasked frame from client")
	}
	if src == Backend && h.Masked {
		return violation("masked frame from backend")
	}
	if h.OpCode.IsReserved() {
		return violation(fmt.Sprintf("reserved opcode %#x", byte(h.OpCode)))
	}
	if h.OpCode.IsControl() {
		if !h.Fin {
			return violation("fragmented control frame")
		}
		if h.Length > maxControlPayload {
			return violation("control frame over 125 bytes")
		}
		if h.Rsv != 0 {
			return violation("RSV bits set on a control frame")
		}
		return nil
	}
	if h.Rsv&^allowedRSV != 0 {
		return violation("RSV bits set without a negotiated extension")
	}
	switch {
	case h.OpCode == ws.OpContinuation && !inMessage:
		return violation("continuation frame with no message started")
	case h.OpCode != ws.OpContinuation && inMessage:
		return violation("new data frame inside a fragmented message")
	}
	return nil
}

// wireHeaderSize is the size on the wire of a frame header whose second
// byte is b1 (RFC 6455 5.2): the length's form, minimal or not, and the
// mask key.
func wireHeaderSize(b1 byte) int {
	n := 2
	if b1&0x80 != 0 {
		n += 4
	}
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	return n
}

// validCloseCode reports whether code may appear in a close frame on the
// wire (RFC 6455 7.4.1-7.4.2): 1000-1003, 1007-1014 and 3000-4999.
// 1004-1006 and 1015 are reserved and must never be sent.
func validCloseCode(code uint16) bool {
	switch {
	case code >= 1000 && code <= 1003:
		return true
	case code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// ParseClose parses an unmasked close frame payload (RFC 6455 5.5.1). An
// empty payload has no code (0). A payload of one byte, a code that must
// not be sent, or a reason that is not UTF-8 is an error.
func ParseClose(p []byte) (code uint16, reason string, err error) {
	switch {
	case len(p) == 0:
		return 0, "", nil
	case len(p) == 1:
		return 0, "", violation("close payload of 1 byte")
	case len(p) > maxControlPayload:
		return 0, "", violation("close payload over 125 bytes")
	}
	code = binary.BigEndian.Uint16(p)
	if !validCloseCode(code) {
		return code, "", violation(fmt.Sprintf("invalid close code %d", code))
	}
	if !utf8.Valid(p[2:]) {
		return code, "", violation("close reason is not UTF-8")
	}
	return code, string(p[2:]), nil
}

// closePayload builds a close payload with code and reason, cutting the
// reason at a rune boundary so the payload stays within 125 bytes.
func closePayload(buf []byte, code uint16, reason string) []byte {
	if len(reason) > maxControlPayload-2 {
		reason = reason[:maxControlPayload-2]
		for len(reason) > 0 && !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	buf = buf[:2+len(reason)]
	binary.BigEndian.PutUint16(buf, code)
	copy(buf[2:], reason)
	return buf
}
