//go:build !linux

package engine

import "syscall"

// enableInq: only Linux says how many bytes a read left (see
// sysinq_linux.go); elsewhere a leg reads until the socket would block.
func enableInq(syscall.RawConn) bool { return false }

func readInq(fd uintptr, p []byte) (n, left int, err error) {
	n, err = sysRead(fd, p)
	return n, -1, err
}
