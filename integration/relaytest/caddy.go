package relaytest

import (
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Options are a test's choices for caddy's global options block.
type Options struct {
	// ReadHeader is the HTTP servers' `timeouts { read_header }`; zero
	// leaves Caddy's default.
	ReadHeader time.Duration
	// Metrics turns on the global `metrics` option (HTTP metrics on the
	// admin endpoint; Caddy 2.11 deprecates the `servers { metrics }`
	// form). The Go runtime metrics are there either way.
	Metrics bool
	// LogLevel is caddy's log level; default INFO, so that the relay's
	// one line per connection is there and debug chatter is not.
	LogLevel string
}

// Caddy is one caddy process with a private directory and ports. The admin
// API is always on, on loopback, for the metrics endpoint.
type Caddy struct {
	t         testing.TB
	opts      Options
	Dir       string // Caddyfile, storage, HOME
	HTTPPort  int
	HTTPSPort int
	AdminPort int

	cmd     *exec.Cmd
	logs    *LogSink
	exited  chan struct{}
	werr    error
	stopped bool
}

// NewCaddy picks ports and a directory; call Start with the site blocks,
// which may use c.HTTPPort and c.HTTPSPort.
func NewCaddy(t testing.TB, opts Options) *Caddy {
	t.Helper()
	if opts.LogLevel == "" {
		opts.LogLevel = "INFO"
	}
	return &Caddy{
		t: t, opts: opts, Dir: t.TempDir(),
		HTTPPort: FreePort(t), HTTPSPort: FreePort(t), AdminPort: FreePort(t),
		exited: make(chan struct{}),
	}
}

// FreePort returns a TCP port that was free a moment ago, picked below
// the kernel's ephemeral range (32768 and up on Linux), so that the many
// client sockets of these tests, which take ephemeral ports, cannot take
// it before caddy binds it.
func FreePort(t testing.TB) int {
	t.Helper()
	for i := 0; i < 1000; i++ {
		port := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
		if err != nil {
			continue
		}
		l.Close()
		return port
	}
	t.Fatal("no free port found in 20000-32000")
	return 0
}

// globalOptions renders the global options block.
func (c *Caddy) globalOptions() string {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n\tadmin 127.0.0.1:%d\n\tpersist_config off\n\tstorage file_system %s\n", c.AdminPort, c.StorageDir())
	fmt.Fprintf(&b, "\tskip_install_trust\n\tlocal_certs\n\thttp_port %d\n\thttps_port %d\n", c.HTTPPort, c.HTTPSPort)
	if c.opts.Metrics {
		b.WriteString("\tmetrics\n")
	}
	if c.opts.ReadHeader > 0 {
		fmt.Fprintf(&b, "\tservers {\n\t\ttimeouts {\n\t\t\tread_header %s\n\t\t}\n\t}\n", c.opts.ReadHeader)
	}
	fmt.Fprintf(&b, "\tlog {\n\t\tlevel %s\n\t\toutput stderr\n\t\tformat json\n\t}\n}\n", c.opts.LogLevel)
	return b.String()
}

// StorageDir is caddy's file_system storage root.
func (c *Caddy) StorageDir() string { return filepath.Join(c.Dir, "storage") }

// Start writes the Caddyfile with the site blocks that sites renders for
// c (they may use c.HTTPPort and c.HTTPSPort), runs caddy and waits until
// it serves: the admin endpoint answers, the HTTP port accepts and, when a
// site is https, a TLS handshake verified against caddy's local CA
// succeeds. When a port was taken meanwhile, it picks new ports and tries
// again. A cleanup stops caddy and fails the test if it reported a data
// race or a panic.
func (c *Caddy) Start(sites func(c *Caddy) string) {
	t := c.t
	t.Helper()
	for attempt := 1; ; attempt++ {
		err := c.start(sites(c))
		if err == nil {
			return
		}
		if attempt == 3 || !strings.Contains(c.logs.String(), "address already in use") {
			t.Fatal(err)
		}
		c.stopped = false
		c.exited = make(chan struct{})
		c.HTTPPort, c.HTTPSPort, c.AdminPort = FreePort(t), FreePort(t), FreePort(t)
	}
}

func (c *Caddy) start(sites string) error {
	t := c.t
	bin := Binary(t)
	cfg := filepath.Join(c.Dir, "Caddyfile")
	if err := os.WriteFile(cfg, []byte(c.globalOptions()+"\n"+sites), 0o644); err != nil {
		return err
	}
	c.logs = NewLogSink()
	c.cmd = exec.Command(bin, "run", "--config", cfg, "--adapter", "caddyfile")
	c.cmd.Dir = c.Dir
	c.cmd.Env = append(os.Environ(), "HOME="+c.Dir,
		"XDG_CONFIG_HOME="+filepath.Join(c.Dir, "config"), "XDG_DATA_HOME="+filepath.Join(c.Dir, "data"))
	c.cmd.Stdout, c.cmd.Stderr = c.logs, c.logs
	if err := c.cmd.Start(); err != nil {
		return fmt.Errorf("starting caddy: %w", err)
	}
	exited := c.exited
	go func() {
		c.werr = c.cmd.Wait()
		c.logs.CloseInput()
		close(exited)
	}()
	if err := c.waitReady(strings.Contains(sites, "https://")); err != nil {
		c.stopped = true
		_ = c.cmd.Process.Kill()
		<-exited
		return err
	}
	t.Cleanup(c.Stop)
	return nil
}

// waitReady waits until caddy serves, for 30 s at most.
func (c *Caddy) waitReady(https bool) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-c.exited:
			return fmt.Errorf("caddy exited before it was ready (%v); its output:\n%s", c.werr, c.logs.String())
		default:
		}
		err := c.ready(https)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("caddy not ready after 30s: %v; its output:\n%s", err, c.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Caddy) ready(https bool) error {
	httpsAddr := ""
	if https {
		httpsAddr = c.HTTPSAddr()
	}
	return Serving(c.logs, c.StorageDir(), httpsAddr, fmt.Sprintf("127.0.0.1:%d", c.AdminPort), c.HTTPAddr())
}

