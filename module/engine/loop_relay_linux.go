//go:build linux

package engine

import (
	"bytes"
	"sync"
	"syscall"
	"time"

	"github.com/gobwas/ws"
)

// A relay's life on an event loop: joining one, the events of its
// sockets, relay pings from there, and the hand-back to the goroutines.

// loopState is a session's part in the loops; guarded by loopMu.
type loopState struct {
	loopMu sync.Mutex
	inLoop bool
	lp     *evloop
	loopID uint64
	fds    [2]int32
	// batches counts the writes of data frames loops made for the relay
	// (for tests; a shared counter would bounce between the loops' CPUs).
	batches int
}

// canLoop reports whether the session may join a loop: Config.Loops, and
// both legs plain sockets read raw.
func (s *Session) canLoop() bool {
	return s.cfg.Loops && s.legs[Client].rd.raw() != nil && s.legs[Backend].rd.raw() != nil &&
		thePoller() != nil
}

// enterLoop moves the relay onto a loop as src, the second of its legs to
// go idle, parks (or, when parked is set, once src has parked): the other
// leg must be parked, neither closing, and both writers free. It reports
// whether it did; src's goroutine must then return at once, as after
// park. The keepalive also calls it, with parked set, once a relay ping
// let go of the client's writer (see tick).
func (s *Session) enterLoop(src *leg, parked bool) bool {
	if !s.loopOK {
		return false
	}
	s.loopMu.Lock()
	defer s.loopMu.Unlock()
	c, b := s.legs[Client], s.legs[Backend]
	c.park.mu.Lock()
	defer c.park.mu.Unlock()
	b.park.mu.Lock()
	defer b.park.mu.Unlock()
	dst := s.legs[src.side.other()]
	if c.park.closing || b.park.closing || dst.park.state != pumpParked || s.isDone() ||
		parked && src.park.state != pumpParked {
		return false
	}
	if !c.w.mu.TryLock() {
		return false
	}
	if !b.w.mu.TryLock() {
		c.w.unlock()
		return false
	}
	unlock := func() { c.w.unlock(); b.w.unlock() }
	if c.w.waiting.Load() != 0 || b.w.waiting.Load() != 0 || !c.w.usable() || !b.w.usable() ||
		len(c.rd.buffered()) != 0 || len(b.rd.buffered()) != 0 || c.owed != 0 || b.owed != 0 {
		unlock()
		return false
	}
	var fds [2]int32
	for i, l := range s.legs {
		fd, err := dupSocket(l.rd.sock)
		if err != nil {
			for _, f := range fds[:i] {
				syscall.Close(int(f))
			}
			unlock()
			return false
		}
		fds[i] = int32(fd)
	}
	id := loopIDs.Add(1)
	lp := joinLoop(id, s)
	if lp == nil {
		for _, f := range fds {
			syscall.Close(int(f))
		}
		unlock()
		return false
	}
	for i, fd := range fds {
		if err := lp.ctl(syscall.EPOLL_CTL_ADD, fd, id<<1|uint64(i)); err != nil {
			for _, f := range fds[:i] {
				_ = lp.ctl(syscall.EPOLL_CTL_DEL, f, 0)
			}
			lp.forget(id)
			for _, f := range fds {
				syscall.Close(int(f))
			}
			unlock()
			return false
		}
	}
	// Committed: out of the relay's poller and the runtime's.
	p := thePoller()
	for _, l := range s.legs {
		if l.park.state == pumpParked {
			p.forget(l.park.id) // an event already taken finds the state changed
		}
		if l.park.armed {
			p.disarm(l)
			l.park.armed = false
		}
		l.rd.conn.Close() // the duplicate keeps the socket open
		// Nothing may keep the closed conn's structures alive meanwhile:
		// nobody uses them on a loop, and leaveLoop sets new ones.
		l.rd.conn, l.rd.sock, l.w.conn = nil, nil, nil
		l.park.state = pumpInLoop
	}
	s.inLoop, s.lp, s.loopID, s.fds = true, lp, id, fds
	loopEntries.Add(1)
	onLoops.Add(1)
	return true
}

// onLoop reports whether the relay is on an event loop now.
func (s *Session) onLoop() bool {
	s.loopMu.Lock()
	defer s.loopMu.Unlock()
	return s.inLoop
}

