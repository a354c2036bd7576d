package conformance

import (
	"fmt"
	"strings"
	"time"

	rt "github.com/websocket-relay/websocket_relay/integration/relaytest"
)

// caseDef is one case, modelled on an Autobahn|Testsuite case of the same
// id: what the client sends (run), the events it may see (expected, by
// behaviour), and how the connection must end.
type caseDef struct {
	id            string
	desc          string
	expected      map[string][]event
	close         closeExpect
	suppressClose bool
	informational bool
	run           func(p *peer)
}

func msg(s string) event         { return event{Kind: "message", Data: s} }
func binMsg(s string) event      { return event{Kind: "message", Data: s, Binary: true} }
func pongOf(s string) event      { return event{Kind: "pong", Data: s} }
func timeoutOf(tag string) event { return event{Kind: "timeout", Data: tag} }

// ok returns an expectation with only an OK outcome.
func ok(evs ...event) map[string][]event { return map[string][]event{OK: evs} }

// okOrNothing: the OK outcome is evs; receiving nothing is NON-STRICT.
func okOrNothing(evs ...event) map[string][]event {
	return map[string][]event{OK: evs, NonStrict: {}}
}

// Autobahn's killAfter and closeAfter delays, scaled by two for a
// race-instrumented shared machine (see the timings in peer_test.go).
func kill(p *peer, seconds float64)        { p.killAfter(scaled(seconds)) }
func closeIn(p *peer, seconds float64)     { p.closeAfter(scaled(seconds)) }
func scaled(seconds float64) time.Duration { return time.Duration(2 * seconds * float64(time.Second)) }

// allCases returns sections 1 to 7 in order.
func allCases() []*caseDef {
	var cs []*caseDef
	cs = append(cs, framingCases()...)
	cs = append(cs, pingCases()...)
	cs = append(cs, reservedBitCases()...)
	cs = append(cs, opcodeCases()...)
	cs = append(cs, fragmentationCases()...)
	cs = append(cs, utf8Cases()...)
	cs = append(cs, closeCases()...)
	return cs
}

// framingCases is section 1: text and binary messages around the length
// encodings (7-bit, 16-bit, 64-bit), whole and in 997-byte TCP chops.
func framingCases() []*caseDef {
	var cs []*caseDef
	lengths := []int{0, 125, 126, 127, 128, 65535, 65536, 65536}
	for sub, binary := range []bool{false, true} {
		op, fill, kind := rt.OpText, "*", "text"
		if binary {
			op, fill, kind = rt.OpBinary, "\xfe", "binary"
		}
		for i, n := range lengths {
			payload := strings.Repeat(fill, n)
			desc := fmt.Sprintf("Send %s message with payload of length %d", kind, n)
			var o []opt
			if i == 7 {
				desc += ", sent in chops of 997 octets"
				o = append(o, chop(997))
			}
			want := msg(payload)
			if binary {
				want = binMsg(payload)
			}
			cs = append(cs, &caseDef{id: fmt.Sprintf("1.%d.%d", sub+1, i+1), desc: desc, expected: ok(want), close: closeNormal,
				run: func(p *peer) { p.sendFrame(op, payload, o...); kill(p, 10) }})
		}
	}
	return cs
}

// pingCases is section 2: pings and pongs.
func pingCases() []*caseDef {
	bin := "\x00\xff\xfe\xfd\xfc\xfb\x00\xff"
	ping := func(payload string, o ...opt) func(p *peer) {
		return func(p *peer) { p.sendFrame(rt.OpPing, payload, o...); closeIn(p, 2) }
	}
	cs := []*caseDef{
		{id: "2.1", desc: "Send ping without payload", expected: ok(pongOf("")), close: closeNormal, run: ping("")},
		{id: "2.2", desc: "Send ping with small text payload", expected: ok(pongOf("Hello, world!")), close: closeNormal, run: ping("Hello, world!")},
		{id: "2.3", desc: "Send ping with small binary (non UTF-8) payload", expected: ok(pongOf(bin)), close: closeNormal, run: ping(bin)},
		{id: "2.4", desc: "Send ping with binary payload of 125 octets", expected: ok(pongOf(strings.Repeat("\xfe", 125))), close: closeNormal,
			run: ping(strings.Repeat("\xfe", 125))},
		{id: "2.5", desc: "Send ping with binary payload of 126 octets", expected: ok(), close: failProtocol,
			run: func(p *peer) { p.sendFrame(rt.OpPing, strings.Repeat("\xfe", 126)); kill(p, 1) }},
		{id: "2.6", desc: "Send ping with binary payload of 125 octets, sent in octet-wise chops", expected: ok(pongOf(strings.Repeat("\xfe", 125))),
			close: closeNormal, run: ping(strings.Repeat("\xfe", 125), chop(1))},
		{id: "2.7", desc: "Send unsolicited pong without payload", expected: ok(), close: closeNormal,
			run: func(p *peer) { p.sendFrame(rt.OpPong, ""); closeIn(p, 1) }},
		{id: "2.8", desc: "Send unsolicited pong with payload", expected: ok(), close: closeNormal,
			run: func(p *peer) { p.sendFrame(rt.OpPong, "unsolicited pong payload"); closeIn(p, 1) }},
		{id: "2.9", desc: "Send unsolicited pong with payload, then ping with payload", expected: ok(pongOf("ping payload")), close: closeNormal,
			run: func(p *peer) {
				p.sendFrame(rt.OpPong, "unsolicited pong payload")
				p.sendFrame(rt.OpPing, "ping payload")
				closeIn(p, 1)
			}},
	}
	for _, c := range []struct {
		id   string
		chop int
	}{{"2.10", 0}, {"2.11", 1}} {
		var want []event
		for i := 0; i < 10; i++ {
			want = append(want, pongOf(fmt.Sprintf("payload-%d", i)))
		}
		desc := "Send 10 pings with payload"
		if c.chop > 0 {
			desc += ", sent in octet-wise chops"
		}
		cs = append(cs, &caseDef{id: c.id, desc: desc, expected: ok(want...), close: closeNormal, run: func(p *peer) {
			for i := 0; i < 10; i++ {
				p.sendFrame(rt.OpPing, fmt.Sprintf("payload-%d", i), chop(c.chop))
			}
			closeIn(p, 3)
		}})
	}
	return cs
}

