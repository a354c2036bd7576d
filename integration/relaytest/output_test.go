package relaytest

import (
	"os"
	"strings"
	"testing"
)

// TestUpstreamRaceIgnored: Caddy's own known race report (as a caddy
// -race build printed it) is taken out of the output; the same report
// with a frame of this module's, and any other report, are kept, and so
// is the output around them.
func TestUpstreamRaceIgnored(t *testing.T) {
	b, err := os.ReadFile("testdata/upstream_race.txt")
	if err != nil {
		t.Fatal(err)
	}
	known := string(b)
	ours := strings.Replace(known, "github.com/caddyserver/certmagic.(*Config).emit()",
		"github.com/websocket-relay/websocket_relay/module/engine.(*Session).event()", 1)
	other := strings.Replace(known, "caddytls.(*TLS).Start()", "caddytls.(*TLS).Stop()", 1)
	// Built with -trimpath, as the Makefile's GOFLAGS do, main.main's file
	// is named by its module path: not a frame of ours.
	trimmed := strings.Replace(known, "/work/main/cmd/caddy/main.go",
		"github.com/websocket-relay/websocket_relay/cmd/caddy/main.go", 1)
	if trimmed == known {
		t.Fatal("testdata/upstream_race.txt has no main.main frame at /work/main/cmd/caddy/main.go")
	}
	for _, tc := range []struct {
		name, report string
		kept         bool
	}{
		{"known", known, false},
		{"known, built with -trimpath", trimmed, false},
		{"with a frame of ours", ours, true},
		{"another race", other, true},
	} {
		out := "before\n" + tc.report + "after\n"
		got := withoutUpstreamRaces(out)
		if kept := strings.Contains(got, "DATA RACE"); kept != tc.kept {
			t.Errorf("%s: report kept %v, want %v", tc.name, kept, tc.kept)
		}
		if !strings.HasPrefix(got, "before\n") || !strings.HasSuffix(got, "after\n") {
			t.Errorf("%s: the output around the report was not kept: %q", tc.name, got)
		}
	}
	if got := withoutUpstreamRaces(known + known); got != "" {
		t.Errorf("two known reports: %q left", got)
	}
}
