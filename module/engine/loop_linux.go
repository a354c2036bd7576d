//go:build linux

package engine

import (
	"bytes"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
)

// Event loops (Config.Loops). A relay whose legs are both plain TCP
// sockets, once both are idle (parked), leaves Go's runtime poller: each
// socket is duplicated and its net.Conn closed, which takes it out of the
// runtime's epoll set, and the pair joins one of a few event loops. A
// loop is a goroutine locked to its own OS thread, waiting on its own
// epoll set and reading and writing with plain system calls; a round trip
// through it costs no goroutine wake-up, which is most of what a relay
// spends per small message in the runtime's poller.
//
// A loop does only the common case: it reads what a socket holds and, when
// that is whole data frames, pings and pongs that pass the pump's checks,
// writes them to the other socket without waiting (the client's pongs to
// relay pings it consumes). Anything else (a close frame, a frame cut
// across reads, a header the pump must judge, a write that
// would block, the end of a stream) hands the relay back to the goroutine
// engine: each socket gets a new net.Conn, both pumps start again, and
// the bytes the loop read but did not relay are the pump's, first in its
// read buffer, with those of frames it had started to write owed to the
// other leg under its writer lock (as relayInline leaves them). So every
// rule of the pumps (stall and write timeouts, close handshakes,
// violations) stays where it is. While a relay is on a loop the loop holds
// both writers' locks: relay pings, close frames and closing a leg first
// call it back (recall).
//
// There is one loop for every two CPUs the runtime uses (at least one, at
// most 8; loopCount), relays spread over them in turn. A loop's thread is
// one the Go scheduler does not manage and, under load, takes a CPU of
// its own; with one per CPU the loops and the goroutines (TLS legs,
// handshakes, the rest of Caddy) crowd each other, and a loop preempted
// by the kernel holds up every relay on it. The package owns the loops: a
// loop starts when a relay first needs it, and exits, its thread with it,
// once it has had no relay for loopIdle.

// evloop is one event loop: its epoll set, the relays on it (by loop id)
// and the buffer its thread reads into.
type evloop struct {
	epfd   int
	mu     sync.Mutex
	on     map[uint64]*Session
	buf    []byte
	exited bool // guarded by loopsMu
}

var (
	loopsMu   sync.Mutex
	loopSlots [8]*evloop // guarded by loopsMu
	loopNext  atomic.Uint32
	loopIDs   atomic.Uint64
	// loopIdle is how long a loop without relays lives on, in
	// milliseconds (a variable for tests).
	loopIdle atomic.Int64
	// loopEntries counts relays that joined a loop, for tests; onLoops
	// counts the relays on a loop now (OnLoops).
	loopEntries, onLoops atomic.Int64
)

func init() { loopIdle.Store(2000) }

// joinLoop registers s under id with the next loop, starting it when it is
// not running; nil when no loop can be started.
func joinLoop(id uint64, s *Session) *evloop {
	loopsMu.Lock()
	defer loopsMu.Unlock()
	i := loopNext.Add(1) % uint32(loopCount())
	lp := loopSlots[i]
	if lp == nil || lp.exited {
		fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			return nil
		}
		lp = &evloop{epfd: fd, on: make(map[uint64]*Session), buf: make([]byte, blockSize)}
		loopSlots[i] = lp
		go lp.run()
	}
	lp.mu.Lock()
	lp.on[id] = s
	lp.mu.Unlock()
	return lp
}

// loopCount is how many loops relays spread over now.
func loopCount() int { return loopsFor(runtime.GOMAXPROCS(0)) }

// loopsFor is the number of loops for procs CPUs: one per two, at least
// one, at most len(loopSlots).
func loopsFor(procs int) int { return min(max(procs/2, 1), len(loopSlots)) }

// loopsRunning counts the loops running now, for tests.
func loopsRunning() int {
	loopsMu.Lock()
	defer loopsMu.Unlock()
	n := 0
	for _, lp := range loopSlots {
		if lp != nil && !lp.exited {
			n++
		}
	}
	return n
}

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
// park.
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

// OnLoops returns how many relays are on the event loops now.
func OnLoops() int64 { return onLoops.Load() }

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
	src, dst := s.legs[side], s.legs[side.other()]
	n, err := sysRead(uintptr(s.fds[side]), buf)
	for err == syscall.EINTR {
		n, err = sysRead(uintptr(s.fds[side]), buf)
	}
	if err == syscall.EAGAIN {
		return
	}
	if n <= 0 || err != nil {
		// The end of the stream or an error: the pump reads it again and
		// ends the leg as it always does.
		s.leaveLoop(nil, nil, 0, nil, nil)
		return
	}
	s.seen(src)
	// Relay the data frames and the peers' own pings and pongs; consume
	// the client's answers to relay pings in between. sent is where the
	// bytes not yet written start.
	sent, pos := 0, 0
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
			src.took(h) // goes with the frames around it, as the pump would send it
			pos += m
			continue
		}
		// The frames before the pong go first; the pong is counted only
		// once they did, else the pump reads and counts it.
		if w, err := s.loopWrite(dst, buf[sent:pos]); w < pos-sent {
			s.leaveLoop(src, buf[sent+w:n], pos-sent-w, err, nil)
			return
		}
		src.took(h)
		s.pongs.Add(1)
		pos += m
		sent = pos
	}
	w, err := s.loopWrite(dst, buf[sent:pos])
	if pos == n && w == pos-sent {
		return
	}
	s.leaveLoop(src, buf[sent+w:n], pos-sent-w, err, nil)
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

