package conformance

import (
	"fmt"
	"strings"

	rt "github.com/websocket-relay/websocket_relay/integration/relaytest"
)

// closeCases is section 7: the closing handshake, close payloads and
// close codes.
func closeCases() []*caseDef {
	hello := "Hello World!"
	invalid := "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64"
	closeThen := func(then func(p *peer)) func(p *peer) {
		return func(p *peer) { p.sendClose(1000, ""); then(p); kill(p, 1) }
	}
	cs := []*caseDef{
		{id: "7.1.1", desc: "Send a message followed by a close frame", expected: ok(msg(hello)), close: closeNormal, run: func(p *peer) {
			p.sendFrame(rt.OpText, hello)
			p.sendClose(1000, "")
			kill(p, 1)
		}},
		{id: "7.1.2", desc: "Send two close frames", expected: ok(), close: closeNormal, suppressClose: true,
			run: closeThen(func(p *peer) { p.sendFrame(rt.OpClose, "") })},
		{id: "7.1.3", desc: "Send a ping after the close frame", expected: ok(), close: closeNormal, suppressClose: true,
			run: closeThen(func(p *peer) { p.sendFrame(rt.OpPing, "") })},
		{id: "7.1.4", desc: "Send a text message after the close frame", expected: ok(), close: closeNormal, suppressClose: true,
			run: closeThen(func(p *peer) { p.sendFrame(rt.OpText, hello) })},
		{id: "7.1.5", desc: "Send message fragment 1, then the close frame, then fragment 2", expected: ok(), close: closeNormal, suppressClose: true,
			run: func(p *peer) {
				p.sendFrame(rt.OpText, "fragment1", notFin())
				p.sendClose(1000, "")
				p.sendFrame(rt.OpContinuation, "fragment2")
				kill(p, 1)
			}},
		{id: "7.1.6", desc: "Send a 256K message, then a small one, then close, then a ping", informational: true, suppressClose: true,
			expected: okOrNothing(msg(hello)), close: closeNormal, run: func(p *peer) {
				p.sendFrame(rt.OpText, "BAsd7&jh23", repeatTo(256<<10))
				p.sendFrame(rt.OpText, hello)
				p.sendClose(1000, "")
				p.sendFrame(rt.OpPing, "")
				kill(p, 1)
			}},
		closeCase("7.3.1", "Send a close frame with payload length 0 (no code, no reason)", -1, "", closeNormal),
		closeCase("7.3.2", "Send a close frame with payload length 1", -1, "a", closeFail(1002)),
		closeCase("7.3.3", "Send a close frame with close code and no reason", 1000, "", closeNormal),
		closeCase("7.3.4", "Send a close frame with close code and a short reason", 1000, hello, closeNormal),
		closeCase("7.3.5", "Send a close frame with close code and a reason of the longest length (123)", 1000, strings.Repeat("*", 123), closeNormal),
		closeCase("7.3.6", "Send a close frame with close code and a reason that is too long (124): payload of 126 octets", 1000,
			strings.Repeat("*", 124), closeFail(1002)),
		closeCase("7.5.1", "Send a close frame with a reason that is not UTF-8", 1000, invalid, closeFail(1002, 1007)),
	}
	for i, code := range []int{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999} {
		cs = append(cs, closeCase(fmt.Sprintf("7.7.%d", i+1), fmt.Sprintf("Send close with valid close code %d", code), code, "",
			closeExpect{closedByMe: true, codes: []int{1000, code}, requireClean: true}))
	}
	for i, code := range []int{0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999} {
		cs = append(cs, closeCase(fmt.Sprintf("7.9.%d", i+1), fmt.Sprintf("Send close with invalid close code %d", code), code, "", closeFail(1002)))
	}
	for i, code := range []int{5000, 65535} {
		c := closeCase(fmt.Sprintf("7.13.%d", i+1), fmt.Sprintf("Send close with close code %d", code), code, "",
			closeExpect{closedByMe: true, codes: []int{1000, code, 1002}})
		c.informational = true
		cs = append(cs, c)
	}
	return cs
}

// closeFail: we close with a bad close frame; the server must answer with
// one of codes or drop TCP.
func closeFail(codes ...int) closeExpect { return closeExpect{closedByMe: true, codes: codes} }

// closeCase sends one close frame with code (-1: none) and reason.
func closeCase(id, desc string, code int, reason string, ce closeExpect) *caseDef {
	return &caseDef{id: id, desc: desc, expected: ok(), close: ce, suppressClose: true,
		run: func(p *peer) { p.sendClose(code, reason); kill(p, 1) }}
}
