//go:build !unix

package engine

import "syscall"

// rawReads is false where sockets are not file descriptors read with
// read(2) (Windows): legs read through net.Conn and keep their goroutine.
const rawReads = false

func sysRead(fd uintptr, p []byte) (int, error) { return 0, syscall.EWINDOWS }

func sysWrite(fd uintptr, p []byte) (int, error) { return 0, syscall.EWINDOWS }
