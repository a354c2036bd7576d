package integration

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

// TestREADMECaddyfiles: every Caddyfile example in the README (each
// ```caddyfile block but the syntax summary, whose <placeholders> are
// not values) adapts without an error or a warning, and each has a
// websocket_relay handler.
func TestREADMECaddyfiles(t *testing.T) {
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```caddyfile\n(.*?)```").FindAllStringSubmatch(string(data), -1)
	adapter := caddyconfig.GetAdapter("caddyfile")
	t.Setenv("LB_SECRET", "readme-secret")
	n := 0
	for _, b := range blocks {
		body := b[1]
		if strings.Contains(body, "<") {
			continue // the syntax summary
		}
		n++
		cfg, warnings, err := adapter.Adapt([]byte(body), nil)
		if err != nil {
			t.Errorf("README example does not adapt: %v\n%s", err, body)
			continue
		}
		for _, w := range warnings {
			t.Errorf("README example: warning %s\n%s", w.Message, body)
		}
		var v any
		if json.Unmarshal(cfg, &v) != nil || !strings.Contains(string(cfg), `"handler":"websocket_relay"`) {
			t.Errorf("README example adapts to no websocket_relay handler:\n%s\n%s", body, cfg)
		}
	}
	if n < 3 {
		t.Fatalf("%d Caddyfile examples found in the README, want at least 3", n)
	}
}
