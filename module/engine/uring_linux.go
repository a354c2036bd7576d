//go:build linux

package engine

import (
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A small io_uring for an event loop's batches: when one epoll wait
// reports several sockets, the loop reads them all with one system call
// and writes what it relays with one more, instead of a read and a write
// each. Each receive and send is non-blocking (MSG_DONTWAIT: the kernel
// does it at once or answers EAGAIN, never later) and the loop waits for
// all of a batch's completions before it goes on, so every buffer is the
// loop's again once a batch returns, and no operation outlives it.
//
// Only the ring's setup, its two submission kinds and its completions
// are here; a machine without io_uring (an old kernel, a seccomp profile
// or io_uring_disabled that refuses it) keeps the read and write per
// socket.

// Kernel ABI (include/uapi/linux/io_uring.h).
const (
	uringOpSend = 26 // IORING_OP_SEND
	uringOpRecv = 27 // IORING_OP_RECV

	uringEnterGetEvents = 1 << 0 // IORING_ENTER_GETEVENTS

	uringSetupSingleIssuer = 1 << 12 // IORING_SETUP_SINGLE_ISSUER
	uringSetupDeferTaskrun = 1 << 13 // IORING_SETUP_DEFER_TASKRUN

	uringFeatSingleMmap = 1 << 0 // IORING_FEAT_SINGLE_MMAP

	uringOffSQRing = 0
	uringOffCQRing = 0x8000000
	uringOffSQEs   = 0x10000000

	uringSQESize = 64
	uringCQESize = 16
)

type uringSQOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type uringCQOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

type uringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  uringSQOffsets
	cqOff                                                                  uringCQOffsets
}

// uringSQE is a submission queue entry, as far as send and receive use it.
type uringSQE struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64
	addr        uint64
	len         uint32
	msgFlags    uint32
	userData    uint64
	bufIndex    uint16
	personality uint16
	spliceFDIn  int32
	addr3       uint64
	pad         uint64
}

type uringCQE struct {
	userData uint64
	res      int32
	flags    uint32
}

// uring is one ring, used by one loop's thread only.
type uring struct {
	fd int
	// The rings' shared words and arrays, in the mappings.
	sqHead, sqTail, sqMask *uint32
	sqArray                []uint32
	sqes                   []uringSQE
	cqHead, cqTail, cqMask *uint32
	cqes                   []uringCQE
	maps                   [][]byte
	// queued counts the entries prepared and not yet submitted.
	queued uint32
}

// uringOff says that no ring is to be made (for tests of the plain path).
var uringOff atomic.Bool

// newUring sets up a ring of entries (a power of two) on the calling
// thread (the ring serves that thread only), or returns nil when the
// kernel refuses one.
func newUring(entries uint32) *uring {
	if uringOff.Load() {
		return nil
	}
	var p uringParams
	p.flags = uringSetupSingleIssuer | uringSetupDeferTaskrun
	// A kernel before 6.1 refuses the flags (EINVAL): no ring then. The
	// batches rely on a non-blocking send or receive completing at once
	// (MSG_DONTWAIT answered EAGAIN rather than waited on), which the
	// kernels with these flags do.
	fd, _, e := syscall.RawSyscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if e != 0 {
		return nil
	}
	u := &uring{fd: int(fd)}
	if !u.mapRings(&p) {
		u.close()
		return nil
	}
	return u
}