// PID returns the caddy process id.
func (c *Caddy) PID() int { return c.cmd.Process.Pid }

// HTTPAddr and HTTPSAddr are the loopback addresses of the two ports.
func (c *Caddy) HTTPAddr() string  { return fmt.Sprintf("127.0.0.1:%d", c.HTTPPort) }
func (c *Caddy) HTTPSAddr() string { return fmt.Sprintf("127.0.0.1:%d", c.HTTPSPort) }

// RootCertPath is where caddy's local CA keeps its root certificate.
func (c *Caddy) RootCertPath() string { return RootCertPath(c.StorageDir()) }

func (c *Caddy) tlsConfig() (*tls.Config, error) { return LocalCATLS(c.StorageDir()) }

// TLSConfig returns a client config that trusts only caddy's local CA and
// expects the name localhost.
func (c *Caddy) TLSConfig() *tls.Config {
	c.t.Helper()
	cfg, err := c.tlsConfig()
	if err != nil {
		c.t.Fatalf("caddy's local CA: %v", err)
	}
	return cfg
}

// Alive reports whether the process is still running.
func (c *Caddy) Alive() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// Stop stops caddy (SIGTERM, SIGKILL after 20 s) and fails the test if
// caddy exited by itself, or wrote a data race report or a panic. It runs
// as a cleanup; calling it earlier is fine.
func (c *Caddy) Stop() {
	if c.stopped || c.cmd == nil {
		return
	}
	c.stopped = true
	t := c.t
	select {
	case <-c.exited:
		t.Errorf("caddy exited before the test stopped it: %v", c.werr)
	default:
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(20 * time.Second):
			t.Errorf("caddy did not exit within 20s of SIGTERM; killing it")
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
	}
	out := c.logs.String()
	CheckOutput(t, out, "DATA RACE", "panic:", "panic serving", "fatal error:")
	SaveOutput(t, out)
}

// CheckNoPanic fails the test at once if caddy has exited or has written
// a panic or a data race report so far.
func (c *Caddy) CheckNoPanic() {
	c.t.Helper()
	if !c.Alive() {
		c.t.Fatalf("caddy exited (%v); its output:\n%s", c.werr, tail(c.logs.String(), 6000))
	}
	out := withoutUpstreamRaces(c.logs.String())
	for _, bad := range []string{"DATA RACE", "panic:", "panic serving"} {
		if strings.Contains(out, bad) {
			c.t.Fatalf("caddy output contains %q:\n%s", bad, Excerpt(out, bad))
		}
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
