//go:build linux

package engine

import (
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Event loops (Config.Loops). A relay whose legs are both plain sockets
// (a TCP client; a TCP or Unix socket backend), once both are idle
// (parked), leaves Go's runtime poller: each socket is duplicated and its
// net.Conn closed, which takes it out of the
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
// When one epoll wait reports several sockets, a loop with an io_uring
// (uring_linux.go) reads them all with one system call and writes what
// it relays with one more (batch), instead of a read and a write each:
// with a hundred busy relays that is a third of a loop's CPU per round
// trip. A wait that reports one socket, and a machine without io_uring,
// keep the read and write per socket (event).
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
	// ring batches the reads and writes of an epoll wait that reported
	// several sockets (nil without io_uring); its thread's alone, as
	// are bufs (a block per entry), slots and results.
	ring    *uring
	bufs    []byte
	slots   [uringEntries]loopSlot
	results [uringEntries]int32
	// later are the events of a batch whose relay's other socket was in
	// it, handled after it.
	later []syscall.EpollEvent
	// batched counts the batches read through the ring (for tests).
	batched atomic.Int64
}

// uringEntries is the most sockets one batch reads.
const uringEntries = 64

// loopSlot is one socket's part in a batch.
type loopSlot struct {
	s            *Session
	side         Side
	n, sent, pos int
	write        bool
	// queued is the place of the slot's send among the batch's sends.
	queued uint32
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

// loopsBatched counts the batches the running loops read through their
// rings, for tests.
func loopsBatched() int64 {
	loopsMu.Lock()
	defer loopsMu.Unlock()
	var n int64
	for _, lp := range loopSlots {
		if lp != nil && !lp.exited {
			n += lp.batched.Load()
		}
	}
	return n
}

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

// OnLoops returns how many relays are on the event loops now.
func OnLoops() int64 { return onLoops.Load() }

// run is the loop's thread: wait, then handle each event; exit after
// loopIdle without relays. It ends without unlocking its thread, which
// then ends too.
func (lp *evloop) run() {
	runtime.LockOSThread()
	lp.ring = newUring(uringEntries) // on this thread, which alone submits
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
		if n > 1 && lp.ring != nil {
			for evs := events[:n]; len(evs) > 0; {
				k := min(len(evs), uringEntries)
				lp.batch(evs[:k])
				evs = evs[k:]
			}
			continue
		}
		for _, ev := range events[:n] {
			lp.event(ev)
		}
	}
}

// relayOf returns the relay an event is for (nil when it left the loop
// meanwhile), the side of its socket and the relay's loop id.
func (lp *evloop) relayOf(ev syscall.EpollEvent) (*Session, Side, uint64) {
	tag := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
	lp.mu.Lock()
	s := lp.on[tag>>1]
	lp.mu.Unlock()
	return s, Side(tag & 1), tag >> 1
}

