package netlab

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// unavailable stops a test that this machine cannot run: a failure under
// CI=true, where scripts/deps.sh must have prepared everything, and a
// skip with the reason elsewhere.
func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and "+format, args...)
	}
	t.Skipf(format, args...)
}

// tool returns the path of the first of names found in PATH, or stops the
// test (see unavailable).
func tool(t *testing.T, names ...string) string {
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
	unavailable(t, "none of %v is installed (scripts/deps.sh installs it)", names)
	return ""
}

var (
	probeOnce sync.Once
	probeErr  error
)

// requireLab checks what every scenario needs: root, iproute2, nftables,
// sysctl and working network namespaces, plus the named extra tools. It
// returns the paths of the extra tools in order.
func requireLab(t *testing.T, extra ...string) []string {
	t.Helper()
	if os.Geteuid() != 0 {
		unavailable(t, "network namespaces need root (euid %d); run as root or with sudo", os.Geteuid())
	}
	tool(t, "ip")
	tool(t, "nft")
	tool(t, "sysctl")
	probeOnce.Do(func() { probeErr = probeNetns() })
	if probeErr != nil {
		unavailable(t, "network namespaces do not work here: %v", probeErr)
	}
	paths := make([]string, len(extra))
	for i, name := range extra {
		paths[i] = tool(t, strings.Split(name, "|")...)
	}
	return paths
}

// probeNetns creates and deletes one namespace with a veth pair inside it.
func probeNetns() error {
	name := fmt.Sprintf("%sprobe", labPrefix())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add: %v: %s", err, out)
	}
	defer exec.Command("ip", "netns", "del", name).Run()
	if out, err := exec.Command("ip", "-n", name, "link", "add", "p0", "type", "veth", "peer", "name", "p1").CombinedOutput(); err != nil {
		return fmt.Errorf("creating a veth pair: %v: %s", err, out)
	}
	if out, err := exec.Command("ip", "netns", "exec", name, "nft", "list", "ruleset").CombinedOutput(); err != nil {
		return fmt.Errorf("nft in a namespace: %v: %s", err, out)
	}
	return nil
}
