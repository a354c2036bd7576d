package integration

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportLayers holds the layering of ../shared/DESIGN.md and the
// README (imports go one way: cmd -> caddyfile -> module -> engine
// packages), and keeps the packages with fuzz targets for parsers off
// Caddy's HTTP app: `go test -fuzz` instruments every package a target
// imports, and Caddy's ~960 took most of `make fuzz`'s time on a cold
// build cache.
func TestImportLayers(t *testing.T) {
	t.Parallel()
	const self = "github.com/websocket-relay/websocket_relay/"
	rules := []struct {
		pkg    string
		banned []string // import path prefixes it must not depend on
		why    string
	}{
		{"module/engine", []string{"github.com/caddyserver/"}, "the engine knows nothing of Caddy"},
		{"module/keepalive", []string{"github.com/caddyserver/"}, "keepalive knows nothing of Caddy"},
		{"module/upgrade", []string{"github.com/caddyserver/"}, "the upgrade's HTTP checks know nothing of Caddy"},
		{"module/config", []string{"github.com/caddyserver/caddy/v2/modules/", self + "module/engine"},
			"the options need only Caddy's core (a fuzz target's imports are all instrumented)"},
		{"caddyfile/directive", []string{"github.com/caddyserver/caddy/v2/modules/", self + "module/engine"},
			"the directive's parser needs only Caddy's core and Caddyfile packages (fuzz target)"},
		{"module", []string{self + "caddyfile", self + "cmd"}, "module is below caddyfile and cmd"},
		{"caddyfile", []string{self + "cmd"}, "caddyfile is below cmd"},
	}
	for _, r := range rules {
		// -test: a test's imports are instrumented for fuzzing too.
		out, err := exec.Command("go", "list", "-deps", "-test", self+r.pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", r.pkg, err, out)
		}
		var bad []string
		for _, dep := range strings.Fields(string(out)) {
			for _, b := range r.banned {
				if strings.HasPrefix(dep, b) {
					bad = append(bad, dep)
				}
			}
		}
		if len(bad) > 0 {
			t.Errorf("%s depends on %s (%d banned packages in all): %s", r.pkg, bad[0], len(bad), r.why)
		}
	}
}
