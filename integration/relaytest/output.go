package relaytest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// CheckOutput fails t (without stopping it) for each of bad, such as
// "DATA RACE" or "panic:", that caddy's output out contains, showing the
// output around it. Data race reports of Caddy's own known races
// (upstreamRaces) do not count.
func CheckOutput(t testing.TB, out string, bad ...string) {
	t.Helper()
	out = withoutUpstreamRaces(out)
	for _, b := range bad {
		if strings.Contains(out, b) {
			t.Errorf("caddy output contains %q:\n%s", b, Excerpt(out, b))
		}
	}
}

// SaveOutput writes caddy's output out to a file in the temp directory
// when t has failed, and logs where.
func SaveOutput(t testing.TB, out string) {
	t.Helper()
	if !t.Failed() {
		return
	}
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	path := filepath.Join(os.TempDir(), fmt.Sprintf("caddy-%s-%d.log", name, time.Now().UnixNano()))
	if err := os.WriteFile(path, []byte(out), 0o644); err == nil {
		t.Logf("caddy output saved to %s", path)
	}
}

// Excerpt returns the text of out around the first occurrence of needle.
func Excerpt(out, needle string) string {
	i := strings.Index(out, needle)
	if i < 0 {
		return ""
	}
	return out[max(0, i-2000):min(len(out), i+6000)]
}

// upstreamRaces are data races inside Caddy itself that its -race build
// can report, which no code of this project takes part in: each is the
// frames that all appear in one report.
var upstreamRaces = [][]string{
	// Caddy v2.11.9, `tls internal` sites: caddytls.(*TLS).Start sets its
	// background context (tls.go:424) while a certificate job that
	// certmagic already runs emits an event, and caddyevents' Emit calls
	// TLS.CaddyModule on a copy of the whole struct. Seen in a
	// fresh-clone CI run on a slow machine (TestRelayPings; the report is
	// testdata/upstream_race.txt).
	{"caddytls.(*TLS).Start()", "caddytls.(*TLS).CaddyModule()", "caddyevents.(*App).Emit()", "certmagic."},
}

// hasOwnFrame reports whether a race report names a function of this
// module. A report's function lines are indented by two spaces, the file
// lines under them by more. Only function lines count: under -trimpath
// (the Makefile's GOFLAGS) the file of caddy's main.main, in every stack,
// is github.com/websocket-relay/websocket_relay/cmd/caddy/main.go.
func hasOwnFrame(report string) bool {
	for line := range strings.Lines(report) {
		fn, ok := strings.CutPrefix(line, "  ")
		if ok && strings.HasPrefix(fn, "github.com/websocket-relay/websocket_relay/") {
			return true
		}
	}
	return false
}

// raceSep is the line that opens and closes a race detector report.
const raceSep = "==================\n"

// withoutUpstreamRaces returns out without the race detector reports that
// match one of upstreamRaces and hold no frame of this module's.
func withoutUpstreamRaces(out string) string {
	var b strings.Builder
	for {
		i := strings.Index(out, raceSep+"WARNING: DATA RACE\n")
		if i < 0 {
			break
		}
		j := strings.Index(out[i+len(raceSep):], raceSep)
		if j < 0 {
			break
		}
		end := i + len(raceSep) + j + len(raceSep)
		report := out[i:end]
		b.WriteString(out[:i])
		if !isUpstreamRace(report) {
			b.WriteString(report)
		}
		out = out[end:]
	}
	b.WriteString(out)
	return b.String()
}

func isUpstreamRace(report string) bool {
	if hasOwnFrame(report) {
		return false
	}
	for _, frames := range upstreamRaces {
		all := true
		for _, f := range frames {
			all = all && strings.Contains(report, f)
		}
		if all {
			return true
		}
	}
	return false
}
