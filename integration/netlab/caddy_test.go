package netlab

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Ports inside the server namespace.
const (
	caddyPort   = 8080
	backendPort = 9000
	nginxPort   = 8081
)

// relayLogger is the logger name of the websocket_relay handler.
const relayLogger = "http.handlers.websocket_relay"

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
	logs      *logSink
}

// startCaddy writes a Caddyfile, runs caddy in l.Server listening on
// caddyPort and relaying to the backend on 127.0.0.1:backendPort, and
// waits until it serves. Cleanup fails the test if caddy reported a data
// race or a panic.
func startCaddy(t *testing.T, l *lab, opts caddyOpts) *caddyProc {
	t.Helper()
	bin := caddyBinary(t)
	dir := filepath.Join(l.Dir, "caddy")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := &caddyProc{t: t, adminSock: filepath.Join(dir, "admin.sock"), logs: newLogSink()}
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
		if len(c.logs.Find(func(e logEntry) bool { return e.Str("msg") == "serving initial configuration" })) > 0 {
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
	for _, bad := range []string{"DATA RACE", "panic:"} {
		if i := strings.Index(out, bad); i >= 0 {
			c.t.Errorf("caddy output contains %q:\n%s", bad, out[max(0, i-2000):min(len(out), i+6000)])
		}
	}
	if c.t.Failed() {
		c.t.Logf("caddy output:\n%s", tail(out, 12000))
	}
}

// ConnClosed returns the relay's "connection closed" lines so far.
func (c *caddyProc) ConnClosed() []logEntry {
	return c.logs.Find(func(e logEntry) bool {
		return e.Str("logger") == relayLogger && e.Str("msg") == "connection closed"
	})
}

// WaitConnClosed waits up to d for the first "connection closed" line.
func (c *caddyProc) WaitConnClosed(d time.Duration) logEntry {
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

// logEntry is one JSON log line of caddy.
type logEntry map[string]any

// Str returns field k as a string ("" when absent or not a string).
func (e logEntry) Str(k string) string {
	s, _ := e[k].(string)
	return s
}

// Num returns field k as a number (0 when absent).
func (e logEntry) Num(k string) float64 {
	n, _ := e[k].(float64)
	return n
}

func (e logEntry) String() string {
	b, _ := json.Marshal(map[string]any(e))
	return string(b)
}

// logSink keeps caddy's output and its JSON lines parsed.
type logSink struct {
	mu      sync.Mutex
	raw     strings.Builder
	pw      *io.PipeWriter
	entries []logEntry
}

func newLogSink() *logSink {
	s := &logSink{}
	pr, pw := io.Pipe()
	s.pw = pw
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			var e logEntry
			ok := json.Unmarshal(sc.Bytes(), &e) == nil
			s.mu.Lock()
			s.raw.WriteString(sc.Text() + "\n")
			if ok {
				s.entries = append(s.entries, e)
			}
			s.mu.Unlock()
		}
		io.Copy(io.Discard, pr)
	}()
	return s
}

func (s *logSink) Write(p []byte) (int, error) { return s.pw.Write(p) }

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.raw.String()
}

// Find returns the entries so far for which match holds.
func (s *logSink) Find(match func(logEntry) bool) []logEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []logEntry
	for _, e := range s.entries {
		if match(e) {
			out = append(out, e)
		}
	}
	return out
}
