package relaytest

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Opcodes (RFC 6455 5.2).
const (
	OpContinuation byte = 0x0
	OpText         byte = 0x1
	OpBinary       byte = 0x2
	OpClose        byte = 0x8
	OpPing         byte = 0x9
	OpPong         byte = 0xA
)

// Frame is one WebSocket frame: its header as on the wire and its payload,
// unmasked.
type Frame struct {
	Fin     bool
	Rsv     byte // the three RSV bits: RSV1<<2 | RSV2<<1 | RSV3
	Op      byte
	Masked  bool
	Mask    [4]byte
	Payload []byte
}

// IsControl reports whether f is a control frame (RFC 6455 5.5).
func (f Frame) IsControl() bool { return f.Op&0x8 != 0 }

// Header returns the wire form of a frame header that announces length
// payload bytes, whatever follows it (RFC 6455 5.2). Nothing is checked,
// so tests can announce what no library would.
func Header(fin bool, rsv, op byte, masked bool, mask [4]byte, length uint64) []byte {
	b0 := op&0xf | (rsv&7)<<4
	if fin {
		b0 |= 0x80
	}
	var m byte
	if masked {
		m = 0x80
	}
	b := make([]byte, 0, 14)
	switch {
	case length < 126:
		b = append(b, b0, m|byte(length))
	case length <= 0xffff:
		b = append(b, b0, m|126, byte(length>>8), byte(length))
	default:
		b = append(b, b0, m|127)
		b = binary.BigEndian.AppendUint64(b, length)
	}
	if masked {
		b = append(b, mask[:]...)
	}
	return b
}

// Bytes returns the wire form of f, its payload masked when f.Masked.
func (f Frame) Bytes() []byte {
	h := Header(f.Fin, f.Rsv, f.Op, f.Masked, f.Mask, uint64(len(f.Payload)))
	out := append(h, f.Payload...)
	if f.Masked {
		Cipher(out[len(h):], f.Mask, 0)
	}
	return out
}

// Cipher masks or unmasks p in place with key, p starting at offset pos
// of the payload (RFC 6455 5.3).
func Cipher(p []byte, key [4]byte, pos int) {
	for i := range p {
		p[i] ^= key[(pos+i)&3]
	}
}

// NewMask returns a random mask key, as a browser would pick.
func NewMask() (k [4]byte) {
	_, _ = rand.Read(k[:])
	return k
}

// ClientFrame returns a frame masked with a fresh key, as clients send.
func ClientFrame(fin bool, op byte, payload []byte) Frame {
	return Frame{Fin: fin, Op: op, Masked: true, Mask: NewMask(), Payload: payload}
}

// ServerFrame returns an unmasked frame, as servers send.
func ServerFrame(fin bool, op byte, payload []byte) Frame {
	return Frame{Fin: fin, Op: op, Payload: payload}
}

// ClosePayload returns a close frame body: the code, then the reason.
func ClosePayload(code uint16, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
}

// CloseCode returns the code and reason of a close frame; code is -1 when
// the payload is empty and -2 when it is one byte.
func (f Frame) CloseCode() (int, string) {
	switch len(f.Payload) {
	case 0:
		return -1, ""
	case 1:
		return -2, ""
	}
	return int(binary.BigEndian.Uint16(f.Payload)), string(f.Payload[2:])
}

// MaxReadPayload bounds the frames ReadFrame takes in whole, so that a
// test never allocates what a broken peer announces.
const MaxReadPayload = 64 << 20

// ErrFrameTooLong is returned by ReadFrame for a frame over MaxReadPayload.
var ErrFrameTooLong = errors.New("frame payload over MaxReadPayload")

// ReadFrame reads one frame and unmasks its payload. When the stream ends
// inside the payload it returns the part that arrived with the error.
func ReadFrame(r io.Reader) (Frame, error) {
	f, n, err := ReadHeader(r)
	if err != nil {
		return f, err
	}
	if n > MaxReadPayload {
		return f, fmt.Errorf("%w: %d bytes announced", ErrFrameTooLong, n)
	}
	f.Payload = make([]byte, n)
	got, err := io.ReadFull(r, f.Payload)
	f.Payload = f.Payload[:got]
	if f.Masked {
		Cipher(f.Payload, f.Mask, 0)
	}
	return f, err
}

// ReadHeader reads a frame header and returns it with the announced
// payload length; the payload is left unread.
func ReadHeader(r io.Reader) (Frame, uint64, error) {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:2]); err != nil {
		return Frame{}, 0, err
	}
	f := Frame{Fin: h[0]&0x80 != 0, Rsv: h[0] >> 4 & 7, Op: h[0] & 0xf, Masked: h[1]&0x80 != 0}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		if _, err := io.ReadFull(r, h[:2]); err != nil {
			return f, 0, err
		}
		n = uint64(binary.BigEndian.Uint16(h[:2]))
	case 127:
		if _, err := io.ReadFull(r, h[:8]); err != nil {
			return f, 0, err
		}
		n = binary.BigEndian.Uint64(h[:8])
	}
	if f.Masked {
		if _, err := io.ReadFull(r, f.Mask[:]); err != nil {
			return f, 0, err
		}
	}
	return f, n, nil
}
