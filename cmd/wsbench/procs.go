package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// proc is a process the bench started: the backend, a caddy or nginx.
type proc struct {
	name string
	cmd  *exec.Cmd
	// pid is the process whose memory and CPU are measured: caddy itself,
	// nginx's single worker.
	pid int
	// admin is caddy's admin address ("" for nginx).
	admin  string
	log    string
	exited chan struct{}
}

// start runs cmd with its output going to logPath.
func startProc(name string, cmd *exec.Cmd, logPath string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	if cmd.Stdout == nil {
		cmd.Stdout = f
	}
	cmd.Stderr = f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, pid: cmd.Process.Pid, log: logPath, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.exited)
	}()
	return p, nil
}

// stop asks the process to exit (SIGTERM) and kills it after 10 s.
func (p *proc) stop() {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// failed explains why a process did not come up, with its log's tail.
func (p *proc) failed(err error) error {
	b, _ := os.ReadFile(p.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return fmt.Errorf("%s: %w; log %s ends with:\n%s", p.name, err, p.log, b)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitFor polls check until it succeeds, the process exits or timeout passes.
func (p *proc) waitFor(what string, timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return p.failed(fmt.Errorf("exited while waiting for %s", what))
		default:
		}
		if time.Now().After(deadline) {
			return p.failed(fmt.Errorf("waiting for %s: %w", what, err))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tcpReady(addr string) func() error {
	return func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}
}

// startBackend re-executes this binary as `wsbench backend`.
func startBackend(dir string) (p *proc, addr string, err error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(exe, "backend", "-listen", "127.0.0.1:0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if p, err = startProc("backend", cmd, filepath.Join(dir, "backend.log")); err != nil {
		return nil, "", err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		p.stop()
		return nil, "", p.failed(fmt.Errorf("no address announced (%q, %v)", line, err))
	}
	return p, addr, nil
}

// backendOpen asks the backend how many connections it holds.
func backendOpen(addr string) (int64, error) {
	resp, err := adminClient.Get("http://" + addr + "/stats")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var s backendStats
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return 0, err
	}
	return s.Open, nil
}

// waitBackendIdle waits until the backend holds no connection, so that one
// measurement's teardown does not overlap the next one.
func waitBackendIdle(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		n, err := backendOpen(addr)
		if err == nil && n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("backend still holds %d connections after %s (%v)", n, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// caddySpec describes one caddy target.
type caddySpec struct {
	name    string // "relay" or "stock"
	handler string // "websocket_relay" or "reverse_proxy"
	// pingSite adds a third site whose relay pings after 1s of silence.
	pingSite bool
}

// startCaddy writes a Caddyfile for spec under dir/<name> and runs bin with it.
func startCaddy(bin, dir string, spec caddySpec, backend string) (*target, error) {
	home := filepath.Join(dir, spec.name)
	if err := os.MkdirAll(home, 0o755); err != nil {
		return nil, err
	}
	ports := make([]int, 4)
	for i := range ports {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = port
	}
	admin := fmt.Sprintf("127.0.0.1:%d", ports[0])
	storage := filepath.Join(home, "storage")
	cf := caddyfile(spec, admin, storage, backend, ports[1:])
	cfPath := filepath.Join(home, "Caddyfile")
	if err := os.WriteFile(cfPath, []byte(cf), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "run", "--config", cfPath, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(),
		"XDG_DATA_HOME="+filepath.Join(home, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(home, "config"))
	p, err := startProc(spec.name, cmd, filepath.Join(home, "caddy.log"))
	if err != nil {
		return nil, err
	}
	p.admin = admin
	t := &target{
		key:  spec.name,
		proc: p,
		ws:   fmt.Sprintf("ws://127.0.0.1:%d/", ports[1]),
		wss:  fmt.Sprintf("wss://127.0.0.1:%d/", ports[2]),
		root: filepath.Join(storage, "pki", "authorities", "local", "root.crt"),
	}
	if spec.pingSite {
		t.ping = fmt.Sprintf("ws://127.0.0.1:%d/", ports[3])
	}
	err = p.waitFor("the admin endpoint", 20*time.Second, func() error {
		resp, err := adminClient.Get("http://" + admin + "/config/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	if err == nil {
		err = p.waitFor("the ws site", 20*time.Second, tcpReady(fmt.Sprintf("127.0.0.1:%d", ports[1])))
	}
	if err == nil {
		err = p.waitFor("the local CA's root", 20*time.Second, func() error {
			_, err := os.Stat(t.root)
			return err
		})
	}
	if err != nil {
		p.stop()
		return nil, err
	}
	return t, nil
}

// caddyfile renders the Caddyfile of a caddy target: a ws site, a wss site
// with `tls internal` and, for the relay, a site with ping_interval 1s.
func caddyfile(spec caddySpec, admin, storage, backend string, ports []int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n\tadmin %s\n\tpersist_config off\n\tstorage file_system %s\n", admin, storage)
	b.WriteString("\tskip_install_trust\n\tauto_https disable_redirects\n}\n\n")
	fmt.Fprintf(&b, "http://:%d {\n\tbind 127.0.0.1\n\t%s %s\n}\n\n", ports[0], spec.handler, backend)
	fmt.Fprintf(&b, "https://127.0.0.1:%d {\n\tbind 127.0.0.1\n\ttls internal\n\t%s %s\n}\n", ports[1], spec.handler, backend)
	if spec.pingSite {
		fmt.Fprintf(&b, "\nhttp://:%d {\n\tbind 127.0.0.1\n\t%s %s {\n\t\tping_interval 1s\n\t}\n}\n", ports[2], spec.handler, backend)
	}
	return b.String()
}

// startNginx runs a private nginx instance in dir/nginx that proxies
// WebSockets to backend, in ws and (with the given certificate) wss.
func startNginx(bin, dir, backend, certPath, keyPath string, fileLimit uint64) (*target, error) {
	home := filepath.Join(dir, "nginx")
	if err := os.MkdirAll(home, 0o755); err != nil {
		return nil, err
	}
	wsPort, err1 := freePort()
	wssPort, err2 := freePort()
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	conf := nginxConf(home, backend, wsPort, wssPort, certPath, keyPath, fileLimit)
	confPath := filepath.Join(home, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-p", home+"/", "-c", confPath, "-e", filepath.Join(home, "error.log"), "-g", "daemon off;")
	p, err := startProc("nginx", cmd, filepath.Join(home, "nginx.out"))
	if err != nil {
		return nil, err
	}
	err = p.waitFor("the ws site", 20*time.Second, tcpReady(fmt.Sprintf("127.0.0.1:%d", wsPort)))
	if err == nil {
		err = p.waitFor("the worker", 20*time.Second, func() error {
			pid, err := childPID(p.cmd.Process.Pid)
			p.pid = pid
			return err
		})
	}
	if err != nil {
		p.stop()
		return nil, err
	}
	return &target{
		key:  "nginx",
		proc: p,
		ws:   fmt.Sprintf("ws://127.0.0.1:%d/", wsPort),
		wss:  fmt.Sprintf("wss://127.0.0.1:%d/", wssPort),
		root: certPath,
	}, nil
}

// nginxConf is a one-worker nginx proxying WebSockets as its documentation
// recommends, with idle timeouts long enough for the idle measurement.
// worker_connections is 1.5 times the file limit: nginx 1.22 runs out of
// connection slots before it runs out of descriptors (with 20,000 slots it
// refused connections at about 9,380 proxied WebSockets, 18,760 sockets).
func nginxConf(home, backend string, wsPort, wssPort int, cert, key string, fileLimit uint64) string {
	return fmt.Sprintf(`worker_processes 1;
worker_rlimit_nofile %[7]d;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events {
	worker_connections %[8]d;
}
http {
	access_log off;
	client_body_temp_path %[1]s/client_body;
	proxy_temp_path %[1]s/proxy;
	map $http_upgrade $connection_upgrade {
		default upgrade;
		'' close;
	}
	upstream backend {
		server %[2]s;
	}
	server {
		listen 127.0.0.1:%[3]d;
		listen 127.0.0.1:%[4]d ssl;
		ssl_protocols TLSv1.2 TLSv1.3;
		ssl_certificate %[5]s;
		ssl_certificate_key %[6]s;
		location / {
			proxy_pass http://backend;
			proxy_http_version 1.1;
			proxy_set_header Upgrade $http_upgrade;
			proxy_set_header Connection $connection_upgrade;
			proxy_set_header Host $host;
			proxy_read_timeout 1h;
			proxy_send_timeout 1h;
		}
	}
}
`, home, backend, wsPort, wssPort, cert, key, fileLimit, nginxSlots(fileLimit))
}

// nginxSlots is the worker_connections of the nginx target.
func nginxSlots(fileLimit uint64) uint64 { return max(1024, fileLimit*3/2) }

// rootPool builds the client's trust: the roots of every TLS target.
func rootPool(targets []*target) (*tls.Config, error) {
	pool := x509.NewCertPool()
	for _, t := range targets {
		if t.root == "" {
			continue
		}
		pem, err := os.ReadFile(t.root)
		if err != nil {
			return nil, err
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificate in %s", t.root)
		}
	}
	return &tls.Config{RootCAs: pool}, nil
}
