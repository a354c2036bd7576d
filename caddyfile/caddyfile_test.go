package relaycaddyfile

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	wsrelay "github.com/websocket-relay/websocket_relay/module"
)

// TestParse: the directive's setup func gives the module's handler, with
// the options of the directive's tokens (the parser's own cases are in
// package directive), and the handler's JSON is the options' JSON.
func TestParse(t *testing.T) {
	t.Parallel()
	input := "websocket_relay a:1 {\n\tto wss://b\n\tping_interval off\n\tclose_timeout 1m\n}"
	got, err := parse(httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser(input)})
	if err != nil {
		t.Fatal(err)
	}
	h, ok := got.(*wsrelay.Handler)
	if !ok {
		t.Fatalf("parse gave a %T, want a *wsrelay.Handler", got)
	}
	if strings.Join(h.Upstreams, " ") != "a:1 wss://b" || h.PingInterval != -1 ||
		h.CloseTimeout != caddy.Duration(time.Minute) {
		t.Fatalf("got %+v", h.Options)
	}
	js, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"upstreams":["a:1","wss://b"],"ping_interval":-1,"close_timeout":60000000000}`; string(js) != want {
		t.Fatalf("JSON %s, want %s", js, want)
	}
	if _, err := parse(httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser("websocket_relay")}); err == nil {
		t.Fatal("a directive without upstreams parsed")
	}
}

// TestAdaptErrorNamesFileAndLine runs bad directives through the whole
// Caddyfile adapter, as `caddy adapt` and `caddy run` do, to show that the
// error a user sees names the file and line of the mistake.
func TestAdaptErrorNamesFileAndLine(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		input string
		want  []string
	}{
		{"zero ping_interval", ":8080 {\n\twebsocket_relay a:1 {\n\t\tping_interval 0\n\t}\n}\n",
			[]string{"parsing caddyfile tokens for 'websocket_relay'", "use 'ping_interval off'", "Caddyfile:3"}},
		{"unknown subdirective", ":8080 {\n\twebsocket_relay a:1 {\n\t\tto b:2\n\t\tpong 5s\n\t}\n}\n",
			[]string{"unrecognized subdirective 'pong'", "Caddyfile:4"}},
		{"no upstream after a matcher", ":8080 {\n\n\twebsocket_relay /ws/*\n}\n",
			[]string{"no upstream", "Caddyfile:3"}},
		{"bad upstream", ":8080 {\n\twebsocket_relay {\n\t\tto https://a:1\n\t}\n}\n",
			[]string{`scheme must be ws or wss, not "https"`, "Caddyfile:3"}},
		{"error inside an imported snippet", "(relay) {\n\twebsocket_relay a:1 {\n\t\tdial_timeout -1s\n\t}\n}\n" +
			":8080 {\n\timport relay\n}\n",
			[]string{"dial_timeout: duration must be positive", "Caddyfile:3", "import chain"}},
	}
	adapter := caddyconfig.GetAdapter("caddyfile")
	if adapter == nil {
		t.Fatal("caddyfile adapter not registered")
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := adapter.Adapt([]byte(tc.input), nil)
			if err == nil || slices.ContainsFunc(tc.want, func(w string) bool { return !strings.Contains(err.Error(), w) }) {
				t.Fatalf("adapt error %v, want one containing each of %q", err, tc.want)
			}
		})
	}
}
