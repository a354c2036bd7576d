package netlab

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Addresses exist only inside the namespaces a lab creates; every lab
// uses the same ones, since each has its own namespaces.
const (
	clientIP = "10.200.1.2" // client namespace, behind the NAT
	natInIP  = "10.200.1.1" // NAT namespace, the client's gateway
	natOutIP = "10.200.2.1" // NAT namespace, the masqueraded source
	serverIP = "10.200.2.2" // server namespace: caddy, nginx, backend

	clientIf = "cl0"     // client namespace
	natIn    = "nat-in"  // NAT namespace, toward the client
	natOut   = "nat-out" // NAT namespace, toward the server
	serverIf = "srv0"    // server namespace
)

// natTimeout is the conntrack established timeout of the NAT in the
// scenarios that need the NAT to forget: idle times and ping intervals
// keep at least 3 s away from it (NETLAB.md).
const natTimeout = 6 * time.Second

// labOpts are the choices of one lab.
type labOpts struct {
	// NATTimeout is nf_conntrack_tcp_timeout_established in the NAT
	// namespace; 0 keeps the kernel's default (5 days).
	NATTimeout time.Duration
}

// lab is three network namespaces, client -> nat -> server, that exist
// for one test: the NAT masquerades the client behind natOutIP, and its
// forward chain drops everything but established and related packets and
// new connections from the inside, so a mapping that expired is gone for
// good (nf_conntrack_tcp_loose=0, nf_conntrack_tcp_be_liberal=0), as on a
// carrier NAT. The server namespace has no route to the client's subnet.
type lab struct {
	t                   *testing.T
	Client, NAT, Server string // namespace names
	Dir                 string // a short private directory (unix socket paths stay short)
}

var labCounter atomic.Int64

// labPrefix starts the name of every namespace this process creates.
func labPrefix() string { return fmt.Sprintf("wsrlab%d-", os.Getpid()) }

// newLab creates the namespaces, links, addresses, routes, sysctls and
// the NAT's ruleset. Cleanup kills whatever still runs in the namespaces
// and deletes them, also when the test failed.
func newLab(t *testing.T, opts labOpts) *lab {
	t.Helper()
	n := labCounter.Add(1)
	base := fmt.Sprintf("%s%d", labPrefix(), n)
	l := &lab{t: t, Client: base + "-c", NAT: base + "-n", Server: base + "-s"}
	dir, err := os.MkdirTemp("", "wsrl")
	if err != nil {
		t.Fatal(err)
	}
	l.Dir = dir
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, ns := range []string{l.Client, l.NAT, l.Server} {
		l.ip("netns", "add", ns)
		t.Cleanup(func() { removeNetns(t, ns) })
	}
	steps := [][]string{
		{"-n", l.Client, "link", "add", clientIf, "type", "veth", "peer", "name", natIn, "netns", l.NAT},
		{"-n", l.NAT, "link", "add", natOut, "type", "veth", "peer", "name", serverIf, "netns", l.Server},
		{"-n", l.Client, "addr", "add", clientIP + "/24", "dev", clientIf},
		{"-n", l.NAT, "addr", "add", natInIP + "/24", "dev", natIn},
		{"-n", l.NAT, "addr", "add", natOutIP + "/24", "dev", natOut},
		{"-n", l.Server, "addr", "add", serverIP + "/24", "dev", serverIf},
	}
	for _, link := range [][2]string{{l.Client, "lo"}, {l.Client, clientIf}, {l.NAT, "lo"}, {l.NAT, natIn}, {l.NAT, natOut}, {l.Server, "lo"}, {l.Server, serverIf}} {
		steps = append(steps, []string{"-n", link[0], "link", "set", link[1], "up"})
	}
	steps = append(steps, []string{"-n", l.Client, "route", "add", "default", "via", natInIP})
	for _, s := range steps {
		l.ip(s...)
	}
	sysctls := []string{
		"net.ipv4.ip_forward=1",
		"net.netfilter.nf_conntrack_tcp_loose=0",
		"net.netfilter.nf_conntrack_tcp_be_liberal=0",
	}
	if opts.NATTimeout > 0 {
		sysctls = append(sysctls, fmt.Sprintf("net.netfilter.nf_conntrack_tcp_timeout_established=%d", int(opts.NATTimeout.Seconds())))
	}
	l.Exec(l.NAT, nil, append([]string{"sysctl", "-q", "-w"}, sysctls...)...)
	l.Exec(l.NAT, []byte(natRuleset), "nft", "-f", "-")
	return l
}

// natRuleset makes the NAT namespace a NAT that forgets: masquerade out of
// natOut, forward only established/related and new-from-inside, and
// nothing for the NAT box itself, so a packet that matches no mapping is
// dropped silently (no RST from the box's own TCP stack).
const natRuleset = `
table ip lab {
	chain forward {
		type filter hook forward priority 0; policy drop;
		ct state established,related accept
		iifname "` + natIn + `" ct state new accept
	}
	chain input {
		type filter hook input priority 0; policy drop;
	}
	chain postrouting {
		type nat hook postrouting priority 100;
		oifname "` + natOut + `" masquerade
	}
}
`

// ip runs ip(8) with args and fails the test on error.
func (l *lab) ip(args ...string) {
	l.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// Exec runs argv inside namespace ns with stdin and returns its stdout;
// it fails the test on error.
func (l *lab) Exec(ns string, stdin []byte, argv ...string) string {
	l.t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		l.t.Fatalf("in %s: %s: %v: %s%s", ns, strings.Join(argv, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// CutClient makes the client vanish as a phone leaving coverage does: the
// NAT drops every packet from and to it, without any answer.
func (l *lab) CutClient() {
	l.t.Helper()
	for _, rule := range []string{
		`insert rule ip lab forward iifname "` + natIn + `" drop`,
		`insert rule ip lab forward oifname "` + natIn + `" drop`,
	} {
		l.Exec(l.NAT, nil, append([]string{"nft"}, strings.Fields(rule)...)...)
	}
}

// Mappings returns the established conntrack entries of the NAT for TCP
// connections to port; -1 when the conntrack tool is missing.
func (l *lab) Mappings(port int) int {
	l.t.Helper()
	if _, err := exec.LookPath("conntrack"); err != nil {
		return -1
	}
	out := l.Exec(l.NAT, nil, "conntrack", "-L", "-p", "tcp", "--dport", strconv.Itoa(port), "--state", "ESTABLISHED")
	return strings.Count(out, "\n")
}

// removeNetns kills what still runs inside ns (processes this test
// started there) and deletes it.
func removeNetns(t *testing.T, ns string) {
	killNetnsPids(ns)
	if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
		t.Errorf("deleting namespace %s: %v: %s", ns, err, out)
	}
}

// killNetnsPids sends SIGKILL to every process in ns and waits up to 5 s
// for them to go.
func killNetnsPids(ns string) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := exec.Command("ip", "netns", "pids", ns).Output()
		pids := strings.Fields(string(out))
		if err != nil || len(pids) == 0 || time.Now().After(deadline) {
			return
		}
		for _, p := range pids {
			if pid, err := strconv.Atoi(p); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// removeStaleLabs deletes the namespaces left behind by earlier runs of
// this package that died before their cleanups ran (a test timeout): the
// ones named after a process that no longer exists.
func removeStaleLabs() {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), "wsrlab")
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(filepath.Join("/proc", pidStr)); err == nil {
			continue // that run is still going
		}
		killNetnsPids(e.Name())
		_ = exec.Command("ip", "netns", "del", e.Name()).Run()
	}
}
