package engine

import (
	"errors"
	"os"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// setCauseLocked records how the session ended; the first call wins.
// Call with s.mu held.
func (s *Session) setCauseLocked(closedBy string, code uint16, reason, cause string) {
	if s.result.ClosedBy != "" {
		return
	}
	s.result.ClosedBy = closedBy
	s.result.CloseCode = code
	s.result.CloseReason = reason
	s.result.Cause = cause
}

// sendClose writes the relay-made close frame f to its leg, between
// frames. It does nothing when that leg already had its close frame or is
// broken. It reports whether the frame was written.
func (s *Session) sendClose(f relayClose) bool {
	var buf [maxControlPayload]byte
	started, err := s.writeControl(f.side, ws.OpClose, closePayload(buf[:], f.code, f.reason))
	if err != nil {
		s.writeFailed(f.side, err)
		return false
	}
	return !started.IsZero()
}

// writeControl writes a relay-made control frame to side through its writer,
// after calling the relay back from an event loop, which holds the
// writers' locks. The writer counts the caller as waiting first, so the
// relay cannot move onto a loop again before the frame is written.
func (s *Session) writeControl(side Side, op ws.OpCode, payload []byte) (time.Time, error) {
	w := s.legs[side].w
	w.waiting.Add(1)
	defer w.waiting.Add(-1)
	s.recall()
	return w.control(s.done, op, payload)
}

// testHook, when set, is called at a few points of a relay's ending
// (named by at) so that tests can race other endings against them.
var testHook atomic.Pointer[func(s *Session, at string, side Side)]

func (s *Session) hook(at string, side Side) {
	if h := testHook.Load(); h != nil {
		(*h)(s, at, side)
	}
}

// goneCode is the close code the relay sends to the surviving leg when
// side disappears: 1001 (going away) to the backend for a lost client,
// 1014 (bad gateway) to the client for a lost backend.
func goneCode(side Side) uint16 {
	if side == Client {
		return CodeGoingAway
	}
	return CodeBadGateway
}

// legGone handles a leg that disappeared without a close frame, or that
// the relay gave up on: its connection is closed and the other leg gets a
// close frame saying so, then has CloseTimeout to answer.
func (s *Session) legGone(side Side, closedBy, cause string) {
	s.mu.Lock()
	if s.gone[side] {
		s.mu.Unlock()
		return
	}
	s.gone[side] = true
	reason := side.String() + " " + cause
	if cause == "went away" {
		cause = reason
	}
	s.setCauseLocked(closedBy, goneCode(side), reason, cause)
	// The other leg's close frame is claimed with the cause: one already
	// on its way there (a protocol error's, a shutdown's, the peer's own)
	// says why the relay ends, and otherwise this one does. This leg gets
	// none any more.
	pending := s.closing[side.other()]
	s.closing = [2]bool{true, true}
	// The close frame this claims is registered with the claim, as
	// sendClosesLocked's are: legGone may run off the pumps (the
	// keepalive's timer: a ping timeout, a ping's failed write), and the
	// relay must not finish between claim and send, once the other
	// peer's own close frame, not forwarded now, ended its pump.
	if !pending && !s.finished {
		s.wg.Add(1)
		defer s.wg.Done()
	}
	s.mu.Unlock()
	s.hook("legGone claimed", side)
	// The timer first: the close frame may wait behind a frame stuck on
	// a peer that does not read, and only the timer's teardown frees it.
	s.armCloseTimer()
	s.closeLeg(s.legs[side], false)
	if pending {
		return
	}
	s.hook("legGone sends", side)
	f := relayClose{side.other(), goneCode(side), reason}
	if !s.sendClose(f) {
		// No close frame could go (the other leg's frame was torn, or it
		// is gone too).
		s.renameClose(closedBy, cause, f, nil)
	}
}

// renameClose makes a result that still names named, a relay-made close
// frame that could not be written (for cause, by closedBy), name written
// instead, a frame of the same ending that was, or none when written is
// nil: the log must not claim a frame no peer got.
func (s *Session) renameClose(closedBy, cause string, named relayClose, written *relayClose) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &s.result
	if r.ClosedBy != closedBy || r.Cause != cause || r.CloseCode != named.code || r.CloseReason != named.reason {
		return // it names another ending's frame
	}
	r.CloseCode, r.CloseReason = 0, ""
	if written != nil {
		r.CloseCode, r.CloseReason = written.code, written.reason
	}
}

// readFailed handles an error reading from side. A leg that stalled in
// the middle of a frame is the relay's call.
func (s *Session) readFailed(side Side, err error) {
	if s.isDone() {
		return
	}
	if errors.Is(err, errStalled) {
		s.legGone(side, "relay", "stalled mid-frame")
		return
	}
	if hb := (handBackError{}); errors.As(err, &hb) {
		s.legGone(side, "relay", hb.Error())
		return
	}
	s.legGone(side, side.String(), "went away")
}

