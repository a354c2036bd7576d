package engine

import (
	"sync/atomic"
	"syscall"
)

// Splicing: a large payload between two plain TCP legs moves through a
// kernel pipe with splice(2), never through the relay's memory. The
// client's masked payload passes untouched either way; splicing only
// saves the two copies a read and a write would make.

// spliceMin is the least payload left in a frame worth a splice.
const spliceMin = 128 << 10

// pipeSize is the capacity asked of each pipe (F_SETPIPE_SZ): the most a
// splice moves at once.
const pipeSize = 256 << 10

type pipe struct{ r, w int }

// splicedBytes counts payload bytes moved by splice(2).
var splicedBytes atomic.Int64

// SplicedBytes returns how many payload bytes relays moved through kernel
// pipes instead of their own buffers.
func SplicedBytes() int64 { return splicedBytes.Load() }

// pipes keeps a few empty pipes for reuse; a pipe that may hold stray
// bytes (after a failed write) is closed instead.
var pipes = make(chan *pipe, 32)

func getPipe() (*pipe, error) {
	select {
	case p := <-pipes:
		return p, nil
	default:
	}
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		return nil, err
	}
	_, _, _ = syscall.Syscall(syscall.SYS_FCNTL, uintptr(fds[1]), 1031 /* F_SETPIPE_SZ */, pipeSize)
	return &pipe{r: fds[0], w: fds[1]}, nil
}

func putPipe(p *pipe) {
	select {
	case pipes <- p:
	default:
		p.close()
	}
}

func (p *pipe) close() {
	syscall.Close(p.r)
	syscall.Close(p.w)
}

// splicer holds one leg's splice state; its callbacks are bound once so
// a splice does not allocate.
type splicer struct {
	p     *pipe
	want  int
	moved int
	err   error
	inFn  func(fd uintptr) bool
	outFn func(fd uintptr) bool
}

func (sp *splicer) bind() {
	sp.inFn = sp.in
	sp.outFn = sp.out
}

// in moves up to want bytes from the socket into the pipe.
func (sp *splicer) in(fd uintptr) bool {
	for {
		n, err := syscall.Splice(int(fd), nil, sp.p.w, nil, sp.want, 1|2 /* MOVE|NONBLOCK */)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		sp.moved, sp.err = int(n), err
		return true
	}
}

// out moves want bytes from the pipe to the socket, all of them.
func (sp *splicer) out(fd uintptr) bool {
	for sp.moved < sp.want {
		n, err := syscall.Splice(sp.p.r, nil, int(fd), nil, sp.want-sp.moved, 1|2)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		case nil:
			sp.moved += int(n)
			continue
		}
		sp.err = err
		return true
	}
	return true
}

// canSplice reports whether payloads can move from src to dst by splice.
func canSplice(src, dst *leg) bool { return src.rd.raw != nil && dst.rd.raw != nil }

// spliceChunk moves up to max payload bytes from src to dst through a
// pipe. When a frame starts here, hdr is its header and head the bytes of
// its payload that came with it (all that src's buffer holds, at most a
// control frame's worth): they go into the pipe first, so dst gets the
// frame's start in one write, and head is taken from the buffer. ok is
// false when splicing cannot be used here (the caller then copies;
// nothing was sent or taken). A read error means src failed and nothing
// reached dst; a write error means dst failed.
func (s *Session) spliceChunk(src, dst *leg, max int64, hdr, head []byte) (n int64, rerr, werr error, ok bool) {
	if !canSplice(src, dst) || len(src.rd.buffered()) != len(head) {
		return 0, nil, nil, false
	}
	p, err := getPipe()
	if err != nil {
		return 0, nil, nil, false
	}
	prefix := len(hdr) + len(head)
	for _, b := range [2][]byte{hdr, head} {
		if len(b) == 0 {
			continue
		}
		// An empty pipe takes a few bytes whole.
		if k, err := syscall.Write(p.w, b); err != nil || k != len(b) {
			p.close()
			return 0, nil, nil, false
		}
	}
	src.rd.discard(len(head))
	sp := &src.sp
	sp.p, sp.want, sp.moved, sp.err = p, int(min(max, int64(pipeSize-prefix))), 0, nil
	src.rd.prepareWait()
	if err := src.rd.raw.Read(sp.inFn); err != nil || sp.err != nil || sp.moved == 0 {
		sp.p = nil
		if prefix > 0 {
			p.close() // it still holds the prefix
		} else {
			putPipe(p)
		}
		return 0, src.rd.failed(err, sp.err), nil, true
	}
	got := sp.moved
	sp.want, sp.moved = prefix+got, 0
	dst.w.extendDeadline()
	err = dst.rd.raw.Write(sp.outFn)
	if err == nil {
		err = sp.err
	}
	sp.p = nil
	if err != nil {
		p.close()
		dst.w.broken = true
		return int64(max0(sp.moved - prefix)), nil, err, true
	}
	putPipe(p)
	splicedBytes.Add(int64(got))
	return int64(got), nil, nil, true
}

func max0(n int) int {
	if n < 0 {
		return 0
	}
	return n
}
