// Package integration runs the real caddy binary, built from ./cmd/caddy,
// with a Caddyfile that uses websocket_relay, against real clients and
// backends: Go (coder/websocket, gorilla/websocket, a raw gobwas/ws
// client), Node's ws and headless Chromium.
package integration

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	rt "github.com/websocket-relay/websocket_relay/integration/relaytest"
)

// TestMain owns the directory that the caddy binary is built into. The
// build itself happens once, on first use (rt.Binary), so that tests in
// this package that need no caddy process (the Caddyfile adapt runner) do
// not pay for it.
func TestMain(m *testing.M) { os.Exit(rt.RunLazy(m, "wsrelay-integration-")) }

// Ports for caddy come from below Linux's ephemeral range (32768-60999 by
// default): a port that some busy process on the machine uses as the
// source port of an outgoing connection cannot be listened on, and
// bind(":0") hands out exactly those ports.
const (
	portLow  = 20000
	portHigh = 32000
)

var (
	portMu    sync.Mutex
	portsUsed = map[int]bool{}
)

// freePort returns a TCP port, never returned before in this process,
// that could be listened on on all interfaces a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	for range 500 {
		p := portLow + rand.IntN(portHigh-portLow)
		if portsUsed[p] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
		if err != nil {
			continue
		}
		l.Close()
		portsUsed[p] = true
		return p
	}
	t.Fatal("no free port found")
	return 0
}

// caddyProc is one running caddy process and what it logged.
type caddyProc struct {
	t         *testing.T
	Dir       string // private temp dir: Caddyfile, storage, HOME
	HTTPPort  int
	HTTPSPort int
	AdminPort int // 0 when the admin API is off
	servers   string
	env       []string

	cmd    *exec.Cmd
	logs   *rt.LogSink
	exited chan struct{}
	werr   error
}

// caddyOpts are the per-test choices of the global options block.
type caddyOpts struct {
	// Admin turns the admin API on at 127.0.0.1:<AdminPort>.
	Admin bool
	// Servers is the body of a global `servers` block (e.g. timeouts).
	Servers string
	// Env is added to caddy's environment (e.g. GODEBUG settings).
	Env []string
}

// newCaddy picks ports and a temp dir for a caddy process; call Start with
// the site blocks, which may use c.HTTPPort and c.HTTPSPort.
func newCaddy(t *testing.T, opts caddyOpts) *caddyProc {
	t.Helper()
	c := &caddyProc{
		t:         t,
		Dir:       t.TempDir(),
		HTTPPort:  freePort(t),
		HTTPSPort: freePort(t),
	}
	if opts.Admin {
		c.AdminPort = freePort(t)
	}
	c.servers = opts.Servers
	c.env = opts.Env
	return c
}

// globalOptions renders the global options block.
func (c *caddyProc) globalOptions() string {
	admin := "admin off"
	if c.AdminPort != 0 {
		admin = fmt.Sprintf("admin 127.0.0.1:%d", c.AdminPort)
	}
	servers := ""
	if c.servers != "" {
		servers = "servers {\n" + c.servers + "\n}"
	}
	return fmt.Sprintf(`{
	%s
	%s
	persist_config off
	storage file_system %s
	skip_install_trust
	local_certs
	http_port %d
	https_port %d
	log {
		level DEBUG
		output stderr
		format json
	}
}
`, admin, servers, c.StorageDir(), c.HTTPPort, c.HTTPSPort)
}

// StorageDir is caddy's file_system storage root.
func (c *caddyProc) StorageDir() string { return filepath.Join(c.Dir, "storage") }

// Caddyfile returns the whole Caddyfile for the given site blocks.
func (c *caddyProc) Caddyfile(sites string) string {
	return c.globalOptions() + "\n" + sites
}

// Start writes the Caddyfile, runs caddy and waits until it serves: the
// HTTP port accepts and, when a site is https, a TLS handshake verified
// against caddy's local CA succeeds. Cleanup stops caddy and fails the
// test if caddy reported a data race or a panic. When another process
// took one of the ports in the meantime, Start moves to fresh ports
// (rewriting them in sites) and tries again.
func (c *caddyProc) Start(sites string) {
	c.t.Helper()
	rt.Binary(c.t) // build before the ports can go stale
	for attempt := 1; ; attempt++ {
		if c.start(sites) {
			return
		}
		if attempt == 3 {
			c.t.Fatalf("caddy could not bind its ports %d times; its output:\n%s", attempt, c.logs.String())
		}
		c.t.Logf("caddy could not bind its ports (attempt %d); moving to fresh ports", attempt)
		sites = c.movePorts(sites)
	}
}

