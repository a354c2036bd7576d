//go:build linux

package engine

import (
	"syscall"
	"unsafe"
)

// tcpInq is TCP_INQ, and TCP_CM_INQ the same (linux/tcp.h, Linux 4.18).
const tcpInq = 36

// enableInq asks the kernel to say, with every read of a TCP socket, how
// many bytes the socket still holds after it, a received FIN counting as
// one ("tell the user-space to continue reading", tcp_inq_hint). It
// reports false where the socket cannot (not TCP, an older kernel).
func enableInq(raw syscall.RawConn) bool {
	ok := false
	_ = raw.Control(func(fd uintptr) {
		ok = syscall.SetsockoptInt(int(fd), syscall.SOL_TCP, tcpInq, 1) == nil
	})
	return ok
}

// readInq reads like read(2), through recvmsg(2), and returns with the
// bytes how many the socket still holds (a FIN counts as one), or -1 when
// the kernel did not say.
func readInq(fd uintptr, p []byte) (n, left int, err error) {
	if len(p) == 0 {
		// syscall.Recvmsg would read a byte into a throwaway buffer.
		n, err = sysRead(fd, p)
		return n, -1, err
	}
	var space [4]uint64 // one cmsghdr and an int, aligned for the header
	oob := unsafe.Slice((*byte)(unsafe.Pointer(&space[0])), len(space)*8)
	n, oobn, _, _, err := syscall.Recvmsg(int(fd), p, oob, 0)
	if err != nil {
		return -1, -1, err
	}
	left = -1
	if oobn >= syscall.CmsgLen(4) {
		h := (*syscall.Cmsghdr)(unsafe.Pointer(&space[0]))
		if h.Level == syscall.SOL_TCP && h.Type == tcpInq && int(h.Len) >= syscall.CmsgLen(4) {
			left = int(*(*int32)(unsafe.Pointer(&oob[syscall.CmsgLen(0)])))
		}
	}
	return n, left, nil
}
