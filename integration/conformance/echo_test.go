package conformance

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	cws "github.com/coder/websocket"
	gws "github.com/gorilla/websocket"
)

// The echo servers are the strict backends: each echoes every message,
// keeping its type, and checks text messages as they arrive, failing the
// connection with 1007 at the first byte that cannot be UTF-8 (as the
// Autobahn servers of gorilla/websocket's examples do; coder/websocket
// does not check UTF-8 itself). Framing, pings and closes are the
// library's own.

// errInvalidUTF8 is returned by readMessage for a text message that is not
// UTF-8.
var errInvalidUTF8 = errors.New("invalid UTF-8 in a text message")

// readMessage reads a whole message from r, checking text as it arrives.
func readMessage(r io.Reader, text bool) ([]byte, error) {
	var v utf8Validator
	var msg []byte
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if text && !v.write(buf[:n]) {
			return nil, errInvalidUTF8
		}
		msg = append(msg, buf[:n]...)
		if errors.Is(err, io.EOF) {
			if text && !v.complete() {
				return nil, errInvalidUTF8
			}
			return msg, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// coderEcho is the coder/websocket echo server.
func coderEcho(w http.ResponseWriter, r *http.Request) {
	c, err := cws.Accept(w, r, &cws.AcceptOptions{InsecureSkipVerify: true, CompressionMode: cws.CompressionDisabled})
	if err != nil {
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(-1)
	ctx := context.Background()
	for {
		typ, rd, err := c.Reader(ctx)
		if err != nil {
			return
		}
		msg, err := readMessage(rd, typ == cws.MessageText)
		if errors.Is(err, errInvalidUTF8) {
			_ = c.Close(cws.StatusInvalidFramePayloadData, "")
			return
		}
		if err != nil || c.Write(ctx, typ, msg) != nil {
			return
		}
	}
}

// gorillaEcho is the gorilla/websocket echo server.
func gorillaEcho(w http.ResponseWriter, r *http.Request) {
	up := gws.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	for {
		typ, rd, err := conn.NextReader()
		if err != nil {
			return
		}
		msg, err := readMessage(rd, typ == gws.TextMessage)
		if errors.Is(err, errInvalidUTF8) {
			_ = conn.WriteControl(gws.CloseMessage, gws.FormatCloseMessage(gws.CloseInvalidFramePayloadData, ""), time.Now().Add(5*time.Second))
			return
		}
		if err != nil || conn.WriteMessage(typ, msg) != nil {
			return
		}
	}
}

// utf8Validator checks UTF-8 incrementally, byte by byte, against the
// well-formed sequences of Unicode's table 3-7, so that an invalid byte is
// seen as soon as it arrives, whatever the fragmentation.
type utf8Validator struct {
	need   int  // continuation bytes still expected
	lo, hi byte // the range of the next continuation byte
}

func (v *utf8Validator) write(p []byte) bool {
	for _, b := range p {
		if v.need > 0 {
			if b < v.lo || b > v.hi {
				return false
			}
			v.need, v.lo, v.hi = v.need-1, 0x80, 0xbf
			continue
		}
		switch {
		case b < 0x80:
		case b >= 0xc2 && b <= 0xdf:
			v.need, v.lo, v.hi = 1, 0x80, 0xbf
		case b == 0xe0:
			v.need, v.lo, v.hi = 2, 0xa0, 0xbf
		case b == 0xed:
			v.need, v.lo, v.hi = 2, 0x80, 0x9f
		case b >= 0xe1 && b <= 0xef:
			v.need, v.lo, v.hi = 2, 0x80, 0xbf
		case b == 0xf0:
			v.need, v.lo, v.hi = 3, 0x90, 0xbf
		case b >= 0xf1 && b <= 0xf3:
			v.need, v.lo, v.hi = 3, 0x80, 0xbf
		case b == 0xf4:
			v.need, v.lo, v.hi = 3, 0x80, 0x8f
		default:
			return false
		}
	}
	return true
}

// complete reports whether no sequence is left unfinished.
func (v *utf8Validator) complete() bool { return v.need == 0 }