func (u *uring) mapRings(p *uringParams) bool {
	sqSize := int(p.sqOff.array) + int(p.sqEntries)*4
	cqSize := int(p.cqOff.cqes) + int(p.cqEntries)*uringCQESize
	if p.features&uringFeatSingleMmap != 0 {
		sqSize = max(sqSize, cqSize)
	}
	mmap := func(size int, off int64) []byte {
		b, err := unix.Mmap(u.fd, off, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
		if err != nil {
			return nil
		}
		u.maps = append(u.maps, b)
		return b
	}
	sq := mmap(sqSize, uringOffSQRing)
	if sq == nil {
		return false
	}
	cq := sq
	if p.features&uringFeatSingleMmap == 0 {
		if cq = mmap(cqSize, uringOffCQRing); cq == nil {
			return false
		}
	}
	sqes := mmap(int(p.sqEntries)*uringSQESize, uringOffSQEs)
	if sqes == nil {
		return false
	}
	word := func(b []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }
	u.sqHead, u.sqTail, u.sqMask = word(sq, p.sqOff.head), word(sq, p.sqOff.tail), word(sq, p.sqOff.ringMask)
	u.sqArray = unsafe.Slice(word(sq, p.sqOff.array), p.sqEntries)
	u.sqes = unsafe.Slice((*uringSQE)(unsafe.Pointer(&sqes[0])), p.sqEntries)
	u.cqHead, u.cqTail, u.cqMask = word(cq, p.cqOff.head), word(cq, p.cqOff.tail), word(cq, p.cqOff.ringMask)
	u.cqes = unsafe.Slice((*uringCQE)(unsafe.Pointer(&cq[p.cqOff.cqes])), p.cqEntries)
	return true
}

func (u *uring) close() {
	for _, b := range u.maps {
		_ = unix.Munmap(b)
	}
	u.maps = nil
	syscall.Close(u.fd)
}

// prep queues a non-blocking receive into, or send of, p on fd, tagged
// tag. The caller queues no more than the ring's entries per submit.
func (u *uring) prep(op uint8, fd int32, p []byte, tag uint64) {
	tail := atomic.LoadUint32(u.sqTail) + u.queued
	i := tail & *u.sqMask
	u.sqes[i] = uringSQE{opcode: op, fd: fd, addr: uint64(uintptr(unsafe.Pointer(unsafe.SliceData(p)))),
		len: uint32(len(p)), msgFlags: syscall.MSG_DONTWAIT | syscall.MSG_NOSIGNAL, userData: tag}
	u.sqArray[i] = i
	u.queued++
}

// noResult marks an entry of a submit that got no completion.
const noResult = -1 << 31

// submit hands the queued entries to the kernel and waits until each it
// took has completed, putting each result (bytes, or a negative errno)
// in results[tag]; entries without one keep noResult. The kernel may
// take fewer entries than offered at a time (it could not allocate a
// request, or refused an entry, which then completes with its error):
// submit offers the rest again, and waits only for the completions of
// entries taken. It reports how many of the entries the kernel took, in
// the order they were queued, and false when the ring failed or stopped
// taking them: then an entry it did not take was not done, and one it
// took and did not complete is lost to the caller.
func (u *uring) submit(results []int32) (ok bool, taken uint32) {
	n := u.queued
	if n == 0 {
		return true, 0
	}
	head0 := atomic.LoadUint32(u.sqHead)
	atomic.StoreUint32(u.sqTail, atomic.LoadUint32(u.sqTail)+n)
	u.queued = 0
	got, stuck := uint32(0), 0
	for got < n {
		taken = atomic.LoadUint32(u.sqHead) - head0
		toSubmit, wait := n-taken, uint32(0)
		if toSubmit == 0 {
			wait = taken - got // all taken: wait for the rest of theirs
		}
		// Every entry is non-blocking: the kernel completes it while
		// it takes it, so a wait is for completions already due.
		_, _, e := syscall.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(u.fd), uintptr(toSubmit), uintptr(wait), uringEnterGetEvents, 0, 0)
		head := atomic.LoadUint32(u.cqHead)
		tail := atomic.LoadUint32(u.cqTail)
		progress := head != tail || atomic.LoadUint32(u.sqHead)-head0 != taken
		for ; head != tail; head++ {
			c := u.cqes[head&*u.cqMask]
			if c.userData < uint64(len(results)) {
				results[c.userData] = c.res
			}
			got++
		}
		atomic.StoreUint32(u.cqHead, head)
		if e != 0 && e != syscall.EINTR && e != syscall.EAGAIN && e != syscall.EBUSY {
			return false, atomic.LoadUint32(u.sqHead) - head0
		}
		if progress {
			stuck = 0
		} else if stuck++; stuck > 100 {
			return false, atomic.LoadUint32(u.sqHead) - head0
		}
	}
	return true, n
}
