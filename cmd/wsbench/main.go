// Command wsbench compares WebSocket proxies side by side in one run: the
// websocket_relay handler, Caddy's stock reverse_proxy (the same caddy
// binary), nginx, and a direct connection to the echo backend. It measures
// throughput and round trips (with each proxy's own CPU time per GiB and per
// round trip), idle memory and goroutines per connection (with a ws and a wss
// client leg), and the relay's CPU cost of keepalive pings, in alternating
// rounds, and writes a markdown report and an SVG chart.
//
//	wsbench [-quick] [-caddy bin/caddy] [-out docs/perf] [flags]
//	wsbench backend [-listen addr]   (the echo backend; started by wsbench)
//
// Speed figures are never pass/fail: the program reports them.
package main

import (
	"debug/buildinfo"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// config holds the command-line flags.
type config struct {
	caddyBin, nginxBin, out, via, workDir string
	rounds, idleConns, idleConnsTLS       int
	tpConns, tpWindow, rtConns, rtSize    int
	quick, keep                           bool
	settle, warmup                        time.Duration
	tpDuration, rtDuration, pingWindow    time.Duration
}

// sizes are the message sizes of the throughput runs.
var sizes = []int{64 << 10, 1 << 20}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "backend" {
		if err := runBackend(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "wsbench backend:", err)
			os.Exit(1)
		}
		return
	}
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "wsbench:", err)
		os.Exit(2)
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "wsbench:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("wsbench", flag.ContinueOnError)
	fs.StringVar(&c.caddyBin, "caddy", "bin/caddy", "caddy binary built with the plugin")
	fs.StringVar(&c.nginxBin, "nginx", "", `nginx binary (default: found in PATH or /usr/sbin); "off" skips nginx`)
	fs.StringVar(&c.out, "out", "docs/perf", "directory for results.md and chart.svg")
	fs.StringVar(&c.via, "via", "", `how the run was started, for the report (e.g. "make bench")`)
	fs.StringVar(&c.workDir, "workdir", "", "directory for configs, storage and logs (default: a new temporary one)")
	fs.BoolVar(&c.keep, "keep", false, "keep the work directory")
	fs.BoolVar(&c.quick, "quick", false, "smoke run: 1 round, 1,000 idle connections (ws and wss), shorter windows")
	fs.IntVar(&c.rounds, "rounds", 3, "rounds; each measures every target in turn")
	fs.IntVar(&c.idleConns, "idle-conns", 9900, "idle connections per proxy (two file descriptors each in a proxy)")
	fs.IntVar(&c.idleConnsTLS, "idle-conns-wss", 9900, "idle wss connections per proxy (fewer make a shorter run: each costs a TLS handshake); 0 skips them")
	fs.IntVar(&c.tpConns, "tp-conns", 4, "connections of a throughput run")
	fs.IntVar(&c.tpWindow, "tp-window", 8, "messages in flight per connection in a throughput run")
	fs.IntVar(&c.rtConns, "rt-conns", 100, "connections of a round-trip run")
	fs.IntVar(&c.rtSize, "rt-size", 128, "message size of a round-trip run")
	fs.DurationVar(&c.settle, "settle", 3*time.Second, "wait before reading a proxy's memory")
	fs.DurationVar(&c.warmup, "warmup", 500*time.Millisecond, "unmeasured start of throughput and round-trip runs")
	fs.DurationVar(&c.tpDuration, "tp-duration", 2*time.Second, "measured time of a throughput run")
	fs.DurationVar(&c.rtDuration, "rt-duration", 3*time.Second, "measured time of a round-trip run")
	fs.DurationVar(&c.pingWindow, "ping-window", 10*time.Second, "window over which the relay's ping CPU is measured")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		quick := map[string]func(){
			"rounds":         func() { c.rounds = 1 },
			"idle-conns":     func() { c.idleConns = 1000 },
			"idle-conns-wss": func() { c.idleConnsTLS = 1000 },
			"settle":         func() { c.settle = 2 * time.Second },
			"tp-duration":    func() { c.tpDuration = time.Second },
			"rt-duration":    func() { c.rtDuration = 2 * time.Second },
			"ping-window":    func() { c.pingWindow = 5 * time.Second },
		}
		for name, apply := range quick {
			if !set[name] {
				apply()
			}
		}
	}
	if c.rounds < 1 || c.idleConns < 1 || c.idleConnsTLS < 0 || c.tpConns < 1 || c.tpWindow < 1 || c.rtConns < 1 || c.rtSize < 8 {
		return c, errors.New("rounds, connection counts and window must be positive (idle-conns-wss may be 0), rt-size at least 8")
	}
	if c.settle < 1500*time.Millisecond {
		return c, errors.New("settle must be at least 1.5s (the ping run waits one settle for the 1s pings to start)")
	}
	return c, nil
}

