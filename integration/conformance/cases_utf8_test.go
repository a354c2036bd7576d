package conformance

import (
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	rt "github.com/websocket-relay/websocket_relay/integration/relaytest"
)

// utf8Cases is section 6: UTF-8 in text messages. The relay passes text
// payloads through untouched; the backends check them and fail the
// connection with 1007.
func utf8Cases() []*caseDef {
	hello1, hello2 := "Hello-\u00b5@\u00df\u00f6\u00e4", "\u00fc\u00e0\u00e1-UTF-8!!"
	kosme := "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"
	bad := kosme + "\xed\xa0\x80" + "\x65\x64\x69\x74\x65\x64"
	echo := func(payload string, frag int) func(p *peer) {
		return func(p *peer) { p.sendMessage(payload, false, frag); closeIn(p, 1) }
	}
	cs := []*caseDef{
		{id: "6.1.1", desc: "Send text message of length 0", expected: ok(msg("")), close: closeNormal, run: echo("", 0)},
		{id: "6.1.2", desc: "Send fragmented text message, 3 fragments each of length 0", expected: ok(msg("")), close: closeNormal, run: func(p *peer) {
			p.sendFrame(rt.OpText, "", notFin())
			p.sendFrame(rt.OpContinuation, "", notFin())
			p.sendFrame(rt.OpContinuation, "")
			closeIn(p, 1)
		}},
		{id: "6.1.3", desc: "Send fragmented text message, 3 fragments, first and last of length 0", expected: ok(msg("middle frame payload")),
			close: closeNormal, run: func(p *peer) {
				p.sendFrame(rt.OpText, "", notFin())
				p.sendFrame(rt.OpContinuation, "middle frame payload", notFin())
				p.sendFrame(rt.OpContinuation, "")
				closeIn(p, 1)
			}},
		{id: "6.2.1", desc: "Send valid UTF-8 text message in one fragment", expected: ok(msg(hello1 + hello2)), close: closeNormal, run: echo(hello1+hello2, 0)},
		{id: "6.2.2", desc: "Send valid UTF-8 text message in two fragments, split on a code point boundary", expected: ok(msg(hello1 + hello2)),
			close: closeNormal, run: func(p *peer) {
				p.sendFrame(rt.OpText, hello1, notFin())
				p.sendFrame(rt.OpContinuation, hello2)
				closeIn(p, 1)
			}},
		{id: "6.2.3", desc: "Send valid UTF-8 text message in fragments of 1 octet", expected: ok(msg(hello1 + hello2)), close: closeNormal, run: echo(hello1+hello2, 1)},
		{id: "6.2.4", desc: "Send valid UTF-8 text message (kosme) in fragments of 1 octet", expected: ok(msg(kosme)), close: closeNormal, run: echo(kosme, 1)},
		{id: "6.3.1", desc: "Send invalid UTF-8 text message unfragmented", expected: ok(), close: failPayload,
			run: func(p *peer) { p.sendMessage(bad, false, 0); kill(p, 1) }},
		{id: "6.3.2", desc: "Send invalid UTF-8 text message in fragments of 1 octet", expected: ok(), close: failPayload,
			run: func(p *peer) { p.sendMessage(bad, false, 1); kill(p, 1) }},
	}
	// 6.4.x: fail fast. The second part makes the message invalid; a peer
	// that fails the connection before the third part is OK, one that
	// fails only at the end of the message is NON-STRICT.
	part1, part2, part3 := kosme, "\xf4\x90\x80\x80", "\x65\x64\x69\x74\x65\x64"
	whole := part1 + part2 + part3
	failFast := map[string][]event{OK: {timeoutOf("A")}, NonStrict: {timeoutOf("A"), timeoutOf("B")}}
	for i, split := range [][3]string{{part1, part2, part3}, {whole[:12], whole[12:13], whole[13:]}} {
		parts := split
		cs = append(cs, &caseDef{id: fmt.Sprintf("6.4.%d", i+1), expected: failFast, close: failPayload,
			desc: fmt.Sprintf("Invalid UTF-8 text message in 3 frames with 1 s between them; frame 2 (%x) makes it invalid", parts[1]),
			run: func(p *peer) {
				p.sendFrame(rt.OpText, parts[0], notFin())
				if p.wait(time.Second, "A") {
					p.sendFrame(rt.OpContinuation, parts[1], notFin())
					if p.wait(time.Second, "B") {
						p.sendFrame(rt.OpContinuation, parts[2])
						kill(p, 1)
					}
				}
			}})
	}
	for i, split := range [][3]string{{part1, part2, part3}, {whole[:12], whole[12:13], whole[13:]}} {
		parts := split
		cs = append(cs, &caseDef{id: fmt.Sprintf("6.4.%d", i+3), expected: failFast, close: failPayload,
			desc: fmt.Sprintf("Invalid UTF-8 text message in 3 chops of one frame with 1 s between them; chop 2 (%x) makes it invalid", parts[1]),
			run: func(p *peer) {
				send := p.frameParts(rt.OpText, len(whole))
				send(parts[0])
				if p.wait(time.Second, "A") {
					send(parts[1])
					if p.wait(time.Second, "B") {
						send(parts[2])
						kill(p, 1)
					}
				}
			}})
	}
	return append(cs, utf8SequenceCases()...)
}

