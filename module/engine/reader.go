package engine

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// blockSize is the size of a pooled read buffer. A leg holds one only
// while bytes of it are waiting to be relayed; an idle leg holds none.
const blockSize = 32 << 10

type block [blockSize]byte

var blocks = sync.Pool{New: func() any { return new(block) }}

// blocksHeld counts the read buffers that legs hold right now.
var blocksHeld atomic.Int64

func getBlock() *block {
	blocksHeld.Add(1)
	return blocks.Get().(*block)
}

func putBlock(b *block) {
	blocksHeld.Add(-1)
	blocks.Put(b)
}

// BuffersHeld returns how many read buffers (of 32 KiB) live relays hold
// now; an idle relay over plain TCP holds none.
func BuffersHeld() int64 { return blocksHeld.Load() }

// errStalled marks a read that hit the mid-frame stall deadline.
// errLingered marks the end of a linger wait with nothing to read; it is
// not an error of the connection.
var (
	errStalled  = errors.New("stalled mid-frame")
	errLingered = errors.New("nothing to read while lingering")
)

// reader reads one leg through a pooled buffer. Between frames it waits
// for the socket to become readable without holding a buffer (through
// syscall.RawConn where the connection offers it), so an idle connection
// costs no buffer memory. It is used by one pump goroutine only (conn,
// set once, is also read by whoever closes the leg).
type reader struct {
	conn net.Conn
	// sock is the socket the poller waits on while the leg is parked:
	// conn's own for a plain socket (see raw), the socket beneath for TLS
	// (then tlsc is set), nil when the leg cannot park.
	sock syscall.RawConn
	tlsc *tls.Conn
	now  func() time.Time

	blk  *block
	r, w int // unread bytes are blk[r:w]
	err  error

	// stall bounds each wait for bytes inside a frame (armed, below). dl
	// is the read deadline in force (zero: none).
	stall time.Duration
	dl    time.Time

	rawFn  func(fd uintptr) bool // r.rawRead, bound once so reads do not allocate
	rawN   int
	rawErr error

	// relay is the inline relay's state, set while the leg may use it
	// (see Session.inlineOn): its relay method relays the whole data
	// frames at the start of the buffer from inside the read callback and
	// reports whether the buffer is empty after; a leg uses it while it
	// lingers (relaying).
	relay *inline
	// empties counts reads that found nothing (for tests).
	empties int

	// The flags, together so that the struct stays small.

	// woken is set when the poller started the goroutine that drives the
	// leg (the socket is readable), until that goroutine waits again.
	woken bool
	// ending is set when a read returned bytes and an error (TLS: the
	// peer's close_notify right behind its data): the error comes back
	// from the next read, but the socket may never become readable again
	// (the peer may keep TCP open), so the leg must not park.
	ending bool
	// armed is set between a frame's first byte and its end. lingering is
	// set while an idle leg waits in the runtime's poller before parking.
	armed     bool
	lingering bool
	// nonblock makes rawRead report "would block" instead of waiting.
	nonblock   bool
	wouldBlock bool
	// inq is set when each read also says how many bytes the socket
	// still holds (TCP_INQ, see sysinq_linux.go).
	inq bool
	one [1]byte
}

func (r *reader) init(conn net.Conn, prefix []byte, stall time.Duration, now func() time.Time) {
	r.conn, r.stall, r.now = conn, stall, now
	if sc, ok := conn.(syscall.Conn); ok && rawReads {
		if raw, err := sc.SyscallConn(); err == nil {
			r.sock = raw
			r.rawFn = r.rawRead
			r.inq = enableInq(raw)
		}
	} else if tc, ok := conn.(*tls.Conn); ok {
		if sock := tlsSocket(tc); sock != nil {
			r.sock, r.tlsc = sock, tc
		}
	}
	if len(prefix) > 0 {
		r.take()
		r.w = copy(r.blk[:], prefix)
		if r.w < len(prefix) {
			// A handshake reader never holds more than a block; if it did,
			// the rest is lost, so fail loudly rather than relay a torn stream.
			r.err = io.ErrShortBuffer
		}
	}
}

// raw is conn's own socket when conn is a plain one read through
// syscall.RawConn, nil when it is not read raw (TLS, a conn without a
// usable SyscallConn, systems without raw reads).
func (r *reader) raw() syscall.RawConn {
	if r.tlsc != nil {
		return nil
	}
	return r.sock
}

func (r *reader) take() {
	if r.blk == nil {
		r.blk = getBlock()
	}
}

