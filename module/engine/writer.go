package engine

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
)

// errWriterDone is returned when a writer gave up waiting for its lock
// because the session is tearing down.
var errWriterDone = errors.New("relay is closing")

// writer is the only way bytes reach one leg. Whoever holds its lock
// writes one whole frame; that is what keeps relay pings and close
// frames between frames.
type writer struct {
	conn    net.Conn
	now     func() time.Time
	timeout time.Duration // per write; 0 means none
	mask    bool          // relay-made frames to this leg are masked (the backend leg)
	// closeSent: a close frame went out, so no more data frames (RFC 6455
	// 5.5.1). Guarded by mu; it sits here so that the struct stays small.
	closeSent bool
	mu        sync.Mutex
	// waiting counts the callers of whole waiting for mu: while any does,
	// a data batch ends with a whole frame.
	waiting atomic.Int32

	// Guarded by mu.
	dl      time.Time // write deadline in force
	broken  bool      // a write failed or a frame was left unfinished
	scratch [ws.MaxHeaderSize]byte
	hdr     [ws.MaxHeaderSize]byte
	sw      sliceWriter
	vec     [2][]byte
	bufs    net.Buffers

	// nb is set when the leg is written without waiting too (tryWrite):
	// it points into the other leg's pooled inline state, which only the
	// other leg's goroutine sets, clears and uses (Session.inlineOn). A
	// writer that never is carries none of it.
	nb *nbWrite
}

func newWriter(conn net.Conn, timeout time.Duration, mask bool, now func() time.Time) *writer {
	return &writer{conn: conn, now: now, timeout: timeout, mask: mask}
}

// lock takes the writer; it reports false, without the lock, once the
// session is tearing down (done closed). A holder never keeps the lock for
// long after teardown: teardown closes both connections, which fails the
// read or write the holder is blocked in.
func (w *writer) lock(done <-chan struct{}) bool {
	w.mu.Lock()
	select {
	case <-done:
		w.mu.Unlock()
		return false
	default:
		return true
	}
}

func (w *writer) unlock() { w.mu.Unlock() }

// usable reports whether a frame may still be written. Call with the lock.
func (w *writer) usable() bool { return !w.closeSent && !w.broken }

// write writes p whole under the per-write deadline. A failure leaves the
// leg broken: the frame on the wire is unfinished, so nothing more may go.
func (w *writer) write(p []byte) error {
	w.extendDeadline()
	_, err := w.conn.Write(p)
	if err != nil {
		// The frame on the wire is unfinished: nothing valid can follow.
		// The session closes the connection once it has recorded why.
		w.broken = true
	}
	return err
}

// nbWrite is a writer's state for writes that do not wait.
type nbWrite struct {
	raw syscall.RawConn       // the plain socket beneath the writer's conn
	fn  func(fd uintptr) bool // nb.write, bound once so writes do not allocate
	p   []byte
	n   int
	err error
}

// tryWrite writes what the socket takes of p now, without waiting (see
// Session.inlineOn), and returns how much that was. A failure leaves
// the leg broken, as in write. Call with the lock.
func (w *writer) tryWrite(p []byte) (int, error) {
	w.extendDeadline() // an expired deadline would fail even this write
	nb := w.nb
	nb.p, nb.n, nb.err = p, 0, nil
	err := nb.raw.Write(nb.fn)
	if err == nil {
		err = nb.err
	}
	n := nb.n
	nb.p = nil
	if err != nil {
		w.broken = true
	}
	return n, err
}

func (nb *nbWrite) write(fd uintptr) bool {
	nb.n, nb.err = writeNow(fd, nb.p)
	return true
}

// writeNow writes what the non-blocking socket fd takes of p now and
// returns how much that was, with the error that stopped it (nil when the
// socket is full or took nothing: the rest waits).
func writeNow(fd uintptr, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k, err := sysWrite(fd, p[n:])
		switch err {
		case nil:
			if k <= 0 {
				return n, nil
			}
			n += k
		case syscall.EINTR:
		case syscall.EAGAIN:
			return n, nil
		default:
			return n, err
		}
	}
	return n, nil
}

// encode appends the wire form of h to dst, which has room for it.
func (w *writer) encode(dst []byte, h ws.Header) []byte {
	w.sw.buf = dst
	// dst always has room for a header, and gobwas only fails on lengths
	// that ws.ReadHeader already refused.
	_ = ws.WriteHeaderBuffer(&w.sw, h, w.scratch[:])
	return w.sw.buf
}

// control writes a relay-made control frame (ping or close) between whole
// frames. A frame is skipped (started is zero) when the leg is broken or
// already had its close frame.
//
// started is when the write began, after any frame in flight: a peer's
// answer can only come after it.
func (w *writer) control(done <-chan struct{}, op ws.OpCode, payload []byte) (started time.Time, err error) {
	h := ws.Header{Fin: true, OpCode: op, Length: int64(len(payload))}
	if w.mask {
		h.Masked = true
		h.Mask = ws.NewMask()
	}
	return w.whole(done, h, payload, w.mask)
}

// whole writes a frame of at most a control frame's size between frames,
// masking a copy of the payload when cipher is set (only the relay's own
// close frames to the backend: rare enough to allocate). A frame is
// skipped (started is zero) when the leg is broken or already had its
// close frame; started is when the write began.
func (w *writer) whole(done <-chan struct{}, h ws.Header, payload []byte, cipher bool) (started time.Time, err error) {
	w.waiting.Add(1) // a batch does not go on into the next read meanwhile
	locked := w.lock(done)
	w.waiting.Add(-1)
	if !locked {
		return started, errWriterDone
	}
	defer w.unlock()
	if !w.usable() {
		return started, nil
	}
	started = w.now()
	if cipher {
		payload = append([]byte(nil), payload...)
		ws.Cipher(payload, h.Mask, 0)
	}
	if h.OpCode == ws.OpClose {
		w.closeSent = true
	}
	return started, w.writeFrameStart(w.encode(w.hdr[:0], h), payload)
}

// sliceWriter appends to a fixed buffer without allocating.
type sliceWriter struct{ buf []byte }

func (s *sliceWriter) Write(p []byte) (int, error) {
	if len(s.buf)+len(p) > cap(s.buf) {
		return 0, io.ErrShortBuffer
	}
	s.buf = append(s.buf, p...)
	return len(p), nil
}

// writeFrameStart writes a frame header and the first part of its payload
// in one system call where the connection allows (writev on TCP).
func (w *writer) writeFrameStart(hdr, payload []byte) error {
	if len(payload) == 0 {
		return w.write(hdr)
	}
	w.extendDeadline()
	w.vec[0], w.vec[1] = hdr, payload
	w.bufs = w.vec[:]
	_, err := w.bufs.WriteTo(w.conn)
	w.vec[0], w.vec[1] = nil, nil
	if err != nil {
		w.broken = true
	}
	return err
}

// extendDeadline makes the write deadline fall between timeout and
// timeout*17/16 from now, touching the runtime's timer only when the
// deadline in force is outside that window (about every timeout/16 on a
// busy leg, not on every write). Call with the lock.
func (w *writer) extendDeadline() {
	if w.timeout <= 0 {
		return
	}
	earliest := w.now().Add(w.timeout)
	if !w.dl.IsZero() && !w.dl.Before(earliest) && w.dl.Before(earliest.Add(w.timeout/16+1)) {
		return
	}
	w.dl = earliest.Add(w.timeout / 16)
	_ = w.conn.SetWriteDeadline(w.dl)
}
