package engine

import (
	"errors"
	"time"

	"github.com/gobwas/ws"

	"github.com/websocket-relay/websocket_relay/module/keepalive"
)

// startKeepalive arms the ping timer. The timer runs no goroutine while it
// waits; its callback runs briefly each time it fires.
func (s *Session) startKeepalive() {
	if s.cfg.PingInterval <= 0 {
		return
	}
	s.tickMu.Lock()
	defer s.tickMu.Unlock()
	s.monitor = keepalive.NewMonitor(keepalive.Policy{Interval: s.cfg.PingInterval, Timeout: s.cfg.PongTimeout})
	now := s.cfg.Now()
	s.pingTimer = time.AfterFunc(s.tickAt(now.Add(s.cfg.PingInterval)).Sub(now), s.tick)
}

// tickAt is when the timer fires for something due at t: t rounded up to
// a grid of 1/16 of the ping interval, at most 250 ms, the same for every
// relay. Relays' pings then go out together, a few times per interval,
// and the pongs that answer them come back together, so one wake-up of a
// loop (or of the runtime's poller) takes many. A ping is at most a grid
// step late; so is noticing a dead client.
func (s *Session) tickAt(t time.Time) time.Time {
	step := int64(min(s.cfg.PingInterval/16, 250*time.Millisecond))
	if step <= 0 {
		return t
	}
	if r := t.UnixNano() % step; r != 0 {
		return t.Add(time.Duration(step - r))
	}
	return t
}

// causePingTimeout is the Result.Cause of a client cut for not answering
// pings.
const causePingTimeout = "ping timeout"

// tick asks the keepalive monitor what is due and does it: wait, ping the
// client through its writer (after any frame in flight), or declare the
// client dead.
func (s *Session) tick() {
	s.tickMu.Lock()
	defer s.tickMu.Unlock()
	if s.isDone() {
		return
	}
	now := s.cfg.Now()
	last := s.start.Add(time.Duration(s.lastSeen.Load()))
	if s.backendBlocked.Load() {
		// The client's frames wait for a slow backend; it is not idle.
		last = now
	}
	action, at := s.monitor.Next(now, last)
	switch action {
	case keepalive.Wait:
		s.pingTimer.Reset(s.tickAt(at).Sub(now))
	case keepalive.Dead:
		// What the client's socket holds tells a client that stopped
		// taking bytes or never answered from a relay that fell behind.
		// outcome reports them only if the timeout is what ended the relay.
		q := s.clientQueues()
		s.mu.Lock()
		s.timeoutQueues = &q
		s.mu.Unlock()
		s.legGone(Client, "relay", causePingTimeout)
	case keepalive.Ping:
		written, done, err := s.loopPing()
		if !done {
			written, err = s.writeControl(Client, ws.OpPing, pingPayload)
		}
		if err != nil {
			if !errors.Is(err, errWriterDone) {
				s.writeFailed(Client, err)
			}
			return
		}
		if written.IsZero() {
			return // the client leg is closing: no more pings
		}
		// Both legs may have parked while the ping held the client's
		// writer (through it, or the rest of one a loop began): the last
		// to park could not take the relay onto a loop then, and nothing
		// else would until the next frame. Nothing holds it now.
		s.enterLoop(s.legs[Client], true)
		s.pings.Add(1)
		s.monitor.PingWritten(written)
		_, at := s.monitor.Next(written, last)
		s.pingTimer.Reset(s.tickAt(at).Sub(s.cfg.Now()))
	}
}