// release gives the buffer back when nothing is waiting in it.
func (r *reader) release() {
	if r.blk != nil && r.r == r.w {
		putBlock(r.blk)
		r.blk = nil
		r.r, r.w = 0, 0
	}
}

// buffered returns the bytes waiting in the buffer.
func (r *reader) buffered() []byte {
	if r.blk == nil {
		return nil
	}
	return r.blk[r.r:r.w]
}

// withHeader returns the bytes of hdr and chunk as one slice of the
// buffer when the buffer holds exactly hdr right before chunk (a frame's
// header just read, minimally encoded, and the start of its payload), so
// both go out in one plain write; else nil. chunk must start at the
// first unread byte.
func (r *reader) withHeader(hdr, chunk []byte) []byte {
	if r.blk == nil || r.r < len(hdr) || len(chunk) == 0 {
		return nil
	}
	whole := r.blk[r.r-len(hdr) : r.r+len(chunk)]
	if !bytes.Equal(whole[:len(hdr)], hdr) {
		return nil
	}
	return whole
}

// discard drops n buffered bytes.
func (r *reader) discard(n int) {
	r.r += n
	if r.r == r.w {
		r.r, r.w = 0, 0
	}
}

// Read implements io.Reader for gobwas's header reader and io.ReadFull.
func (r *reader) Read(p []byte) (int, error) {
	if len(r.buffered()) == 0 {
		if err := r.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.buffered())
	r.discard(n)
	return n, nil
}

// need reads until at least n bytes (at most a block) are buffered.
func (r *reader) need(n int) error {
	for len(r.buffered()) < n {
		if err := r.fill(); err != nil {
			return err
		}
	}
	return nil
}

// skip reads and drops n bytes.
func (r *reader) skip(n int64) (skipped int64, err error) {
	for skipped < n {
		if len(r.buffered()) == 0 {
			if err := r.fill(); err != nil {
				return skipped, err
			}
		}
		k := min(int64(len(r.buffered())), n-skipped)
		r.discard(int(k))
		skipped += k
	}
	return skipped, nil
}

// arm bounds every wait from now to the end of the frame by the stall
// timeout; disarm lifts the bound.
func (r *reader) arm() {
	r.armed = r.stall > 0
	if !r.armed {
		r.clearDeadline()
	}
}

func (r *reader) disarm() { r.armed = false }

// extendDeadline makes the read deadline fall between d and d*17/16 from
// now. It touches the runtime's timer only when the deadline in force is
// outside that window, so a busy leg resets it rarely, not on every read.
func (r *reader) extendDeadline(d time.Duration) {
	earliest := r.now().Add(d)
	if !r.dl.IsZero() && !r.dl.Before(earliest) && r.dl.Before(earliest.Add(d/16+1)) {
		return
	}
	r.setDeadline(earliest.Add(d / 16))
}

func (r *reader) clearDeadline() { r.setDeadline(time.Time{}) }

// setDeadline sets the read deadline to t (zero: none), touching the
// connection's timer only when t moves.
func (r *reader) setDeadline(t time.Time) {
	if !r.dl.Equal(t) {
		r.dl = t
		_ = r.conn.SetReadDeadline(t)
	}
}

// fillWithin waits up to about d for bytes; errLingered says none came.
func (r *reader) fillWithin(d time.Duration) error {
	r.extendDeadline(d)
	return r.fillLingering()
}

// fillUntil is fillWithin with the wait ending at t. The runtime's timer
// is touched only when t moves, so a leg that lingers again and again
// within one step of its grid sets it once.
func (r *reader) fillUntil(t time.Time) error {
	r.setDeadline(t)
	return r.fillLingering()
}

// fillLingering is fill under the linger's deadline, already set.
func (r *reader) fillLingering() error {
	r.lingering = true
	err := r.fill()
	r.lingering = false
	return err
}

// relaying reports whether reads relay inline now: the leg lingers
// between frames (its buffer empty) with the inline relay given.
func (r *reader) relaying() bool { return r.lingering && r.relay != nil }

