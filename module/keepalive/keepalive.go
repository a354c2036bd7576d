// Package keepalive decides when to ping a WebSocket client and when a
// client that does not answer is dead. It holds no timers and no clock of
// its own: the caller passes the current time, so the policy is tested
// without sleeping.
package keepalive

import "time"

// Action is what the caller should do next.
type Action uint8

const (
	// Wait means nothing is due; look again at the returned time.
	Wait Action = iota
	// Ping means the client has been idle for the interval: write a ping
	// now and report the time it was written with [Monitor.PingWritten].
	Ping
	// Dead means a ping went unanswered for the timeout.
	Dead
)

// String names the action for logs and test failures.
func (a Action) String() string {
	switch a {
	case Wait:
		return "wait"
	case Ping:
		return "ping"
	case Dead:
		return "dead"
	}
	return "unknown"
}

// Policy is a fixed-interval keepalive: ping after Interval without a
// frame from the client; declare the client dead when no frame arrives
// within Timeout after the ping was written.
type Policy struct {
	Interval time.Duration
	Timeout  time.Duration
}

// Monitor applies a [Policy] to one client. It is not safe for concurrent
// use: one timer callback owns it.
type Monitor struct {
	policy Policy
	// pingAt is when the outstanding ping was written; zero when none is.
	pingAt time.Time
}

// NewMonitor returns a monitor with no ping outstanding.
func NewMonitor(p Policy) *Monitor {
	return &Monitor{policy: p}
}

// Next says what is due at now, given when the client's last frame
// arrived. For [Wait] it also returns when to call Next again.
//
// Any frame from the client counts as an answer to an outstanding ping:
// a client that is busy sending is alive (RFC 6455 5.5.2 lets it answer
// only the latest ping, or not at all while data flows).
func (m *Monitor) Next(now, lastSeen time.Time) (Action, time.Time) {
	if !m.pingAt.IsZero() {
		if !lastSeen.Before(m.pingAt) {
			m.pingAt = time.Time{}
		} else {
			deadline := m.pingAt.Add(m.policy.Timeout)
			if !now.Before(deadline) {
				return Dead, time.Time{}
			}
			// Look again when the next ping would be due if this one is
			// answered soon, so a timeout longer than the interval does
			// not stretch the ping period.
			if again := m.pingAt.Add(m.policy.Interval); now.Before(again) && again.Before(deadline) {
				return Wait, again
			}
			return Wait, deadline
		}
	}
	due := lastSeen.Add(m.policy.Interval)
	if !now.Before(due) {
		return Ping, time.Time{}
	}
	return Wait, due
}

// PingWritten records that a ping reached the socket at at. The timeout
// runs from here, not from when the ping was due: a ping may wait for a
// long frame in flight to finish first.
func (m *Monitor) PingWritten(at time.Time) {
	m.pingAt = at
}

// Outstanding reports whether a ping is waiting for an answer.
func (m *Monitor) Outstanding() bool {
	return !m.pingAt.IsZero()
}