// recall hands a relay on a loop back to the goroutine engine; it does
// nothing when the relay is not on one. A loop's thread must not call it
// while it serves an event (it holds loopMu then); anyone else may, and everything that writes to a leg or closes one from
// outside the pumps calls it first. Taking loopMu also orders the caller
// after the last hand-back, which replaced the legs' connections.
func (s *Session) recall() {
	if !s.loopOK {
		return
	}
	s.loopMu.Lock()
	if s.inLoop {
		s.leaveLoop(nil, nil, 0, nil, nil)
	}
	s.loopMu.Unlock()
}

// leaveLoop hands the relay back to the goroutine engine (loopMu held):
// each socket gets a new net.Conn, the writers are unlocked, and both
// pumps start. rest is what src's socket gave the loop and the loop did
// not relay: it goes first into src's read buffer, its first owed bytes
// (with owedErr, a failed write) still owed to the other leg, whose writer
// then stays locked until src's pump pays them.
//
// hold, when set, is a writer left locked for the caller, which finishes
// a relay-made frame through it and unlocks it.
func (s *Session) leaveLoop(src *leg, rest []byte, owed int, owedErr error, hold *writer) {
	lp := s.lp
	for _, fd := range s.fds {
		_ = lp.ctl(syscall.EPOLL_CTL_DEL, fd, 0)
	}
	lp.forget(s.loopID)
	for i, l := range s.legs {
		c, err := fileConnFn(s.fds[i])
		if err != nil {
			// The leg's pump fails at once, saying why, and the relay
			// ends through the usual paths (readFailed).
			c = deadConn{handBackError{err}}
		}
		l.rd.conn, l.rd.dl = c, time.Time{}
		l.rd.sock = nil
		if sc, ok := c.(syscall.Conn); ok {
			if raw, err := sc.SyscallConn(); err == nil {
				l.rd.sock = raw
			}
		}
		l.w.conn, l.w.dl = c, time.Time{}
	}
	s.inLoop, s.lp, s.fds = false, nil, [2]int32{-1, -1}
	onLoops.Add(-1)
	if src != nil && len(rest) > 0 {
		src.rd.take()
		src.rd.r, src.rd.w = 0, copy(src.rd.blk[:], rest)
		src.owed, src.owedErr = owed, owedErr
		if owedErr != nil {
			s.legs[src.side.other()].w.broken = true
		}
	}
	for _, l := range s.legs {
		if l.w != hold && (src == nil || src.owed == 0 || l == src) {
			l.w.unlock() // the other leg's stays locked for src's owed bytes
		}
		l.park.mu.Lock()
		l.park.state = pumpRunning
		l.park.mu.Unlock()
	}
	if src != nil {
		src.rd.woken = true
	}
	go s.drive(s.legs[Client])
	go s.drive(s.legs[Backend])
}

// event handles one readiness event of a relay's socket on a loop: it
// relays the whole data frames the socket holds, or hands the relay back.
func (s *Session) event(side Side, id uint64, buf []byte) {
	s.loopMu.Lock()
	defer s.loopMu.Unlock()
	if !s.inLoop || s.loopID != id {
		return // handed back meanwhile
	}
	n, err := sysRead(uintptr(s.fds[side]), buf)
	for err == syscall.EINTR {
		n, err = sysRead(uintptr(s.fds[side]), buf)
	}
	if err == syscall.EAGAIN {
		return
	}
	sent, pos, ok := s.afterRead(side, buf, n, err)
	if !ok {
		return
	}
	w, err := s.loopWrite(s.legs[side.other()], buf[sent:pos])
	s.afterWrite(side, buf, n, sent, pos, w, err)
}

// afterRead takes what a read of side's socket into buf gave (n bytes,
// or err) on a loop (loopMu held): it finds the data frames and the
// peers' own pings and pongs to relay, consumes the client's answers to
// relay pings (writing the frames before one first), and returns the
// part of buf to write to the other leg now, buf[sent:pos]. ok is false
// when it handed the relay back (the end of the stream, an error, or a
// write before a pong that the socket did not take whole).
func (s *Session) afterRead(side Side, buf []byte, n int, err error) (sent, pos int, ok bool) {
	src, dst := s.legs[side], s.legs[side.other()]
	if n <= 0 || err != nil {
		// The end of the stream or an error: the pump reads it again and
		// ends the leg as it always does.
		s.leaveLoop(nil, nil, 0, nil, nil)
		return 0, 0, false
	}
	s.seen(src)
	// Relay the data frames and the peers' own pings and pongs; consume
	// the client's answers to relay pings in between. sent is where the
	// bytes not yet written start.
	for {
		k, _ := s.batch(src, buf[pos:n], false)
		pos += k
		if pos == n {
			break
		}
		h, m, consume := s.loopControl(src, buf[pos:n])
		if m == 0 {
			break
		}
		if !consume {
			src.took(h, m-int(h.Length)) // goes with the frames around it, as the pump would send it
			src.counters.bytes.Add(h.Length)
			pos += m
			continue
		}
		// The frames before the pong go first; the pong is counted only
		// once they did, else the pump reads and counts it.
		if w, err := s.loopWrite(dst, buf[sent:pos]); w < pos-sent {
			s.leaveLoop(src, buf[sent+w:n], pos-sent-w, err, nil)
			return 0, 0, false
		}
		src.took(h, m-int(h.Length))
		src.counters.bytes.Add(h.Length)
		s.pongs.Add(1)
		pos += m
		sent = pos
	}
	return sent, pos, true
}

