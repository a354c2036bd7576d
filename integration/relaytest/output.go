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
// output around it.
func CheckOutput(t testing.TB, out string, bad ...string) {
	t.Helper()
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