// bench is one run.
type bench struct {
	cfg      config
	dir      string
	backend  string
	dialer   *dialer
	patterns map[int]*pattern
	res      *Results
	start    time.Time
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(b.start).Seconds(), fmt.Sprintf(format, args...))
}

// notef records a note for the report and logs it.
func (b *bench) notef(format string, args ...any) {
	n := fmt.Sprintf(format, args...)
	b.res.Notes = append(b.res.Notes, n)
	b.logf("note: %s", n)
}

func (b *bench) settle() { time.Sleep(b.cfg.settle) }

func run(cfg config) (err error) {
	b := &bench{cfg: cfg, res: newResults(), start: time.Now(), patterns: map[int]*pattern{}}
	limit, err := raiseFileLimit()
	if err != nil {
		return fmt.Errorf("raising the file limit: %w", err)
	}
	if n := max(cfg.idleConns, cfg.idleConnsTLS); limit < 2*uint64(n)+100 {
		b.notef("the file limit is %d; %d idle connections need about %d in a proxy", limit, n, 2*uint64(n)+100)
	}
	if cfg.caddyBin, err = filepath.Abs(cfg.caddyBin); err != nil {
		return err
	}
	nginx := findNginx(cfg.nginxBin)
	if b.dir, err = workDir(cfg.workDir); err != nil {
		return err
	}
	defer func() {
		// Keep the logs of a failed run; remove only a directory we made.
		if err == nil && !cfg.keep && cfg.workDir == "" {
			os.RemoveAll(b.dir)
		} else {
			b.logf("work directory kept: %s", b.dir)
		}
	}()
	b.logf("work directory %s", b.dir)
	b.res.Meta = b.meta(limit, nginx)
	if nginx == "" {
		b.notef("nginx not found: its rows are left out")
	}
	for _, s := range sizes {
		b.patterns[s] = newPattern(s)
	}
	backendProc, addr, err := startBackend(b.dir)
	if err != nil {
		return err
	}
	defer backendProc.stop()
	b.backend = addr
	for r := range cfg.rounds {
		if err := b.round(r, nginx); err != nil {
			return err
		}
	}
	return b.write()
}

// findNginx returns the nginx binary to use, or "" to skip nginx.
func findNginx(flagVal string) string {
	switch flagVal {
	case "off":
		return ""
	case "":
		if p, err := exec.LookPath("nginx"); err == nil {
			return p
		}
		if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
			return "/usr/sbin/nginx"
		}
		return ""
	}
	return flagVal
}

func workDir(dir string) (string, error) {
	if dir == "" {
		return os.MkdirTemp("", "wsbench-")
	}
	return dir, os.MkdirAll(dir, 0o755)
}

// meta collects the facts the report starts with.
func (b *bench) meta(limit uint64, nginx string) Meta {
	m := Meta{
		Date: time.Now(), Machine: readMachine(), GoVersion: runtime.Version(),
		CaddyVersion: "unknown", NginxVersion: "absent",
		Command: commandLine(os.Args, b.cfg.via), Rounds: b.cfg.rounds, IdleConns: b.cfg.idleConns,
		IdleConnsTLS: b.cfg.idleConnsTLS,
		Settle:       b.cfg.settle, Warmup: b.cfg.warmup, TPDuration: b.cfg.tpDuration, RTDuration: b.cfg.rtDuration,
		PingWindow: b.cfg.pingWindow, TPConns: b.cfg.tpConns, TPWindow: b.cfg.tpWindow,
		RTConns: b.cfg.rtConns, RTSize: b.cfg.rtSize, Sizes: sizes, FileLimit: limit,
	}
	if out, err := exec.Command(b.cfg.caddyBin, "version").Output(); err == nil {
		if f := strings.Fields(string(out)); len(f) > 0 {
			m.CaddyVersion = f[0]
		}
	}
	if bi, err := buildinfo.ReadFile(b.cfg.caddyBin); err == nil {
		m.GoVersion = bi.GoVersion
	}
	if nginx != "" {
		out, _ := exec.Command(nginx, "-v").CombinedOutput()
		m.NginxVersion = strings.TrimPrefix(strings.TrimSpace(string(out)), "nginx version: ")
	}
	return m
}

// commandLine is how the report names the run: "make bench (bin/wsbench
// ...)" when started by make (the -via flag itself left out), the command
// line otherwise.
func commandLine(args []string, via string) string {
	var kept []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-via" || a == "--via":
			i++ // and its value
			continue
		case strings.HasPrefix(a, "-via=") || strings.HasPrefix(a, "--via="):
			continue
		}
		kept = append(kept, a)
	}
	cmd := strings.Join(kept, " ")
	if via == "" {
		return cmd
	}
	return via + " (" + cmd + ")"
}