// utf8SequenceCases are 6.5.x to 6.23.x: Markus Kuhn's UTF-8 decoder test
// sequences, each sent as one text message; valid ones are echoed, invalid
// ones fail the connection with 1007.
func utf8SequenceCases() []*caseDef {
	var cs []*caseDef
	for i, group := range utf8Sequences() {
		for j, seq := range group.seqs {
			payload, valid := seq.s, seq.valid
			c := &caseDef{id: fmt.Sprintf("6.%d.%d", i+5, j+1), expected: ok(), close: failPayload}
			if valid {
				c.desc = fmt.Sprintf("%s: valid UTF-8 in one frame: %s", group.name, hex.EncodeToString([]byte(payload)))
				c.expected, c.close = ok(msg(payload)), closeNormal
			} else {
				c.desc = fmt.Sprintf("%s: invalid UTF-8 in one frame: %s", group.name, hex.EncodeToString([]byte(payload)))
			}
			c.run = func(p *peer) { p.sendMessage(payload, false, 0); kill(p, 0.5) }
			cs = append(cs, c)
		}
	}
	return cs
}

type utf8Seq struct {
	valid bool
	s     string
}

type utf8Group struct {
	name string
	seqs []utf8Seq
}

// utf8Sequences builds Autobahn's createUtf8TestSequences, from
// http://www.cl.cam.ac.uk/~mgk25/ucs/examples/UTF-8-test.txt.
func utf8Sequences() []utf8Group {
	v := func(ss ...string) []utf8Seq { return seqs(true, ss...) }
	x := func(ss ...string) []utf8Seq { return seqs(false, ss...) }
	kosme := "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"
	var prefixes []utf8Seq
	for i := 1; i <= len(kosme); i++ {
		prefixes = append(prefixes, utf8Seq{utf8.ValidString(kosme[:i]), kosme[:i]})
	}
	var unexpected strings.Builder
	for b := 0x80; b < 0xbf; b++ {
		unexpected.WriteByte(byte(b))
	}
	var lonely []utf8Seq
	for _, r := range [][2]int{{0xc0, 0xdf}, {0xe0, 0xef}, {0xf0, 0xf7}, {0xf8, 0xfb}, {0xfc, 0xfd}} {
		var s strings.Builder
		for b := r[0]; b < r[1]; b++ {
			s.WriteByte(byte(b))
			s.WriteByte(0x20)
		}
		lonely = append(lonely, utf8Seq{false, s.String()})
	}
	missing := []string{"\xc0", "\xe0\x80", "\xf0\x80\x80", "\xf8\x80\x80\x80", "\xfc\x80\x80\x80\x80",
		"\xdf", "\xef\xbf", "\xf7\xbf\xbf", "\xfb\xbf\xbf\xbf", "\xfd\xbf\xbf\xbf\xbf"}
	nonchars := v("\xef\xbf\xbe", "\xef\xbf\xbf")
	for _, z1 := range []string{"\xf0", "\xf1", "\xf2", "\xf3", "\xf4"} {
		for _, z2 := range []string{"\x8f", "\x9f", "\xaf", "\xbf"} {
			if z1 == "\xf4" && z2 != "\x8f" {
				continue // over U+10FFFF
			}
			for _, z3 := range []string{"\xbe", "\xbf"} {
				if zz := z1 + z2 + "\xbf" + z3; zz != "\xf0\x8f\xbf\xbe" && zz != "\xf0\x8f\xbf\xbf" {
					nonchars = append(nonchars, utf8Seq{true, zz})
				}
			}
		}
	}
	return []utf8Group{
		{"Some valid UTF-8 sequences", v("hello\x24world", "hello\xc2\xa2world", "hello\xe2\x82\xacworld", "hello\xf0\xa4\xad\xa2world", kosme)},
		{"All prefixes of a valid UTF-8 string that contains multi-byte code points", prefixes},
		{"First possible sequence of a certain length", v("\x00", "\xc2\x80", "\xe0\xa0\x80", "\xf0\x90\x80\x80")},
		{"First possible sequence length 5/6 (invalid codepoints)", x("\xf8\x88\x80\x80\x80", "\xfc\x84\x80\x80\x80\x80")},
		{"Last possible sequence of a certain length", v("\x7f", "\xdf\xbf", "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf")},
		{"Last possible sequence length 4/5/6 (invalid codepoints)", x("\xf7\xbf\xbf\xbf", "\xfb\xbf\xbf\xbf\xbf", "\xfd\xbf\xbf\xbf\xbf\xbf")},
		{"Other boundary conditions", append(v("\xed\x9f\xbf", "\xee\x80\x80", "\xef\xbf\xbd", "\xf4\x8f\xbf\xbf"), x("\xf4\x90\x80\x80")...)},
		{"Unexpected continuation bytes", x("\x80", "\xbf", "\x80\xbf", "\x80\xbf\x80", "\x80\xbf\x80\xbf", "\x80\xbf\x80\xbf\x80",
			"\x80\xbf\x80\xbf\x80\xbf", unexpected.String())},
		{"Lonely start characters", lonely},
		{"Sequences with last continuation byte missing", x(missing...)},
		{"Concatenation of incomplete sequences", x(strings.Join(missing, ""))},
		{"Impossible bytes", x("\xfe", "\xff", "\xfe\xfe\xff\xff")},
		{"Examples of an overlong ASCII character", x("\xc0\xaf", "\xe0\x80\xaf", "\xf0\x80\x80\xaf", "\xf8\x80\x80\x80\xaf", "\xfc\x80\x80\x80\x80\xaf")},
		{"Maximum overlong sequences", x("\xc1\xbf", "\xe0\x9f\xbf", "\xf0\x8f\xbf\xbf", "\xf8\x87\xbf\xbf\xbf", "\xfc\x83\xbf\xbf\xbf\xbf")},
		{"Overlong representation of the NUL character", x("\xc0\x80", "\xe0\x80\x80", "\xf0\x80\x80\x80", "\xf8\x80\x80\x80\x80", "\xfc\x80\x80\x80\x80\x80")},
		{"Single UTF-16 surrogates", x("\xed\xa0\x80", "\xed\xad\xbf", "\xed\xae\x80", "\xed\xaf\xbf", "\xed\xb0\x80", "\xed\xbe\x80", "\xed\xbf\xbf")},
		{"Paired UTF-16 surrogates", x("\xed\xa0\x80\xed\xb0\x80", "\xed\xa0\x80\xed\xbf\xbf", "\xed\xad\xbf\xed\xb0\x80", "\xed\xad\xbf\xed\xbf\xbf",
			"\xed\xae\x80\xed\xb0\x80", "\xed\xae\x80\xed\xbf\xbf", "\xed\xaf\xbf\xed\xb0\x80", "\xed\xaf\xbf\xed\xbf\xbf")},
		{"Non-character code points (valid UTF-8)", nonchars},
		{"Unicode specials (i.e. replacement char)", v("\xef\xbf\xb9", "\xef\xbf\xba", "\xef\xbf\xbb", "\xef\xbf\xbc", "\xef\xbf\xbd", "\xef\xbf\xbe", "\xef\xbf\xbf")},
	}
}

func seqs(valid bool, ss ...string) []utf8Seq {
	out := make([]utf8Seq, len(ss))
	for i, s := range ss {
		out[i] = utf8Seq{valid, s}
	}
	return out
}