// reservedBitCases is section 3: RSV bits with no extension negotiated
// (Autobahn's rsv value: 4 is RSV1, 2 is RSV2, 1 is RSV3).
func reservedBitCases() []*caseDef {
	hello := "Hello, world!"
	then := func(r byte, o ...opt) func(p *peer) {
		return func(p *peer) {
			p.sendFrame(rt.OpText, hello, o...)
			p.sendFrame(rt.OpText, hello, append(o, rsv(r))...)
			p.sendFrame(rt.OpPing, "", o...)
			kill(p, 1)
		}
	}
	return []*caseDef{
		{id: "3.1", desc: "Send small text message with RSV = 1", expected: ok(), close: failProtocol,
			run: func(p *peer) { p.sendFrame(rt.OpText, hello, rsv(1)); kill(p, 1) }},
		{id: "3.2", desc: "Send small text message, then again with RSV = 2, then ping", expected: okOrNothing(msg(hello)), close: failProtocol, run: then(2)},
		{id: "3.3", desc: "Send small text message, then again with RSV = 3, then ping; frame-wise chops", expected: okOrNothing(msg(hello)),
			close: failProtocol, run: then(3, synced())},
		{id: "3.4", desc: "Send small text message, then again with RSV = 4, then ping; octet-wise chops", expected: okOrNothing(msg(hello)),
			close: failProtocol, run: then(4, chop(1))},
		{id: "3.5", desc: "Send small binary message with RSV = 5", expected: ok(), close: failProtocol,
			run: func(p *peer) { p.sendFrame(rt.OpBinary, "\x00\xff\xfe\xfd\xfc\xfb\x00\xff", rsv(5)); kill(p, 1) }},
		{id: "3.6", desc: "Send ping with RSV = 6", expected: ok(), close: failProtocol,
			run: func(p *peer) { p.sendFrame(rt.OpPing, hello, rsv(6)); kill(p, 1) }},
		{id: "3.7", desc: "Send close with RSV = 7", expected: ok(), close: failProtocol,
			run: func(p *peer) { p.sendFrame(rt.OpClose, "", rsv(7)); kill(p, 1) }},
	}
}

// opcodeCases is section 4: reserved opcodes 3-7 and 11-15.
func opcodeCases() []*caseDef {
	hello := "Hello, world!"
	var cs []*caseDef
	for i, base := range []byte{3, 11} {
		kind := map[int]string{0: "non-control", 1: "control"}[i]
		for j := 0; j < 5; j++ {
			op := base + byte(j)
			id := fmt.Sprintf("4.%d.%d", i+1, j+1)
			switch j {
			case 0:
				cs = append(cs, &caseDef{id: id, desc: fmt.Sprintf("Send frame with reserved %s opcode %d", kind, op), expected: ok(), close: failProtocol,
					run: func(p *peer) { p.sendFrame(op, ""); kill(p, 1) }})
			case 1:
				cs = append(cs, &caseDef{id: id, desc: fmt.Sprintf("Send frame with reserved %s opcode %d and non-empty payload", kind, op), expected: ok(),
					close: failProtocol, run: func(p *peer) { p.sendFrame(op, "reserved opcode payload"); kill(p, 1) }})
			default:
				payload := ""
				if j > 2 {
					payload = hello
				}
				cs = append(cs, &caseDef{id: id, desc: fmt.Sprintf("Send small text message, then frame with reserved %s opcode %d, then ping", kind, op),
					expected: okOrNothing(msg(hello)), close: failProtocol, run: func(p *peer) {
						p.sendFrame(rt.OpText, hello)
						p.sendFrame(op, payload)
						p.sendFrame(rt.OpPing, "")
						kill(p, 1)
					}})
			}
		}
	}
	return cs
}
