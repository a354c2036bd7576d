package relaycaddyfile

import (
	"encoding/json"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/websocket-relay/websocket_relay/caddyfile/directive"
	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
)

// TestHeaderUpAsReverseProxy: a header_up line means for the relay what
// it means for reverse_proxy (the same JSON, from Caddy's own parser on
// one side), and one that reverse_proxy refuses is refused. The relay
// refuses on purpose lines that name the upgrade's own fields, and
// placeholders in field names (a placeholder-built name could carry a
// line break into the request).
func TestHeaderUpAsReverseProxy(t *testing.T) {
	t.Parallel()
	same := []string{
		`X-A v`, `x-a v`, `X-A`, `>X-A v`, `X-A "a b"`,
		`+X-A v`, `+x-a v`, `+X-A a b`,
		`-X-A`, `-X-A v`, `-X-A a b`, `-X-Forwarded-*`, `-*-Id`, `-*Token*`, `-*`,
		`X-A ^a b`, `>X-A ^a b`, `>-X-A ^a b`, `>+X-A ^a b`, `>?X-A ^a b`, `>>X-A ^a b`, `* a b`,
		`Referer ^http:// https://`, `+X-A`, `>X-A`, `+-X v`, `-x-a`, `x-a ^a b`,
		`Host {upstream_hostport}`, `X-Real-IP {remote_host}`,
	}
	for _, line := range same {
		var rp reverseproxy.Handler
		if err := rp.UnmarshalCaddyfile(caddyfile.NewTestDispenser("reverse_proxy a:1 {\n\theader_up " + line + "\n}")); err != nil {
			t.Errorf("%s: reverse_proxy refuses it: %v", line, err)
			continue
		}
		want, _ := json.Marshal(rp.Headers.Request)
		var o relayconfig.Options
		if err := directive.Unmarshal(caddyfile.NewTestDispenser("websocket_relay a:1 {\n\theader_up "+line+"\n}"), &o); err != nil {
			t.Errorf("%s: reverse_proxy takes it as %s, the relay refuses it: %v", line, want, err)
			continue
		}
		if got, _ := json.Marshal(o.HeaderUp); string(got) != string(want) {
			t.Errorf("%s: the relay reads %s, reverse_proxy %s", line, got, want)
		}
	}
	for _, line := range []string{`?X-A v`, `?X-A a b`, `X-A a b c`, `X-A ( b`} {
		var rp reverseproxy.Handler
		rpErr := rp.UnmarshalCaddyfile(caddyfile.NewTestDispenser("reverse_proxy a:1 {\n\theader_up " + line + "\n}"))
		var o relayconfig.Options
		err := directive.Unmarshal(caddyfile.NewTestDispenser("websocket_relay a:1 {\n\theader_up "+line+"\n}"), &o)
		if err == nil {
			t.Errorf("%s: the relay takes it (reverse_proxy: %v)", line, rpErr)
		}
	}
}
