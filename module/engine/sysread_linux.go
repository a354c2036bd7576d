package engine

import (
	"syscall"
	"unsafe"
)

// rawReads says whether a plain socket is read directly through
// syscall.RawConn (waiting without holding a buffer).
const rawReads = true

// sysRead and sysWrite are only used on non-blocking sockets, so they
// never wait and need not tell the scheduler (syscall.Read would, at a
// measurable cost per frame).
func sysRead(fd uintptr, p []byte) (int, error) { return rawIO(syscall.SYS_READ, fd, p) }

func sysWrite(fd uintptr, p []byte) (int, error) { return rawIO(syscall.SYS_WRITE, fd, p) }

func rawIO(trap, fd uintptr, p []byte) (int, error) {
	r, _, e := syscall.RawSyscall(trap, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}