// movePorts picks fresh ports and rewrites the old ones in sites.
func (c *caddyProc) movePorts(sites string) string {
	for _, p := range []*int{&c.HTTPPort, &c.HTTPSPort, &c.AdminPort} {
		if *p == 0 {
			continue
		}
		old := *p
		*p = freePort(c.t)
		sites = strings.ReplaceAll(sites, fmt.Sprintf(":%d", old), fmt.Sprintf(":%d", *p))
	}
	return sites
}

// start runs caddy once; it returns false when caddy exited because a
// port was taken, and fails the test on any other early exit.
func (c *caddyProc) start(sites string) bool {
	t := c.t
	t.Helper()
	bin := rt.Binary(t)
	cfg := filepath.Join(c.Dir, "Caddyfile")
	if err := os.WriteFile(cfg, []byte(c.Caddyfile(sites)), 0o644); err != nil {
		t.Fatal(err)
	}
	c.logs = rt.NewLogSink()
	c.exited = make(chan struct{})
	c.cmd = exec.Command(bin, "run", "--config", cfg, "--adapter", "caddyfile")
	c.cmd.Dir = c.Dir
	c.cmd.Env = append(os.Environ(),
		"HOME="+c.Dir,
		"XDG_CONFIG_HOME="+filepath.Join(c.Dir, "config"),
		"XDG_DATA_HOME="+filepath.Join(c.Dir, "data"),
	)
	c.cmd.Env = append(c.cmd.Env, c.env...)
	c.cmd.Stdout = c.logs
	c.cmd.Stderr = c.logs
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("starting caddy: %v", err)
	}
	cmd, exited := c.cmd, c.exited
	go func() {
		c.werr = cmd.Wait()
		c.logs.CloseInput()
		close(exited)
	}()
	// Whatever happens below, this process does not outlive the test.
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	})
	if !c.waitReady(strings.Contains(sites, "https://")) {
		return false
	}
	t.Cleanup(c.stopAndCheck)
	return true
}

// waitReady blocks until caddy serves and returns true, returns false
// when caddy exited because a port was taken, and fails the test when it
// exits otherwise or is not ready after 30 s.
func (c *caddyProc) waitReady(https bool) bool {
	t := c.t
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	httpsAddr := ""
	if https {
		httpsAddr = fmt.Sprintf("127.0.0.1:%d", c.HTTPSPort)
	}
	ready := func() error {
		return rt.Serving(c.logs, c.StorageDir(), httpsAddr, fmt.Sprintf("127.0.0.1:%d", c.HTTPPort))
	}
	for {
		select {
		case <-c.exited:
			out := c.logs.String()
			if strings.Contains(out, "address already in use") {
				return false
			}
			t.Fatalf("caddy exited before it was ready (%v); its output:\n%s", c.werr, out)
		default:
		}
		err := ready()
		if err == nil {
			return true
		}
		if time.Now().After(deadline) {
			t.Fatalf("caddy not ready after 30s: %v; its output:\n%s", err, c.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Signal sends sig to caddy.
func (c *caddyProc) Signal(sig os.Signal) {
	c.t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil {
		c.t.Fatalf("signalling caddy: %v", err)
	}
}

// WaitExit waits up to d for caddy to exit and reports whether it did.
func (c *caddyProc) WaitExit(d time.Duration) bool {
	select {
	case <-c.exited:
		return true
	case <-time.After(d):
		return false
	}
}

// Exited is closed when the caddy process has exited.
func (c *caddyProc) Exited() <-chan struct{} { return c.exited }

// stopAndCheck stops caddy (SIGTERM, then SIGKILL after 10 s) and fails
// the test if its output holds a data race report or a panic.
func (c *caddyProc) stopAndCheck() {
	t := c.t
	select {
	case <-c.exited:
	default:
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		if !c.WaitExit(10 * time.Second) {
			t.Errorf("caddy did not exit within 10s of SIGTERM; killing it")
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
	}
	out := c.logs.String()
	rt.CheckOutput(t, out, "DATA RACE", "panic:")
	rt.SaveOutput(t, out)
}

// adapt runs `caddy adapt` on a full Caddyfile and returns the JSON.
func (c *caddyProc) adapt(caddyfile string) []byte {
	t := c.t
	t.Helper()
	path := filepath.Join(c.Dir, fmt.Sprintf("Caddyfile.%d", time.Now().UnixNano()))
	if err := os.WriteFile(path, []byte(caddyfile), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, rt.Binary(t), "adapt", "--config", path, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+c.Dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("caddy adapt: %v\n%s", err, stderr.String())
	}
	return out
}
