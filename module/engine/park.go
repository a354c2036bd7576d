package engine

import (
	"crypto/tls"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Parking: a leg with nothing to read gives back its read buffer and, where
// the platform has a poller (epoll on Linux) and the connection is a plain
// socket or TLS straight over one (see tlspark.go), its goroutine too. The
// poller starts a new goroutine for the leg when bytes arrive. An idle
// relay then costs no goroutine and no buffer, only its session structures.

type parkState uint8

const (
	pumpRunning parkState = iota // a goroutine drives the leg
	pumpParked                   // registered with the poller, no goroutine
	pumpDone                     // the leg's pump has finished
	pumpInLoop                   // the relay is on an event loop (loop_linux.go)
)

// parking is the part of a leg that the poller and closers share.
type parking struct {
	mu      sync.Mutex
	state   parkState
	id      uint64 // this park's poller registration; a stale event carries another
	closing bool   // the connection is being closed: never park again
	armed   bool   // the fd is in the poller's set (so re-arm with MOD)
}

// park tries to hand the idle leg src to the poller, or the whole relay
// to an event loop when the other leg is parked already. It reports
// whether it did; the caller's goroutine must then return at once.
func (s *Session) park(src *leg) bool {
	p := thePoller()
	if p == nil || src.rd.sock == nil {
		return false
	}
	if s.enterLoop(src, false) {
		return true
	}
	if !s.parkInPoller(p, src) {
		return false
	}
	// The other leg may have parked after the try above and before src
	// did, and tried itself while src was not parked yet: one of the two
	// tries after parking sees both parked.
	s.enterLoop(src, true)
	return true
}

func (s *Session) parkInPoller(p *poller, src *leg) bool {
	pk := &src.park
	pk.mu.Lock()
	defer pk.mu.Unlock()
	if pk.closing {
		return false
	}
	id := p.register(src)
	if err := p.arm(src, id, pk.armed); err != nil {
		p.forget(id)
		return false
	}
	pk.armed = true
	pk.id = id
	pk.state = pumpParked
	parks.Add(1)
	return true
}

// parks counts the times a leg parked, for tests.
var parks atomic.Int64

// wake is called by the poller when a parked leg has bytes (or an error)
// to read: it starts a goroutine to drive the leg, unless a closer already
// did or the event is stale.
func (s *Session) wake(src *leg, id uint64) {
	pk := &src.park
	pk.mu.Lock()
	if pk.state != pumpParked || pk.id != id {
		pk.mu.Unlock()
		return
	}
	pk.state = pumpRunning
	pk.mu.Unlock()
	src.rd.woken = true // ordered after the parked goroutine's last use by pk.mu
	go s.drive(src)
}

// closeLeg closes a leg's connection. A parked leg is woken, so that its
// pump sees the closed connection and finishes; no leg stays parked on a
// closed socket. A TLS leg closed gracefully first sends crypto/tls's
// close_notify alert; one the relay gives up on is closed beneath
// crypto/tls, since that alert waits up to 5 s for a peer that may have
// stopped reading, and so would everything behind it (the other peer's
// close frame).
func (s *Session) closeLeg(l *leg, graceful bool) {
	pk := &l.park
	pk.mu.Lock()
	pk.closing = true // never parked, nor moved onto a loop, again
	pk.mu.Unlock()
	s.recall()
	pk.mu.Lock()
	parked := pk.state == pumpParked
	if parked {
		pk.state = pumpRunning
	}
	id := pk.id
	pk.mu.Unlock()
	switch tc, ok := l.rd.conn.(*tls.Conn); {
	case ok && !graceful:
		tc.NetConn().Close()
	case ok:
		// crypto/tls gives its close_notify alert 5 s to be written; a
		// peer that took the last close frame but reads no more (its
		// socket full) gets tlsCloseNotifyWait, then the socket closes.
		cut := time.AfterFunc(tlsCloseNotifyWait, func() { tc.NetConn().Close() })
		tc.Close()
		cut.Stop()
	default:
		l.rd.conn.Close()
	}
	if parked {
		if p := thePoller(); p != nil {
			p.forget(id)
		}
		go s.drive(l)
	}
}

// tlsCloseNotifyWait bounds a graceful TLS close's close_notify alert.
// The WebSocket close handshake is over by then; the alert only tells the
// peer that no bytes were cut off, which the close frame already did.
const tlsCloseNotifyWait = time.Second

// lingerTime is how long an idle leg waits in the runtime's poller before
// it parks. A busy connection's next frame usually comes sooner, and
// waiting there costs less than a trip through the relay's own poller;
// a connection idle for longer gives its goroutine back. A variable only
// so that tests can make legs park and wake often.
var lingerTime = time.Second

// loopLinger is the linger of a leg whose relay may join an event loop.
// Parking is its way onto a loop, where a frame costs less than in the
// runtime's poller, busy or not. A relay joins only while both legs are
// parked at once, and a busy leg parks only when its linger ends (to be
// woken by the next frame at once), so both legs' lingers end together,
// on a grid of loopLinger from the session's start (lingerEnd). With a
// linger of a second, ending whenever each leg began it, a tenth of the
// relays of a 100-connection round-trip run were still off the loops
// after 5 s, and their round trips made most of the run's p99.
const loopLinger = 100 * time.Millisecond

// lingerEnd is when a linger that starts at now ends for a relay that may
// join a loop: the first point of the relay's grid at least half a step
// away, the same for both legs.
func (s *Session) lingerEnd(now time.Time) time.Time {
	step := min(lingerTime, loopLinger)
	k := (now.Sub(s.start) + step/2 + step - 1) / step
	return s.start.Add(k * step)
}

// lingerCap bounds how many legs linger at once. When many connections
// wake together (a broadcast, a burst of messages) the rest park at once,
// so the burst does not leave thousands of goroutine stacks behind.
const lingerCap = 1024

// lingering counts the legs lingering now.
var lingering atomic.Int32

// errParked says the leg was handed to the poller.
var errParked = errors.New("parked")

// waitIdle waits between frames for src's next byte: a while in the
// runtime's poller, then parked where the platform and connection allow,
// else for as long as it takes. It returns errParked when it parked.
//
// A leg that has not relayed a frame yet parks at once if nothing is
// there: a burst of new connections then costs no goroutine per
// connection.
func (s *Session) waitIdle(src *leg) error {
	woken := src.rd.woken
	src.rd.woken = false
	if src.rd.sock == nil || thePoller() == nil {
		return src.rd.fill()
	}
	if src.rd.tlsc != nil {
		return s.waitIdleTLS(src, woken)
	}
	if src.counters.frames.Load() > 0 && lingering.Add(1) <= lingerCap {
		s.inlineOn(src)
		var err error
		if s.loopOK {
			err = src.rd.fillUntil(s.lingerEnd(s.cfg.Now()))
		} else {
			err = src.rd.fillWithin(lingerTime)
		}
		lingering.Add(-1)
		if err != errLingered {
			return err
		}
		src.rd.clearDeadline() // an expired deadline would fail the next read at once
	} else {
		if src.counters.frames.Load() > 0 {
			lingering.Add(-1) // over the cap: park now
		}
		ready, err := src.rd.tryFill()
		if ready || err != nil {
			return err
		}
	}
	// Nothing came. Parking with bytes already waiting is harmless: the
	// poller's registration is level-triggered and fires at once. No
	// deadline may stay behind: the leg may sleep far past it.
	src.rd.clearDeadline()
	s.inlineOff(src)
	if s.park(src) {
		return errParked
	}
	return src.rd.fill()
}
