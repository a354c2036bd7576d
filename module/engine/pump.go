package engine

import (
	"bytes"
	"errors"
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// pump reads frames from src and forwards them to the other leg until src
// sends a close frame, breaks the protocol, or goes away, or until src has
// nothing to read and could be parked. It reports whether it parked.
func (s *Session) pump(src *leg) (parked bool) {
	dst := s.legs[src.side.other()]
	for {
		// Between frames: give the buffer back and wait for the next
		// frame's first byte for as long as it takes (idleness is the
		// keepalive's business), parked where possible. From that byte to
		// the frame's end, each wait is bounded by the stall timeout.
		src.rd.disarm()
		src.rd.release()
		if len(src.rd.buffered()) == 0 {
			err := s.waitIdle(src)
			if err == errParked {
				return true
			}
			if err != nil {
				s.readFailed(src.side, err)
				return false
			}
		}
		if src.owed > 0 { // left by relayInline or an event loop
			s.payOwed(src, dst)
			continue
		}
		src.rd.arm()
		// The header's size as it came: a length not in its minimal form
		// is taken (and re-encoded), but counted for the bytes it took.
		// A header cut off counts the bytes of it that came, as a
		// payload cut off does.
		if err := src.rd.need(2); err != nil {
			src.counters.bytes.Add(int64(len(src.rd.buffered())))
			s.readFailed(src.side, err)
			return false
		}
		hs := wireHeaderSize(src.rd.buffered()[1])
		if err := src.rd.need(hs); err != nil {
			src.counters.bytes.Add(int64(len(src.rd.buffered())))
			s.readFailed(src.side, err)
			return false
		}
		h, err := ws.ReadHeaderBuffer(&src.rd, src.hdr[:])
		if err != nil {
			if errors.Is(err, ws.ErrHeaderLengthMSB) || errors.Is(err, ws.ErrHeaderLengthUnexpected) {
				s.violate(src.side, violation("invalid payload length"))
				return false
			}
			s.readFailed(src.side, err)
			return false
		}
		s.seen(src)
		if err := checkHeader(h, src.side, src.inMessage, s.cfg.AllowedRSV); err != nil {
			s.violate(src.side, err)
			return false
		}
		src.took(h, hs)
		if h.OpCode.IsControl() {
			if s.control(src, dst, h) {
				return false
			}
			continue
		}
		if !s.forwardData(src, dst, h) {
			return false
		}
	}
}

// since is the time since the session started. On the real clock it is
// one read of the monotonic clock, where time.Now reads the wall clock
// too: it is read for every batch of frames from the client.
func (s *Session) since() time.Duration {
	if s.realClock {
		return time.Since(s.start)
	}
	return s.cfg.Now().Sub(s.start)
}

// seen records activity from the client: any bytes from it prove it alive.
func (s *Session) seen(src *leg) {
	if src.side == Client {
		s.lastSeen.Store(int64(s.since()))
	}
}

// control handles a control frame (at most 125 bytes, RFC 6455 5.5): it
// consumes pongs that answer relay pings, checks close frames, and
// forwards the rest as they are. It reports whether the pump must stop.
func (s *Session) control(src, dst *leg, h ws.Header) (stop bool) {
	n := int(h.Length)
	if err := src.rd.need(n); err != nil {
		// The payload that came before the peer went counts: the counts
		// are of the bytes read, as they come (need fails short of n).
		src.counters.bytes.Add(int64(min(len(src.rd.buffered()), n)))
		s.readFailed(src.side, err)
		return true
	}
	src.counters.bytes.Add(int64(n))
	s.seen(src)
	// Inspect the payload in the read buffer, unmasked in place, then mask
	// it back: what is forwarded is the client's bytes as they came.
	raw := src.rd.buffered()[:n]
	defer src.rd.discard(n)
	if h.Masked {
		ws.Cipher(raw, h.Mask, 0)
	}
	var code uint16
	var reason string
	var err error
	consumed := false
	switch h.OpCode {
	case ws.OpPong:
		consumed = src.side == Client && bytes.Equal(raw, pingPayload)
	case ws.OpClose:
		code, reason, err = ParseClose(raw)
	}
	if h.Masked {
		ws.Cipher(raw, h.Mask, 0)
	}
	switch {
	case consumed:
		s.pongs.Add(1)
		return false
	case err != nil:
		s.violate(src.side, err)
		return true
	case h.OpCode == ws.OpClose:
		// A peer's close frame claims the other leg's, with its cause, as
		// the relay's own close frames do (Session.closing).
		s.mu.Lock()
		s.setCauseLocked(src.side.String(), code, reason, src.side.String()+" closed")
		forward := !s.closing[dst.side]
		s.closing[dst.side] = true
		s.mu.Unlock()
		s.hook("peer close claimed", src.side)
		// A close frame forwarded to the backend has CloseTimeout from
		// here, its forwarding included: a backend that reads nothing
		// holds that write for good (it has no write timeout). One to the
		// client is bounded by WriteTimeout, and its answer's
		// CloseTimeout starts once it went out (drive), as the docs say.
		if dst.side == Backend {
			s.armCloseTimer()
		}
		if forward {
			s.forwardSmall(dst, h, raw)
		}
		// Else the other peer has, or gets, the relay's close frame, and
		// this one answers it (a shutdown's, a protocol error's, the
		// other peer gone's) or crossed it.
		return true
	}
	s.forwardSmall(dst, h, raw)
	return false
}

// forwardSmall writes a whole control frame to dst in one write. Like a
// data frame, a client's ping or pong waiting for a slow backend keeps
// the client from counting as idle.
func (s *Session) forwardSmall(dst *leg, h ws.Header, payload []byte) {
	s.writingTo(dst, true)
	_, err := dst.w.whole(s.done, h, payload, false)
	s.writingTo(dst, false)
	if err != nil {
		s.writeFailed(dst.side, err)
	}
}

// forwardData streams one data frame from src to dst: the header and then
// the payload, chunk by chunk through src's read buffer, all under dst's
// writer lock. It reports whether the pump may go on.
func (s *Session) forwardData(src, dst *leg, h ws.Header) bool {
	w := dst.w
	// Waiting for the writer is waiting for dst too: its holder writes.
	// So is each write below; waiting for src's next bytes is not (a
	// client that stalls in its own frame is not kept alive by it).
	s.writingTo(dst, true)
	locked := w.lock(s.done)
	s.writingTo(dst, false)
	if !locked {
		return false
	}
	if !w.usable() {
		// dst is closing or gone: keep src's stream aligned, drop the frame.
		w.unlock()
		k, err := src.rd.skip(h.Length)
		src.counters.bytes.Add(k)
		if err != nil {
			s.readFailed(src.side, err)
			return false
		}
		return true
	}
	hdr := w.encode(w.hdr[:0], h)
	remaining := h.Length
	var werr error
	headerSent := false
	// torn gives up on a frame whose source failed: once its header went
	// out, the frame on dst can never be finished.
	torn := func(err error) bool {
		broken := headerSent && werr == nil
		if broken {
			w.broken = true
		}
		if werr == nil { // else the writer was let go when the write failed
			w.unlock()
		}
		s.readFailed(src.side, err)
		if broken {
			s.closeLeg(dst, false)
		}
		return false
	}
	for !headerSent || remaining > 0 {
		var chunk []byte
		if remaining > 0 && len(src.rd.buffered()) == 0 {
			if err := src.rd.fill(); err != nil {
				return torn(err)
			}
			s.seen(src) // new bytes: the peer is alive
		}
		buf := src.rd.buffered()
		if int64(len(buf)) < remaining {
			chunk = buf
			remaining -= int64(len(buf))
			src.counters.bytes.Add(int64(len(buf)))
		} else {
			// The frame ends in this chunk: the data frames buffered
			// after it go in the same write, the lock still held.
			end := int(remaining)
			src.counters.bytes.Add(remaining)
			var more int
			more, remaining = s.batch(src, buf[end:], w.waiting.Load() == 0)
			chunk = buf[:end+more]
		}
		if werr == nil {
			s.writingTo(dst, true)
			if headerSent {
				werr = w.write(chunk)
			} else if whole := src.rd.withHeader(hdr, chunk); whole != nil {
				werr = w.write(whole) // one plain write (one TLS record)
			} else {
				werr = w.writeFrameStart(hdr, chunk)
			}
			s.writingTo(dst, false)
			if werr != nil {
				// dst is dead or gone now, not once the rest of the frame
				// has come (a huge frame trickling in could take hours):
				// src gets its close frame through its own writer at once.
				// The failed write left the writer broken, so it is let
				// go first: ending the relay may need it (a close frame
				// to src that fails ends dst through it, and the other
				// pump may be waiting for it). The rest of the frame is
				// still read, and dropped, so that src's stream stays
				// aligned for its close answer.
				w.unlock()
				s.writeFailed(dst.side, werr)
			}
		}
		headerSent = true
		src.rd.discard(len(chunk))
	}
	if werr == nil {
		w.unlock()
	}
	return true
}

// bindInline marks the legs that may relay from inside their read
// callback (see reader.rawRead): those whose reads say what the socket
// still holds (TCP_INQ), towards a plain socket, written without waiting.
func (s *Session) bindInline() {
	for _, src := range s.legs {
		src.inlineOK = src.rd.inq && s.legs[src.side.other()].rd.raw() != nil
	}
}

// inlineOn gives a leg that may relay inline what it takes, as it starts
// to linger; inlineOff takes it back before the leg parks or its pump
// ends, so an idle connection carries none of it. Only src's goroutine
// uses either, and the state they hand out is used only by src's read
// callback. That state is pooled: a leg whose messages come more than a
// linger apart starts to linger again and again.
func (s *Session) inlineOn(src *leg) {
	dst := s.legs[src.side.other()]
	if !src.inlineOK || src.rd.relay != nil || dst.rd.raw() == nil {
		return
	}
	in := inlinePool.Get().(*inline)
	in.s, in.src, in.dst = s, src, dst
	in.raw = dst.rd.raw()
	dst.w.nb = &in.nbWrite
	src.rd.relay = in
}

func (s *Session) inlineOff(src *leg) {
	in := src.rd.relay
	if in == nil {
		return
	}
	src.rd.relay = nil
	s.legs[src.side.other()].w.nb = nil
	fn := in.fn
	*in = inline{} // no session, leg, socket or bytes kept in the pool
	in.fn = fn
	inlinePool.Put(in)
}

// inline is what a leg relaying inline uses: its relay and the other
// leg's writes that do not wait.
type inline struct {
	nbWrite
	s        *Session
	src, dst *leg
}

var inlinePool = sync.Pool{New: func() any {
	in := &inline{}
	in.fn = in.nbWrite.write // bound once, so writes do not allocate
	return in
}}

// relay relays from inside src's read callback (see relayInline).
func (in *inline) relay() bool { return in.s.relayInline(in.src, in.dst) }

// relayInline relays the whole data frames at the start of src's read
// buffer from inside src's read callback, where nothing may block: only
// if dst's writer lock is free and no relay-made frame waits for it, and
// with a write that takes what the socket takes now. It reports whether
// src's buffer is empty after. What it leaves goes to the pump: frames it
// did not take stay buffered; of the frames it took, the bytes the socket
// did not take (or a failed write) are owed, dst's lock still held, and
// the pump pays them first (payOwed).
func (s *Session) relayInline(src, dst *leg) bool {
	w := dst.w
	if w.waiting.Load() != 0 || !w.mu.TryLock() {
		return false
	}
	if s.isDone() || !w.usable() {
		w.unlock()
		return false
	}
	buf := src.rd.buffered()
	n, _ := s.batch(src, buf, false)
	if n == 0 {
		w.unlock()
		return false
	}
	s.seen(src)
	src.inlined++
	k, err := w.tryWrite(buf[:n])
	src.rd.discard(k)
	if k < n {
		src.owed, src.owedErr = n-k, err
		return false
	}
	w.unlock()
	return len(src.rd.buffered()) == 0
}

// payOwed writes the bytes relayInline owes dst, under the lock it kept,
// and releases the lock.
func (s *Session) payOwed(src, dst *leg) {
	w := dst.w
	err := src.owedErr
	if err == nil {
		s.writingTo(dst, true)
		err = w.write(src.rd.buffered()[:src.owed])
		s.writingTo(dst, false)
	}
	src.rd.discard(src.owed)
	src.owed, src.owedErr = 0, nil
	src.paid++
	w.unlock()
	if err != nil {
		s.writeFailed(dst.side, err)
	}
}

// writingTo marks the start (on) and end of a write of client frames to
// dst that may wait: to the backend, it sets backendBlocked meanwhile.
func (s *Session) writingTo(dst *leg, on bool) {
	if dst.side == Backend {
		s.backendBlocked.Store(on)
	}
}

// batch takes the data frames at the start of b, bytes that follow a
// frame being forwarded, into the same write: each whole header that
// passes checkHeader and is encoded as ReadHeader would re-encode it,
// with its payload as far as b holds it. It stops at a control frame (the
// pump inspects those), a header that is cut short, bad or oddly encoded
// (the pump reads it and fails the connection on it), and a header with
// none of its payload. It returns how many bytes of b it took and how
// much of the last frame's payload is still to come.
//
// A frame cut short keeps the writer's lock into the next read, so it is
// taken only while no relay-made frame (a ping, a close) waits for the
// lock: else a peer streaming frames could hold the lock for good.
func (s *Session) batch(src *leg, b []byte, cutOK bool) (n int, remaining int64) {
	for n < len(b) {
		h, hs, avail, ok := s.peekFrame(src, b[n:])
		if !ok || h.OpCode.IsControl() {
			break
		}
		if avail < h.Length && (avail == 0 || !cutOK) {
			break
		}
		src.took(h, hs)
		if avail < h.Length {
			src.counters.bytes.Add(avail)
			n += hs + int(avail)
			remaining = h.Length - avail
			break
		}
		src.counters.bytes.Add(h.Length)
		n += hs + int(h.Length)
	}
	return n, remaining
}

// peekFrame reads the header of the frame at the start of b, which holds
// bytes already read from src: its length hs and how many bytes follow it
// in b. ok says it is whole, passes checkHeader and is encoded as
// ReadHeader would encode it again, so its bytes may go on as they are.
func (s *Session) peekFrame(src *leg, b []byte) (h ws.Header, hs int, avail int64, ok bool) {
	src.peek.Reset(b)
	h, err := ws.ReadHeaderBuffer(&src.peek, src.hdr[:])
	avail = int64(src.peek.Len())
	src.peek.Reset(nil)
	hs = len(b) - int(avail)
	ok = err == nil && hs == ws.HeaderSize(h) && checkHeader(h, src.side, src.inMessage, s.cfg.AllowedRSV) == nil
	return h, hs, avail, ok
}

// took counts a frame whose header src has read, and its header's hs
// bytes on the wire (its payload's are counted as they are read: a frame
// may announce more than ever comes, up to 2^63-1 bytes), and tracks
// whether a fragmented message is open.
func (l *leg) took(h ws.Header, hs int) {
	l.counters.frames.Add(1)
	l.counters.bytes.Add(int64(hs))
	if !h.OpCode.IsControl() {
		l.inMessage = !h.Fin
	}
}
