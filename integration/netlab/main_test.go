// Package netlab proves the relay's keepalive on a real network: Linux
// network namespaces joined by veth pairs, a NAT namespace whose conntrack
// forgets idle mappings (as a carrier NAT does), a private nginx as an L7
// hop, the real caddy binary with websocket_relay, Go peers and headless
// Chromium. Every scenario has a control run that shows the test can fail.
//
// The tests need root, iproute2 and nftables (plus conntrack, nginx,
// chromium and chromedriver for some scenarios). Without them they skip,
// saying why; under CI=true they fail instead.
//
// Go peers run in their namespaces as re-executions of this test binary
// with NETLAB_ROLE set (see role_test.go); they speak JSON lines on stdout
// and take one-line commands on stdin.
package netlab

import (
	"flag"
	"fmt"
	"os"
	"testing"

	rt "github.com/websocket-relay/websocket_relay/integration/relaytest"
)

// defaultParallel is how many scenarios run at once unless -test.parallel
// is given: they mostly sleep through idle periods, each in its own
// namespaces, so running them together is what keeps the package fast.
const defaultParallel = 16

// TestMain runs a peer role when this binary was started as one, and
// otherwise the tests, with a private directory for the caddy binary.
func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role))
	}
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		_ = flag.Set("test.parallel", fmt.Sprint(defaultParallel))
	}
	removeStaleLabs()
	// caddy is built on first use (rt.Binary), so that a run where every
	// test skips builds nothing.
	os.Exit(rt.RunLazy(m, "wsrelay-netlab-"))
}
