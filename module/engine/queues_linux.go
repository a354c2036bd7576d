//go:build linux

package engine

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// SIOCINQ and SIOCOUTQ (linux/sockios.h): for a TCP socket, the bytes
// received and not yet read, and the bytes written and not yet
// acknowledged by the peer. Their numbers differ between architectures
// (ppc64le, mips), so they come from x/sys.
const (
	siocInq  = unix.SIOCINQ
	siocOutq = unix.SIOCOUTQ
)

// clientQueues reads the client socket's queues, wherever the socket is
// now: on an event loop (its descriptor there) or with the pumps (the
// socket beneath the connection, TLS or not). loopMu orders the read
// against a move onto or off a loop, which swaps the descriptors.
//
// For a TLS client leg that is parked (so no Read runs, and none starts
// while park.mu is held), TLSHeld is what crypto/tls holds besides.
func (s *Session) clientQueues() SocketQueues {
	q := SocketQueues{Unread: -1, Unacked: -1, TLSHeld: -1}
	s.loopMu.Lock()
	defer s.loopMu.Unlock()
	if s.inLoop {
		q.Unread, q.Unacked = socketQueues(uintptr(s.fds[Client]))
		return q
	}
	c := s.legs[Client]
	if c.rd.sock != nil {
		_ = c.rd.sock.Control(func(fd uintptr) { q.Unread, q.Unacked = socketQueues(fd) })
	}
	if c.rd.tlsc != nil && tlsFields != nil {
		c.park.mu.Lock()
		if c.park.state == pumpParked {
			q.TLSHeld = tlsFields.heldBytes(c.rd.tlsc)
		}
		c.park.mu.Unlock()
	}
	return q
}

func socketQueues(fd uintptr) (unread, unacked int) {
	return ioctlInt(fd, siocInq), ioctlInt(fd, siocOutq)
}

// ioctlInt is an ioctl(2) that answers an int; -1 when it fails.
func ioctlInt(fd, req uintptr) int {
	var v int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, req, uintptr(unsafe.Pointer(&v))); e != 0 {
		return -1
	}
	return int(v)
}