// afterWrite ends an event once buf[sent:pos] was written to the other
// leg, w bytes of it taken (err: the error that stopped it): when all of
// the read was relayed, the relay stays on the loop; else it is handed
// back with the rest.
func (s *Session) afterWrite(side Side, buf []byte, n, sent, pos, w int, err error) {
	if pos == n && w == pos-sent {
		return
	}
	s.leaveLoop(s.legs[side], buf[sent+w:n], pos-sent-w, err, nil)
}

// loopWrite writes p to dst without waiting and returns how much of it the
// socket took, and the error that stopped it (nil when it was full).
func (s *Session) loopWrite(dst *leg, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.batches++
	return writeNow(uintptr(s.fds[dst.side]), p)
}

// loopControl reports whether b starts with a whole ping or pong that
// passes the pump's checks, with its header as the pump would write it
// again: its header and length (0 when b does not start with one), and
// whether it is a client's pong that answers a relay ping, which the pump
// would consume. Other pings and pongs go on as they are; close frames
// are the pump's.
func (s *Session) loopControl(src *leg, b []byte) (h ws.Header, m int, consume bool) {
	h, hs, avail, ok := s.peekFrame(src, b)
	if !ok || h.OpCode != ws.OpPing && h.OpCode != ws.OpPong || avail < h.Length {
		return h, 0, false
	}
	m = hs + int(h.Length)
	if src.side != Client || h.OpCode != ws.OpPong || int(h.Length) != len(pingPayload) {
		return h, m, false
	}
	var p [16]byte
	payload := p[:copy(p[:], b[hs:m])]
	if h.Masked {
		ws.Cipher(payload, h.Mask, 0)
	}
	return h, m, bytes.Equal(payload, pingPayload)
}

// pingFrame is a relay ping as written to a client (unmasked).
var pingFrame = append([]byte{0x80 | byte(ws.OpPing), byte(len(pingPayload))}, pingPayload...)

// loopPing writes a relay ping to the client of a relay on a loop, from
// the keepalive's timer. It reports false, having done nothing, when the
// relay is not on a loop or the client's socket takes none of the frame
// now: the ping then goes the usual way. When the socket takes only part
// of it, the relay is handed back with the client's writer kept, and the
// rest is written through it here.
func (s *Session) loopPing() (started time.Time, done bool, err error) {
	if !s.loopOK {
		return started, false, nil
	}
	s.loopMu.Lock()
	if !s.inLoop {
		s.loopMu.Unlock()
		return started, false, nil
	}
	started = s.cfg.Now()
	c := s.legs[Client]
	n, werr := writeNow(uintptr(s.fds[Client]), pingFrame)
	switch {
	case n == len(pingFrame):
		s.loopMu.Unlock()
		return started, true, nil
	case n == 0 && werr == nil:
		s.loopMu.Unlock()
		return started, false, nil
	case n == 0:
		c.w.broken = true
		s.leaveLoop(nil, nil, 0, nil, nil)
		s.loopMu.Unlock()
		return started, true, werr
	}
	s.leaveLoop(nil, nil, 0, nil, c.w)
	s.loopMu.Unlock()
	err = c.w.write(pingFrame[n:])
	c.w.unlock()
	return started, true, err
}

// loseLeg ends side's leg after a batch lost what its socket gave (a
// ring that failed, with the bytes read and no completion to say how
// many): the relay cannot go on without them, so the leg's pump, handed
// the relay back, fails at once and the relay ends as on any read error.
// loopMu is held, so no move onto a loop swaps the connection meanwhile.
func (s *Session) loseLeg(side Side) {
	if c := s.legs[side].rd.conn; c != nil {
		_ = c.Close()
	}
}