// handBackError is why a leg's socket could not be taken back from an
// event loop (loop_relay_linux.go, e.g. out of descriptors): every read and
// write of the leg then fails with it, and the relay ends as its call.
type handBackError struct{ err error }

func (e handBackError) Error() string {
	return "lost in a hand-back from an event loop (" + e.err.Error() + ")"
}

func (e handBackError) Unwrap() error { return e.err }

// writeFailed handles an error writing to side. A client write that hit
// its deadline means the client is dead (it stopped reading), which is the
// relay's call, not the client's.
func (s *Session) writeFailed(side Side, err error) {
	if s.isDone() || errors.Is(err, errWriterDone) {
		return
	}
	if side == Client && errors.Is(err, os.ErrDeadlineExceeded) {
		s.legGone(Client, "relay", "write timeout")
		return
	}
	if hb := (handBackError{}); errors.As(err, &hb) {
		s.legGone(side, "relay", hb.Error())
		return
	}
	s.legGone(side, side.String(), "went away")
}

// violate answers a protocol violation by side: 1002 with the reason to
// the offender, 1001 to the other leg (RFC 6455 7.1.7).
func (s *Session) violate(side Side, v error) {
	reason := v.Error()
	cause := "protocol error from " + side.String() + ": " + reason
	s.mu.Lock()
	s.setCauseLocked("relay", CodeProtocolError, reason, cause)
	// With the cause, at once: a leg gone from here on must not put a
	// close frame of its own in place of either of these, and a leg
	// already gone, or a peer's close frame, has claimed the other's.
	claimed := s.claimCloses()
	var frames []relayClose
	if claimed[side] {
		frames = append(frames, relayClose{side, CodeProtocolError, reason})
	}
	if claimed[side.other()] {
		frames = append(frames, relayClose{side.other(), CodeGoingAway, "protocol error from " + side.String()})
	}
	s.sendClosesLocked("relay", cause, frames...)
	s.mu.Unlock()
	s.armCloseTimer()
}

// claimCloses claims the relay's close frame to each leg that has none
// claimed yet and reports which it claimed. Call with s.mu held.
func (s *Session) claimCloses() (claimed [2]bool) {
	for side := range s.closing {
		claimed[side] = !s.closing[side]
		s.closing[side] = true
	}
	return claimed
}

// relayClose is a relay-made close frame for one leg.
type relayClose struct {
	side   Side
	code   uint16
	reason string
}

// sendClosesLocked writes the relay-made close frames of one ending (a
// shutdown's, a protocol error's), each from a goroutine of its own,
// which Run waits for: a close frame may wait behind a frame stuck on a
// peer that does not read (until the close timer tears the relay down),
// and must not hold up the other leg's close frame. Call with s.mu held,
// in the critical section that set the cause and claimed the frames'
// legs (and before the relay finished): the relay must not finish in
// between, and so drop frames for which it did not forward the peers'
// own. A result that names the first frame (as the ending closedBy,
// cause set it, which may have lost to another) names, once all were
// tried, the first of them that was written, or none when none was: the
// log must not claim a frame no peer got.
func (s *Session) sendClosesLocked(closedBy, cause string, frames ...relayClose) {
	if len(frames) == 0 {
		return
	}
	wrote := make([]atomic.Bool, len(frames))
	var left atomic.Int32
	left.Store(int32(len(frames)))
	s.wg.Add(len(frames))
	for i, f := range frames {
		go func() {
			defer s.wg.Done()
			wrote[i].Store(s.sendClose(f))
			if left.Add(-1) > 0 || wrote[0].Load() {
				return
			}
			var written *relayClose
			for j := range frames {
				if wrote[j].Load() {
					written = &frames[j]
					break
				}
			}
			s.renameClose(closedBy, cause, frames[0], written)
		}()
	}
}

// Shutdown closes both legs with code and reason, each between whole
// frames, and lets the peers answer within CloseTimeout. It returns at
// once; Run returns when the relay is over. Use 1001 when the server goes
// down and 1012 when the configuration is reloaded. A relay already
// ending (a peer's close frame, a protocol error, a leg gone) is left to
// end that way, within CloseTimeout: a close handshake a peer began gets
// the other peer's answer, not the relay's close frame.
func (s *Session) Shutdown(code uint16, reason string) {
	s.mu.Lock()
	if s.finished {
		s.mu.Unlock()
		return
	}
	if s.result.ClosedBy != "" {
		s.mu.Unlock()
		s.armCloseTimer()
		return
	}
	s.setCauseLocked("relay", code, reason, "shutdown")
	s.closing = [2]bool{true, true} // with the cause, as in violate
	s.sendClosesLocked("relay", "shutdown", relayClose{Client, code, reason}, relayClose{Backend, code, reason})
	s.mu.Unlock()
	s.hook("Shutdown claimed", Client)
	s.armCloseTimer()
}