// fill reads at least one more byte into the buffer.
func (r *reader) fill() error {
	if r.err != nil {
		return r.err
	}
	r.prepareWait()
	if r.blk != nil && r.w == len(r.blk) {
		r.w = copy(r.blk[:], r.blk[r.r:r.w])
		r.r = 0
	}
	var n int
	var err error
	switch {
	case r.raw() != nil:
		n, err = r.readRaw() // it adds what it read to the buffer
	case r.blk == nil:
		// No raw socket (TLS): wait for one byte without a buffer.
		n, err = r.conn.Read(r.one[:])
		if n > 0 {
			r.take()
			r.blk[0] = r.one[0]
			r.r, r.w = 0, 1
		}
	default:
		n, err = r.conn.Read(r.blk[r.w:])
		r.w += n
	}
	if n > 0 {
		// An error that came with the bytes comes back next time.
		r.ending = r.ending || err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
		return nil
	}
	if r.lingering && errors.Is(err, os.ErrDeadlineExceeded) {
		return errLingered // the connection is fine; nothing came
	}
	return r.failed(err, nil)
}

// prepareWait sets the read deadline a wait needs: the stall bound inside
// a frame, none between frames (unless lingering, which set its own).
func (r *reader) prepareWait() {
	switch {
	case r.armed:
		r.extendDeadline(r.stall)
	case !r.lingering:
		r.clearDeadline()
	}
}

// failed records why reading ended: the poller's error or the system
// call's, end of stream when there is neither, a stall when a deadline
// hit inside a frame. The error sticks.
func (r *reader) failed(pollErr, sysErr error) error {
	err := pollErr
	if err == nil {
		err = sysErr
	}
	if err == nil {
		err = io.EOF
	}
	if r.armed && errors.Is(err, os.ErrDeadlineExceeded) {
		err = errStalled
	}
	r.err = err
	return err
}

// tryFill reads what the socket has without waiting. It reports false
// (and no error) when nothing is there yet; without a raw socket it
// always reports false.
func (r *reader) tryFill() (bool, error) {
	if r.err != nil {
		return false, r.err
	}
	if r.raw() == nil {
		return false, nil
	}
	r.prepareWait() // a deadline left from lingering would fail this read
	r.nonblock, r.wouldBlock = true, false
	n, err := r.readRaw()
	r.nonblock = false
	if r.wouldBlock {
		return false, nil
	}
	if n > 0 {
		return true, nil
	}
	return false, r.failed(err, nil)
}

// readRaw waits for readability through the runtime's poller and takes a
// buffer only once bytes are there. It adds what it read to the buffer
// and returns how many bytes that left buffered.
func (r *reader) readRaw() (int, error) {
	r.rawN, r.rawErr = 0, nil
	if err := r.raw().Read(r.rawFn); err != nil {
		return 0, err
	}
	return r.rawN, r.rawErr
}

// rawRead is the read callback. While the leg lingers with the inline
// relay on, a read after which the kernel says the socket holds nothing
// more, not even a FIN (TCP_INQ), is followed, when relayInline sends on
// all it brought, by a wait within the same raw.Read, without the read
// that would find nothing. That is only sound inside one raw.Read:
// a new raw.Read resets the runtime's readiness note (prepareRead), so an
// edge that came meanwhile would be lost; within one, any byte that came
// after the read has raised an edge that ends the wait. Nothing here may
// block or close a connection: closing src waits for this callback to
// return (a Close ends the wait).
func (r *reader) rawRead(fd uintptr) bool {
	r.take()
	for {
		var n int
		left := -1
		var err error
		if r.relaying() { // only an inline relay uses what is left (relay implies inq)
			n, left, err = readInq(fd, r.blk[r.w:])
		} else {
			n, err = sysRead(fd, r.blk[r.w:])
		}
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			r.empties++
			if r.w == 0 {
				putBlock(r.blk)
				r.blk = nil
			}
			if r.nonblock {
				r.wouldBlock = true
				return true
			}
			return false // park until readable
		}
		if n <= 0 || err != nil {
			r.rawN, r.rawErr = 0, err
			return true
		}
		r.w += n
		// Bytes (or a FIN) left in the socket go through the pump, which
		// returns from this callback between reads, so that a Close of
		// src never waits long.
		if !r.relaying() || left != 0 || !r.relay.relay() {
			r.rawN = r.w - r.r
			return true
		}
		// All of it went on and the socket is empty: wait for more. The
		// linger's deadline stays: a busy leg meets it about once per
		// linger time, parks and is woken at once, which costs less than
		// reading the clock on every frame.
		r.r, r.w = 0, 0
		putBlock(r.blk)
		r.blk = nil
		return false
	}
}

// close returns the buffer for good when the pump ends.
func (r *reader) close() {
	r.disarm()
	r.clearDeadline()
	if r.blk != nil {
		putBlock(r.blk)
		r.blk = nil
	}
	r.r, r.w = 0, 0
	if r.err == nil {
		r.err = net.ErrClosed
	}
}