// event handles one event the plain way: a read and a write.
func (lp *evloop) event(ev syscall.EpollEvent) {
	if s, side, id := lp.relayOf(ev); s != nil {
		s.event(side, id, lp.buf)
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
	lp.closeRing()
	return true
}

func (lp *evloop) closeRing() {
	if lp.ring != nil {
		lp.ring.close()
		lp.ring = nil
	}
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
	lp.closeRing()
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

// batch handles the events of one epoll wait that reported several
// sockets, as event handles each, with two system calls in all: every
// socket is read through the ring at once, what each gave is relayed as
// event relays it (a pong consumed in between still writes the frames
// before it at once), and every write then goes through the ring at
// once. Each relay's loopMu is held from its read to its write, so a
// recall waits for the bytes read to be written or handed back. A relay
// with both sockets in the batch has the second read after it, the
// plain way.
func (lp *evloop) batch(evs []syscall.EpollEvent) {
	u := lp.ring
	if lp.bufs == nil {
		lp.bufs = make([]byte, uringEntries*blockSize)
		lp.later = make([]syscall.EpollEvent, 0, uringEntries)
	}
	slots := lp.slots[:0]
	for _, ev := range evs {
		s, side, id := lp.relayOf(ev)
		if s == nil {
			continue
		}
		if inSlots(slots, s) {
			// The relay's other socket is in this batch: this one is
			// read after it, the plain way (left for the next wait, it
			// would wait as long as the other stays readable).
			lp.later = append(lp.later, ev)
			continue
		}
		s.loopMu.Lock()
		if !s.inLoop || s.loopID != id {
			s.loopMu.Unlock()
			continue
		}
		i := len(slots)
		slots = append(slots, loopSlot{s: s, side: side})
		lp.results[i] = noResult
		u.prep(uringOpRecv, s.fds[side], lp.block(i), uint64(i))
	}
	if len(slots) == 0 {
		return
	}
	ok, taken := u.submit(lp.results[:len(slots)])
	if !ok {
		lp.closeRing() // the plain way from now on
	}
	lp.batched.Add(1)
	for i := range slots {
		sl := &slots[i]
		s, res := sl.s, lp.results[i]
		n, err := int(res), error(nil)
		switch {
		case res == noResult && uint32(i) >= taken:
			continue // never read: the next wait reports it again
		case res == noResult:
			n, err = -1, syscall.EIO // read into a ring that failed: lost
		case res == -int32(syscall.EAGAIN) || res == -int32(syscall.EINTR):
			continue
		case res < 0:
			n, err = -1, syscall.Errno(-res)
		}
		sent, pos, ok := s.afterRead(sl.side, lp.block(i), n, err)
		if !ok {
			if err == syscall.EIO && res == noResult {
				s.loseLeg(sl.side)
			}
			continue
		}
		sl.n, sl.sent, sl.pos = n, sent, pos
		if pos == sent {
			s.afterWrite(sl.side, lp.block(i), n, sent, pos, 0, nil)
			continue
		}
		sl.write = true
		lp.results[i] = noResult
		s.batches++
		if lp.ring != nil {
			sl.queued = lp.ring.queued
			lp.ring.prep(uringOpSend, s.fds[sl.side.other()], lp.block(i)[sent:pos], uint64(i))
		}
	}
	taken = 0
	if lp.ring != nil {
		if ok, taken = lp.ring.submit(lp.results[:len(slots)]); !ok {
			lp.closeRing()
		}
	}
	for i := range slots {
		sl := &slots[i]
		if !sl.write {
			continue
		}
		s, res, p := sl.s, lp.results[i], lp.block(i)[sl.sent:sl.pos]
		fd := uintptr(s.fds[sl.side.other()])
		w, err := 0, error(nil)
		switch {
		case res == noResult && sl.queued >= taken:
			w, err = writeNow(fd, p) // not sent through the ring
		case res == noResult:
			err = syscall.EIO // sent into a ring that failed: unknown
		case res >= 0:
			w = int(res)
			if w < len(p) && w > 0 {
				// As writeNow: the socket may take more now.
				k, e := writeNow(fd, p[w:])
				w, err = w+k, e
			}
		case res == -int32(syscall.EAGAIN) || res == -int32(syscall.EINTR):
		default:
			err = syscall.Errno(-res)
		}
		s.afterWrite(sl.side, lp.block(i), sl.n, sl.sent, sl.pos, w, err)
	}
	for i := range slots {
		slots[i].s.loopMu.Unlock()
		slots[i] = loopSlot{}
	}
	for _, ev := range lp.later {
		lp.event(ev)
	}
	lp.later = lp.later[:0]
}

// block is batch entry i's read buffer.
func (lp *evloop) block(i int) []byte { return lp.bufs[i*blockSize : (i+1)*blockSize] }

func inSlots(slots []loopSlot, s *Session) bool {
	for i := range slots {
		if slots[i].s == s {
			return true
		}
	}
	return false
}
