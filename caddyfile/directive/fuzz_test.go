package directive

import (
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
)

// FuzzParse feeds arbitrary text to the directive's parser. It must
// never panic, and whatever it accepts must be a config the module can
// use: at least one valid upstream, and durations that are unset (zero),
// positive, or -1 for `ping_interval off` and `drain_period off`; with
// the module's defaults filled in, it passes the module's Validate.
func FuzzParse(f *testing.F) {
	for _, tc := range goodCases {
		f.Add(tc.input)
	}
	for _, tc := range badCases {
		f.Add(tc.input)
	}
	for _, s := range []string{
		"websocket_relay a:1 {\n\tto \"b:2\" `c:3`\n}",
		"websocket_relay a:1 {\n\tping_interval 1.5h30m\n\tclose_timeout 0.5d\n}",
		"websocket_relay a:1 {\n\t{\n\t}\n}",
		"websocket_relay a:1 {\n}\n}\n{",
		"websocket_relay {env.HOST}:1",
		"websocket_relay a:1 <<EOF\nx\nEOF",
		"websocket_relay \"a:1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		tokens, err := caddyfile.Tokenize([]byte(input), "Fuzzfile")
		if err != nil {
			return // the lexer's errors are not the directive's concern
		}
		var o relayconfig.Options
		if err := Unmarshal(caddyfile.NewDispenser(tokens), &o); err != nil {
			return
		}
		// Off is -1 and nothing else; every other check is the module's
		// own Validate, run as Caddy runs it, after the defaults.
		if o.PingInterval < 0 && o.PingInterval != -1 || o.DrainPeriod < 0 && o.DrainPeriod != -1 {
			t.Fatalf("a negative ping_interval or drain_period that is not off: %+v", o)
		}
		o.SetDefaults()
		if err := o.Validate(); err != nil {
			t.Fatalf("accepted a config that fails Validate with its defaults: %v", err)
		}
	})
}
