package relaytest

import (
	"os"
	"os/exec"
	"testing"
)

// Unavailable stops a test that this machine cannot run: a failure under
// CI=true, where scripts/deps.sh must have prepared everything, and a
// skip with the reason elsewhere.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and "+format, args...)
	}
	t.Skipf(format, args...)
}

// LookTool returns the path of the first of names found in PATH or in
// /usr/sbin, /sbin or /usr/bin, or stops the test (see [Unavailable]).
func LookTool(t testing.TB, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
		for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
			p := dir + "/" + n
			if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
				return p
			}
		}
	}
	Unavailable(t, "none of %v is installed (scripts/deps.sh installs it)", names)
	return ""
}
