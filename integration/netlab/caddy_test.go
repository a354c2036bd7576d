package netlab

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	rt "github.com/websocket-relay/websocket_relay/integration/relaytest"
)

// Ports inside the server namespace.
const (
	caddyPort   = 8080
	backendPort = 9000
	nginxPort   = 8081
)

// caddyOpts are the per-scenario parts of the Caddyfile.
type caddyOpts struct {
	// Relay holds the lines of the websocket_relay block.
	Relay []string
	// Servers holds the lines of the global `servers` block, e.g. the TCP
	// keepalive of caddy's listener: "keepalive_interval -1s" turns it off.
	Servers []string
	// Metrics turns on Caddy's HTTP metrics (the global `metrics`
	// option). The relay's own collectors are on /metrics either way.
	Metrics bool
	// Page, when set, is served as /index.html by file_server to
	// requests that are not upgrades.
	Page string
}

// caddyProc is the real caddy running in a lab's server namespace, with
// its admin API (and metrics) on a unix socket the test can reach.
type caddyProc struct {
	*proc
	t         *testing.T
	adminSock string
	logs      *rt.LogSink
}

// startCaddy writes a Caddyfile, runs caddy in l.Server listening on
// caddyPort and relaying to the backend on 127.0.0.1:backendPort, and
// waits until it serves. Cleanup fails the test if caddy reported a data
// race or a panic.
func startCaddy(t *testing.T, l *lab, opts caddyOpts) *caddyProc {
	t.Helper()
	bin := rt.Binary(t)
	dir := filepath.Join(l.Dir, "caddy")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := &caddyProc{t: t, adminSock: filepath.Join(dir, "admin.sock"), logs: rt.NewLogSink()}
	var servers, site string
	if opts.Metrics {
		servers = "metrics\n\t"
	}
	if len(opts.Servers) > 0 {
		servers += "servers {\n\t\t" + strings.Join(opts.Servers, "\n\t\t") + "\n\t}"
	}
	if opts.Page != "" {
		root := filepath.Join(dir, "www")
		if err := os.MkdirAll(root, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "index.html"), []byte(opts.Page), 0o644); err != nil {
			t.Fatal(err)
		}
		site = fmt.Sprintf("root * %s\n\tfile_server", root)
	}
	caddyfile := fmt.Sprintf(`{
	admin unix/%s
	persist_config off
	storage file_system %s
	%s
	log {
		level INFO
		output stderr
		format json
	}
}

:%d {
	websocket_relay 127.0.0.1:%d {
		%s
	}
	%s
}
`, c.adminSock, filepath.Join(dir, "storage"), servers, caddyPort, backendPort, strings.Join(opts.Relay, "\n\t\t"), site)
	cfg := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cfg, []byte(caddyfile), 0o644); err != nil {
		t.Fatal(err)
	}
	c.proc, _ = startProc(t, procSpec{
		Name: "caddy",
		NS:   l.Server,
		Argv: []string{bin, "run", "--config", cfg, "--adapter", "caddyfile"},
		Env: []string{
			"HOME=" + dir,
			"XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
			"XDG_DATA_HOME=" + filepath.Join(dir, "data"),
		},
		Dir:    dir,
		Stdout: c.logs,
		Stderr: c.logs,
	})
	t.Cleanup(c.check) // runs after the process was stopped (cleanups are LIFO)
	c.waitReady()
	return c
}

// waitReady waits for caddy's "serving initial configuration" line.
func (c *caddyProc) waitReady() {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if len(c.logs.Entries(func(e rt.LogEntry) bool { return e.Str("msg") == rt.Started })) > 0 {
			return
		}
		select {
		case <-c.Exited():
			c.t.Fatalf("caddy exited before serving (%v); its output:\n%s", c.werr, c.logs.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	c.t.Fatalf("caddy not serving after 30s; its output:\n%s", c.logs.String())
}

// check fails the test if caddy's output holds a data race report or a
// panic, and shows the output when the test failed.
func (c *caddyProc) check() {
	out := c.logs.String()
	rt.CheckOutput(c.t, out, "DATA RACE", "panic:")
	if c.t.Failed() {
		c.t.Logf("caddy output:\n%s", tail(out, 12000))
	}
}

// ConnClosed returns the relay's "connection closed" lines so far.
func (c *caddyProc) ConnClosed() []rt.LogEntry {
	return c.logs.Entries(rt.LogEntry.IsConnClosed)
}

// WaitConnClosed waits up to d for the first "connection closed" line.
func (c *caddyProc) WaitConnClosed(d time.Duration) rt.LogEntry {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		if e := c.ConnClosed(); len(e) > 0 {
			return e[0]
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no \"connection closed\" line within %v; caddy output:\n%s", d, tail(c.logs.String(), 6000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Metric reads one unlabelled sample from caddy's /metrics on the admin
// socket.
func (c *caddyProc) Metric(name string) float64 {
	c.t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", c.adminSock)
		},
	}}
	resp, err := hc.Get("http://caddy/metrics")
	if err != nil {
		c.t.Fatalf("reading metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				c.t.Fatalf("metric %s: %q: %v", name, v, err)
			}
			return f
		}
	}
	c.t.Fatalf("metric %s not in /metrics (status %d)", name, resp.StatusCode)
	return 0
}

// RSS returns caddy's resident set size (VmRSS) in bytes.
func (c *caddyProc) RSS() int64 {
	c.t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.Pid()))
	if err != nil {
		c.t.Fatalf("reading caddy's status: %v", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				c.t.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb << 10
		}
	}
	c.t.Fatalf("no VmRSS in /proc/%d/status", c.Pid())
	return 0
}
