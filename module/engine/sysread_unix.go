//go:build unix && !linux

package engine

import "syscall"

// rawReads says whether a plain socket is read directly through
// syscall.RawConn (waiting without holding a buffer).
const rawReads = true

func sysRead(fd uintptr, p []byte) (int, error) { return syscall.Read(int(fd), p) }

func sysWrite(fd uintptr, p []byte) (int, error) { return syscall.Write(int(fd), p) }
