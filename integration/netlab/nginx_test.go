package netlab

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	rt "github.com/websocket-relay/websocket_relay/integration/relaytest"
)

// nginxReadTimeout is the private nginx's proxy_read_timeout: the idle
// time after which it cuts a proxied WebSocket, as CDNs and load
// balancers do (Cloudflare 100 s, AWS ALB 60 s), scaled down.
const nginxReadTimeout = 5 * time.Second

// nginxConf proxies WebSockets from serverIP:nginxPort to caddy, with
// everything (pid, logs, temp files) under the lab's directory.
const nginxConf = `worker_processes 1;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path %[1]s/tmp/body;
	proxy_temp_path %[1]s/tmp/proxy;
	fastcgi_temp_path %[1]s/tmp/fastcgi;
	uwsgi_temp_path %[1]s/tmp/uwsgi;
	scgi_temp_path %[1]s/tmp/scgi;
	server {
		listen %[2]s:%[3]d%[4]s;
		location / {
			proxy_pass http://127.0.0.1:%[5]d;
			proxy_http_version 1.1;
			proxy_set_header Upgrade $http_upgrade;
			proxy_set_header Connection "upgrade";
			proxy_set_header Host $host;
			proxy_read_timeout %[6]ds;
		}
	}
}
`

// startNginx runs a private nginx in the server namespace in front of
// caddy. keepalive turns on TCP keepalive (1 s idle, 1 s interval) on
// the sockets it accepts.
func startNginx(t *testing.T, l *lab, keepalive bool) {
	t.Helper()
	bin := rt.LookTool(t, "nginx")
	dir := filepath.Join(l.Dir, "nginx")
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	ka := ""
	if keepalive {
		ka = " so_keepalive=1:1:9"
	}
	conf := fmt.Sprintf(nginxConf, dir, serverIP, nginxPort, ka, caddyPort, int(nginxReadTimeout.Seconds()))
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p, _ := startProc(t, procSpec{
		Name: "nginx",
		NS:   l.Server,
		Argv: []string{bin, "-p", dir, "-c", path, "-g", "daemon off;"},
		Dir:  dir,
	})
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "error.log")); err == nil {
				t.Logf("nginx error.log:\n%s", tail(string(b), 6000))
			}
		}
	})
	// nginx writes its pid file once it listens.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, "nginx.pid")); err == nil {
			return
		}
		select {
		case <-p.Exited():
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx exited at start: %v\n%s\n%s", p.werr, p.output.String(), b)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx wrote no pid file within 10s:\n%s", p.output.String())
		}
	}
}