// run is the loop's thread: wait, then handle each event; exit after
// loopIdle without relays. It ends without unlocking its thread, which
// then ends too.
func (lp *evloop) run() {
	runtime.LockOSThread()
	events := make([]syscall.EpollEvent, 128)
	for {
		n, err := syscall.EpollWait(lp.epfd, events, int(loopIdle.Load()))
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			lp.fail()
			return
		}
		if n == 0 && lp.retire() {
			return
		}
		for i := range n {
			id := uint64(uint32(events[i].Fd)) | uint64(uint32(events[i].Pad))<<32
			lp.mu.Lock()
			s := lp.on[id>>1]
			lp.mu.Unlock()
			if s != nil {
				s.event(Side(id&1), id>>1, lp.buf)
			}
		}
	}
}

// retire ends the loop if it has no relays: joinLoop then starts a new one.
func (lp *evloop) retire() bool {
	loopsMu.Lock()
	defer loopsMu.Unlock()
	lp.mu.Lock()
	empty := len(lp.on) == 0
	lp.mu.Unlock()
	if !empty {
		return false
	}
	lp.exited = true
	syscall.Close(lp.epfd)
	return true
}

// fail ends a loop whose epoll set failed: no relay joins it any more, and
// those on it are handed back.
func (lp *evloop) fail() {
	loopsMu.Lock()
	lp.exited = true
	loopsMu.Unlock()
	lp.mu.Lock()
	var on []*Session
	for _, s := range lp.on {
		on = append(on, s)
	}
	lp.mu.Unlock()
	for _, s := range on {
		s.recall()
	}
	syscall.Close(lp.epfd)
}

func (lp *evloop) forget(id uint64) {
	lp.mu.Lock()
	delete(lp.on, id)
	lp.mu.Unlock()
}

// ctl adds (level-triggered, for reading) or removes fd, tagged with tag.
func (lp *evloop) ctl(op int, fd int32, tag uint64) error {
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(uint32(tag)), Pad: int32(uint32(tag >> 32))}
	return syscall.EpollCtl(lp.epfd, op, int(fd), &ev)
}

// dupSocket duplicates the socket beneath raw (close-on-exec).
func dupSocket(raw syscall.RawConn) (int, error) {
	fd, err := -1, error(nil)
	cerr := raw.Control(func(f uintptr) {
		r, _, e := syscall.Syscall(syscall.SYS_FCNTL, f, syscall.F_DUPFD_CLOEXEC, 0)
		if e != 0 {
			err = e
			return
		}
		fd = int(r)
	})
	if cerr != nil {
		return -1, cerr
	}
	return fd, err
}

// fileConnFn is fileConn, or a failing stand-in in tests.
var fileConnFn = fileConn

// fileConn makes a net.Conn of a socket the loop held, and closes the
// loop's descriptor (net.FileConn keeps its own duplicate). net.FileConn
// sets Go's default TCP keep-alive on the socket; the socket's own
// settings (Caddy's keepalive_interval, the dialer's) are put back.
func fileConn(fd int32) (net.Conn, error) {
	ka := keepaliveOf(int(fd))
	f := os.NewFile(uintptr(fd), "")
	defer f.Close()
	c, err := net.FileConn(f)
	if err == nil {
		ka.restore(int(fd))
	}
	return c, err
}

// tcpKeepalive is a TCP socket's keep-alive settings.
type tcpKeepalive struct {
	ok                   bool
	on, idle, intvl, cnt int
}

func keepaliveOf(fd int) tcpKeepalive {
	var k tcpKeepalive
	var e [4]error
	k.on, e[0] = syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
	k.idle, e[1] = syscall.GetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE)
	k.intvl, e[2] = syscall.GetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL)
	k.cnt, e[3] = syscall.GetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT)
	k.ok = e == [4]error{}
	return k
}

func (k tcpKeepalive) restore(fd int) {
	if !k.ok {
		return
	}
	_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, k.idle)
	_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, k.intvl)
	_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, k.cnt)
	_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, k.on)
}

// deadConn stands for a socket the loop could not hand back: every read
// and write fails.
type deadConn struct{ err error }

func (c deadConn) Read([]byte) (int, error)       { return 0, c.err }
func (c deadConn) Write([]byte) (int, error)      { return 0, c.err }
func (deadConn) Close() error                     { return nil }
func (deadConn) LocalAddr() net.Addr              { return nil }
func (deadConn) RemoteAddr() net.Addr             { return nil }
func (deadConn) SetDeadline(time.Time) error      { return nil }
func (deadConn) SetReadDeadline(time.Time) error  { return nil }
func (deadConn) SetWriteDeadline(time.Time) error { return nil }
