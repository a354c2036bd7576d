package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// missingTool stops a test that needs a tool this machine lacks: a failure
// in CI (CI=true), where scripts/deps.sh must have installed it, and a
// skip with the reason elsewhere.
func missingTool(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and "+format, args...)
	}
	t.Skipf(format+" (scripts/deps.sh installs it)", args...)
}

// lookTool returns the path of the first of names found in PATH.
func lookTool(t *testing.T, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	missingTool(t, "none of %v is in PATH", names)
	return ""
}

// nodeDir is where the Node peers and their node_modules live.
func nodeDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("node")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// requireNode returns the node binary and the directory of the Node
// peers, after checking that `npm ci` has installed ws there.
func requireNode(t *testing.T) (string, string) {
	t.Helper()
	node := lookTool(t, "node", "nodejs")
	dir := nodeDir(t)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "ws", "package.json")); err != nil {
		missingTool(t, "the npm package ws is not installed in %s (run `npm ci` there)", dir)
	}
	return node, dir
}
