package conformance

import (
	"time"

	rt "github.com/websocket-relay/websocket_relay/integration/relaytest"
)

// chopping is how a case puts its frames on the wire: all at once,
// frame-wise (one write per frame) or octet-wise (one write per byte).
type chopping struct {
	suffix string
	opts   []opt
}

var choppings = []chopping{
	{"", nil},
	{", frame-wise chops", []opt{synced()}},
	{", octet-wise chops", []opt{chop(1)}},
}

func with(base []opt, more ...opt) []opt { return append(append([]opt(nil), base...), more...) }

// fragmentationCases is section 5: fragmented messages, control frames
// between fragments, and continuations that continue nothing.
func fragmentationCases() []*caseDef {
	frag1, frag2 := "fragment1", "fragment2"
	cs := []*caseDef{
		{id: "5.1", desc: "Send ping fragmented into 2 fragments", expected: ok(), close: failProtocol, run: func(p *peer) {
			p.sendFrame(rt.OpPing, frag1, notFin())
			p.sendFrame(rt.OpContinuation, frag2)
			kill(p, 1)
		}},
		{id: "5.2", desc: "Send pong fragmented into 2 fragments", expected: ok(), close: failProtocol, run: func(p *peer) {
			p.sendFrame(rt.OpPong, frag1, notFin())
			p.sendFrame(rt.OpContinuation, frag2)
			kill(p, 1)
		}},
	}
	id := 3
	for _, ch := range choppings { // 5.3-5.5
		o := ch.opts
		cs = append(cs, &caseDef{id: "5." + itoa(id), desc: "Send text message fragmented into 2 fragments" + ch.suffix,
			expected: ok(msg(frag1 + frag2)), close: closeNormal, run: func(p *peer) {
				p.sendFrame(rt.OpText, frag1, with(o, notFin())...)
				p.sendFrame(rt.OpContinuation, frag2, o...)
				closeIn(p, 1)
			}})
		id++
	}
	for _, ch := range choppings { // 5.6-5.8
		o := ch.opts
		cs = append(cs, &caseDef{id: "5." + itoa(id), desc: "Send text message fragmented into 2 fragments, one ping with payload in-between" + ch.suffix,
			expected: ok(pongOf("ping payload"), msg(frag1+frag2)), close: closeNormal, run: func(p *peer) {
				p.sendFrame(rt.OpText, frag1, with(o, notFin())...)
				p.sendFrame(rt.OpPing, "ping payload", o...)
				p.sendFrame(rt.OpContinuation, frag2, o...)
				closeIn(p, 1)
			}})
		id++
	}
	for _, fin := range []bool{true, false} { // 5.9-5.14
		for _, ch := range choppings {
			o := ch.opts
			first := o
			desc := "Send unfragmented text message after continuation frame with FIN = true, where there is nothing to continue"
			if !fin {
				first = with(o, notFin())
				desc = "Send unfragmented text message after continuation frame with FIN = false, where there is nothing to continue"
			}
			cs = append(cs, &caseDef{id: "5." + itoa(id), desc: desc + ch.suffix, expected: ok(), close: failProtocol, run: func(p *peer) {
				p.sendFrame(rt.OpContinuation, "non-continuation payload", first...)
				p.sendFrame(rt.OpText, "Hello, world!", o...)
				kill(p, 1)
			}})
			id++
		}
	}
	cs = append(cs,
		&caseDef{id: "5.15", desc: "Send text message in 2 fragments, then continuation with FIN = false with nothing to continue, then text message",
			expected: okOrNothing(msg(frag1 + frag2)), close: failProtocol, run: func(p *peer) {
				p.sendFrame(rt.OpText, frag1, notFin())
				p.sendFrame(rt.OpContinuation, frag2)
				p.sendFrame(rt.OpContinuation, "fragment3", notFin())
				p.sendFrame(rt.OpText, "fragment4")
				kill(p, 1)
			}},
		repeatedNothingToContinue("5.16", false),
		repeatedNothingToContinue("5.17", true),
		&caseDef{id: "5.18", desc: "Send text message in 2 fragments, both with the text opcode", expected: ok(), close: failProtocol, run: func(p *peer) {
			p.sendFrame(rt.OpText, frag1, notFin())
			p.sendFrame(rt.OpText, frag2)
			kill(p, 1)
		}},
		pingsBetweenFragments("5.19", nil),
		pingsBetweenFragments("5.20", []opt{synced()}),
	)
	return cs
}

// repeatedNothingToContinue is 5.16 and 5.17: twice, a continuation with
// nothing to continue, then a text message in 2 fragments.
func repeatedNothingToContinue(id string, fin bool) *caseDef {
	var first []opt
	desc := "Repeated 2x: continuation frame with FIN = true (nothing to continue), then text message in 2 fragments"
	if !fin {
		first = []opt{notFin()}
		desc = "Repeated 2x: continuation frame with FIN = false (nothing to continue), then text message in 2 fragments"
	}
	return &caseDef{id: id, desc: desc, expected: ok(), close: failProtocol, run: func(p *peer) {
		for i := 0; i < 2; i++ {
			p.sendFrame(rt.OpContinuation, "fragment1", first...)
			p.sendFrame(rt.OpText, "fragment2", notFin())
			p.sendFrame(rt.OpContinuation, "fragment3")
		}
		kill(p, 1)
	}}
}

// pingsBetweenFragments is 5.19 and 5.20: a text message in 5 fragments,
// with a ping after the second and the fourth and a 1 s pause after the
// first ping; the peer must answer the first ping before the message ends.
func pingsBetweenFragments(id string, o []opt) *caseDef {
	desc := "Text message in 5 fragments, pings after the 2nd and the 4th, 1 s pause after the first ping"
	if o != nil {
		desc += ", frame-wise chops"
	}
	return &caseDef{id: id, desc: desc, close: closeNormal,
		expected: ok(pongOf("pongme 1!"), pongOf("pongme 2!"), msg("fragment1fragment2fragment3fragment4fragment5")),
		run: func(p *peer) {
			p.sendFrame(rt.OpText, "fragment1", with(o, notFin())...)
			p.sendFrame(rt.OpContinuation, "fragment2", with(o, notFin())...)
			p.sendFrame(rt.OpPing, "pongme 1!", o...)
			time.Sleep(time.Second)
			p.sendFrame(rt.OpContinuation, "fragment3", with(o, notFin())...)
			p.sendFrame(rt.OpContinuation, "fragment4", with(o, notFin())...)
			p.sendFrame(rt.OpPing, "pongme 2!", o...)
			p.sendFrame(rt.OpContinuation, "fragment5", o...)
			closeIn(p, 1)
		}}
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}
