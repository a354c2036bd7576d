package integration

import (
	"os"
	"path/filepath"
	"testing"

	rt "github.com/websocket-relay/websocket_relay/integration/relaytest"
)

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
// peers, after checking that `npm ci` has installed ws there; without them
// the test skips, or fails under CI=true (rt.Unavailable).
func requireNode(t *testing.T) (string, string) {
	t.Helper()
	node := rt.LookTool(t, "node", "nodejs")
	dir := nodeDir(t)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "ws", "package.json")); err != nil {
		rt.Unavailable(t, "the npm package ws is not installed in %s (run `npm ci` there; scripts/deps.sh installs it)", dir)
	}
	return node, dir
}
