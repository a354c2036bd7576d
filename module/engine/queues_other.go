//go:build !linux

package engine

// clientQueues: only Linux is asked (see queues_linux.go).
func (s *Session) clientQueues() SocketQueues {
	return SocketQueues{Unread: -1, Unacked: -1, TLSHeld: -1}
}
