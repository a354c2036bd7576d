package netlab

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	rt "github.com/websocket-relay/websocket_relay/integration/relaytest"
)

var (
	probeOnce sync.Once
	probeErr  error
)

// requireLab checks what every scenario needs: root, iproute2, nftables,
// sysctl and working network namespaces, plus the named extra tools
// ("a|b": the first of a and b found). It returns the paths of the extra
// tools in order. What is missing skips the test, or fails it under
// CI=true (rt.Unavailable).
func requireLab(t *testing.T, extra ...string) []string {
	t.Helper()
	if os.Geteuid() != 0 {
		rt.Unavailable(t, "network namespaces need root (euid %d); run as root or with sudo", os.Geteuid())
	}
	rt.LookTool(t, "ip")
	rt.LookTool(t, "nft")
	rt.LookTool(t, "sysctl")
	probeOnce.Do(func() { probeErr = probeNetns() })
	if probeErr != nil {
		rt.Unavailable(t, "network namespaces do not work here: %v", probeErr)
	}
	paths := make([]string, len(extra))
	for i, name := range extra {
		paths[i] = rt.LookTool(t, strings.Split(name, "|")...)
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
