package conformance

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Behaviours, as Autobahn names them.
const (
	OK            = "OK"
	NonStrict     = "NON-STRICT"
	Failed        = "FAILED"
	Informational = "INFORMATIONAL"
	WrongCode     = "WRONG CODE"
	Unclean       = "UNCLEAN"
	FailedByMe    = "FAILED BY CLIENT"
)

// closeExpect is Autobahn's expectedClose: who must start the closing
// handshake, the close codes allowed (an empty close is always allowed),
// and whether the TCP connection must end cleanly (close frames both
// ways, then the server drops TCP).
type closeExpect struct {
	closedByMe   bool
	codes        []int
	requireClean bool
}

var (
	// closeNormal: we close with 1000 once the expected events came.
	closeNormal = closeExpect{closedByMe: true, codes: []int{1000}, requireClean: true}
	// failWith: the server must fail the connection (close frame with
	// one of codes, or just drop TCP).
	failProtocol = closeExpect{closedByMe: false, codes: []int{1002}}
	failPayload  = closeExpect{closedByMe: false, codes: []int{1007}}
)

// outcome is what the client saw of one case run, and its verdict.
type outcome struct {
	err         string // the case could not run (no handshake)
	received    []event
	closedByMe  bool
	wasClean    bool
	droppedByMe bool
	gotClose    bool
	remoteCode  int // -1: no close frame or an empty one
}

// judge computes Autobahn's two behaviours and the harness's verdict.
//
// behavior: OK or NON-STRICT when the events match that expectation
// exactly, else FAILED. behaviorClose, in Autobahn's order: FAILED when
// the wrong endpoint started the close, UNCLEAN when a clean end was
// required and did not happen, WRONG CODE for a close code not allowed,
// FAILED BY CLIENT when the harness had to drop TCP itself, else OK.
//
// The verdict (what "pass" means here) is a strict reading of those:
//   - INFORMATIONAL cases always pass, with their outcome recorded.
//   - FAILED events, a close started by the wrong endpoint, or a wrong
//     close code: FAILED.
//   - The harness had to drop a connection that the server was expected
//     to fail and that got no close frame: FAILED (a peer that ignores a
//     violation does not pass, which Autobahn would only flag in its close
//     column).
//   - UNCLEAN, or the harness had to drop TCP after the close frames: NON-
//     STRICT (the events and codes were right, the TCP ending was late or
//     untidy).
//   - Otherwise the events' behaviour: OK, or NON-STRICT where Autobahn
//     allows a weaker outcome (no echo before a failure, failure only at
//     the end of a message instead of fail-fast on UTF-8).
//
// OK, NON-STRICT and INFORMATIONAL pass.
func judge(cs *caseDef, o outcome) (behavior, behaviorClose, verdict string) {
	if o.err != "" {
		return Failed, Failed, Failed
	}
	behavior = Failed
	for _, b := range []string{OK, NonStrict} {
		if exp, ok := cs.expected[b]; ok && equalEvents(o.received, exp) {
			behavior = b
			break
		}
	}
	switch {
	case o.closedByMe != cs.close.closedByMe:
		behaviorClose = Failed
	case cs.close.requireClean && !o.wasClean:
		behaviorClose = Unclean
	case o.remoteCode != -1 && !slices.Contains(cs.close.codes, o.remoteCode):
		behaviorClose = WrongCode
	case o.droppedByMe:
		behaviorClose = FailedByMe
	default:
		behaviorClose = OK
	}
	switch {
	case cs.informational:
		verdict = Informational
	case behavior == Failed, behaviorClose == Failed, behaviorClose == WrongCode:
		verdict = Failed
	case behaviorClose == FailedByMe && !cs.close.closedByMe && !o.gotClose:
		verdict = Failed
	case behaviorClose == Unclean, behaviorClose == FailedByMe:
		verdict = NonStrict
	default:
		verdict = behavior
	}
	return behavior, behaviorClose, verdict
}

func passes(verdict string) bool { return verdict != Failed }

// describe renders an outcome for the report, e.g.
// "OK [text(13B)] close 1000 clean".
func describe(cs *caseDef, o outcome) string {
	if o.err != "" {
		return "FAILED (" + o.err + ")"
	}
	_, bc, v := judge(cs, o)
	code := "none"
	if o.remoteCode != -1 {
		code = strconv.Itoa(o.remoteCode)
	}
	var end []string
	if o.wasClean {
		end = append(end, "clean")
	}
	if o.droppedByMe {
		end = append(end, "dropped by client")
	}
	if bc != OK && bc != FailedByMe {
		end = append(end, strings.ToLower(bc))
	}
	return fmt.Sprintf("%s %s close %s %s", v, summary(o.received), code, strings.Join(end, ","))
}
