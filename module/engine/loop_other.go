//go:build !linux

package engine

import "time"

// Event loops need epoll: elsewhere a relay stays on the goroutine engine.

type loopState struct{}

func (s *Session) canLoop() bool             { return false }
func (s *Session) enterLoop(*leg, bool) bool { return false }
func (s *Session) recall()                   {}

func (s *Session) loopPing() (started time.Time, done bool, err error) { return started, false, nil }

func (s *Session) onLoop() bool { return false }

// OnLoops returns how many relays are on the event loops now: none here.
func OnLoops() int64 { return 0 }
