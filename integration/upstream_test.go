package integration

import (
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	cws "github.com/coder/websocket"

	rt "github.com/websocket-relay/websocket_relay/integration/relaytest"
)

// stubBackend listens on 127.0.0.1 and hands every accepted connection to
// serve; cleanup closes the listener.
func stubBackend(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return l.Addr().String()
}

// TestUpstreams runs one site with several websocket_relay directives,
// each behind a path matcher: a backend that never answers the upgrade
// and one that answers garbage (both 502, and handed over to the next
// upstream where there is one), round-robin over two backends,
// failover past a dead one, a wss:// upstream with a path prefix, and a
// backend on a Unix socket (and one whose socket does not exist: 502).
func TestUpstreams(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOpts{})
	b := newApp(t, appOpts{})
	secure := newApp(t, appOpts{TLS: true})
	onSocket := newApp(t, appOpts{Unix: true})
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	garbageAnswer := func(c net.Conn) {
		defer c.Close()
		io.WriteString(c, "this is not HTTP\r\n\r\n")
	}
	silentAnswer := func(c net.Conn) {
		defer c.Close()
		go io.Copy(io.Discard, c)
		<-hold
	}
	garbage, silent := stubBackend(t, garbageAnswer), stubBackend(t, silentAnswer)
	// The handover route's own, so that its log lines are its own.
	garbage2, silent2 := stubBackend(t, garbageAnswer), stubBackend(t, silentAnswer)
	dead := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	// The wss app's certificate (httptest's: example.com, 127.0.0.1) as
	// the one trusted CA.
	ca := filepath.Join(t.TempDir(), "ca.pem")
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: secure.srv.Certificate().Raw})
	if err := os.WriteFile(ca, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}

	c := newCaddy(t, caddyOpts{})
	c.Start(fmt.Sprintf(`http://:%d {
	websocket_relay /silent/* %s {
		handshake_timeout 1s
	}
	websocket_relay /garbage/* %s
	websocket_relay /handover/* %s %s %s {
		lb_policy first
		handshake_timeout 1s
	}
	websocket_relay /rr/* %s %s
	websocket_relay /tenant/* %s %s {
		lb_policy first
		header_up Host {http.request.uri.query.tenant}
	}
	websocket_relay /failover/* %s %s {
		dial_timeout 1s
	}
	websocket_relay /secure/* wss://%s/base {
		tls_insecure_skip_verify
	}
	websocket_relay /unix/* %s
	websocket_relay /hdr/* %s {
		header_up Host {upstream_hostport}
		header_up X-Real-IP {remote_host}
		header_up +X-Tag edge
		header_up -Cookie
	}
	websocket_relay /nosocket/* unix/%s
	websocket_relay /trusted/* wss://%s {
		tls_trusted_ca_certs %s
	}
	websocket_relay /untrusted/* wss://%s
	websocket_relay /named/* wss://%s {
		tls_trusted_ca_certs %s
		tls_server_name example.com
	}
	websocket_relay /misnamed/* wss://%s {
		tls_trusted_ca_certs %s
		tls_server_name other.test
	}
	reverse_proxy %s
}
`, c.HTTPPort, silent, garbage, garbage2, silent2, a.Addr, a.Addr, b.Addr, a.Addr, b.Addr, dead, a.Addr, secure.Addr, onSocket.Addr, a.Addr,
		filepath.Join(t.TempDir(), "none.sock"), secure.Addr, ca, secure.Addr, secure.Addr, ca,
		secure.Addr, ca, a.Addr))
	f := &fixture{App: a, Caddy: c}

	t.Run("silent backend", func(t *testing.T) {
		start := time.Now()
		r := c.rawRequest(t, false, "GET", "/silent/echo", upgradeLines())
		took := time.Since(start)
		if r.StatusCode != http.StatusBadGateway {
			t.Errorf("upgrade to a backend that never answers: %d %q, want 502", r.StatusCode, r.Body)
		}
		if took < 900*time.Millisecond || took > 5*time.Second {
			t.Errorf("502 after %v, want it after handshake_timeout 1s", took)
		}
	})
	t.Run("garbage answer", func(t *testing.T) {
		r := c.rawRequest(t, false, "GET", "/garbage/echo", upgradeLines())
		if r.StatusCode != http.StatusBadGateway {
			t.Errorf("upgrade to a backend that answers garbage: %d %q, want 502", r.StatusCode, r.Body)
		}
	})
	t.Run("failed upgrades hand over", func(t *testing.T) {
		// The garbage backend fails at once, the silent one after its
		// handshake_timeout; the third upstream relays. Both are then
		// tried last: the next upgrade goes straight to the third.
		failed := func() int {
			return len(c.Logs(func(e rt.LogEntry) bool {
				return e.Str("msg") == "backend handshake failed" && (e.Str("upstream") == garbage2 || e.Str("upstream") == silent2)
			}))
		}
		before := failed()
		start := time.Now()
		conn, _ := f.dialCoder(t, false, "/handover/echo", nil)
		a.accept(t, "/handover/echo")
		echoOnce(t, conn, "handover")
		conn.Close(cws.StatusNormalClosure, "")
		if d := time.Since(start); d < 900*time.Millisecond {
			t.Errorf("relayed after %v, before the silent backend's handshake_timeout", d)
		}
		waitUntil(t, 5*time.Second, "two warn lines", func() bool { return failed()-before >= 2 })
		if n := failed() - before; n != 2 {
			t.Errorf("%d \"backend handshake failed\" lines for the garbage and the silent backends, want 2", n)
		}
		start = time.Now()
		conn, _ = f.dialCoder(t, false, "/handover/echo", nil)
		a.accept(t, "/handover/echo")
		conn.Close(cws.StatusNormalClosure, "")
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Errorf("the next upgrade took %v: the failed upstreams were tried first again", d)
		}
	})
	t.Run("a Host made invalid by the request", func(t *testing.T) {
		// A line break in the client's tenant makes the backend's Host
		// invalid: 502, a warn line for each upstream tried, and no
		// upstream marked failed for it (a client must not get them
		// marked).
		failed := func() int {
			return len(c.Logs(func(e rt.LogEntry) bool {
				return e.Str("msg") == "backend handshake failed" && (e.Str("upstream") == a.Addr || e.Str("upstream") == b.Addr)
			}))
		}
		before := failed()
		r := c.rawRequest(t, false, "GET", "/tenant/echo?tenant=a%0d%0aX-Evil:%201", upgradeLines())
		if r.StatusCode != http.StatusBadGateway {
			t.Fatalf("an invalid Host: %d %q, want 502", r.StatusCode, r.Body)
		}
		waitUntil(t, 5*time.Second, "a warn line for each upstream", func() bool { return failed()-before >= 2 })
		conn, _ := f.dialCoder(t, false, "/tenant/echo?tenant=t1.example", nil)
		bc := a.accept(t, "/tenant/echo") // the first upstream, not marked
		if bc.Req.Host != "t1.example" {
			t.Errorf("the backend got Host %q, want t1.example", bc.Req.Host)
		}
		conn.Close(cws.StatusNormalClosure, "")
	})
	t.Run("round robin", func(t *testing.T) {
		counts := map[*app]int{}
		for i := 0; i < 4; i++ {
			conn, _ := f.dialCoder(t, false, "/rr/echo", nil)
			select {
			case <-a.connCh("/rr/echo"):
				counts[a]++
			case <-b.connCh("/rr/echo"):
				counts[b]++
			case <-time.After(10 * time.Second):
				t.Fatal("no backend accepted the connection")
			}
			echoOnce(t, conn, "rr")
			conn.Close(cws.StatusNormalClosure, "")
		}
		if counts[a] != 2 || counts[b] != 2 {
			t.Errorf("4 connections went %d to the first and %d to the second upstream, want 2 and 2", counts[a], counts[b])
		}
	})
	t.Run("failover", func(t *testing.T) {
		for i := 0; i < 4; i++ {
			conn, _ := f.dialCoder(t, false, "/failover/echo", nil)
			a.accept(t, "/failover/echo")
			echoOnce(t, conn, "failover")
			conn.Close(cws.StatusNormalClosure, "")
		}
	})
	t.Run("wss upstream with path", func(t *testing.T) {
		conn, _ := f.dialCoder(t, false, "/secure/echo?q=1", nil)
		bc := secure.accept(t, "/base/secure/echo")
		if bc.Req.RequestURI != "/base/secure/echo?q=1" {
			t.Errorf("the wss backend got %q, want /base/secure/echo?q=1", bc.Req.RequestURI)
		}
		if bc.Req.TLS == nil {
			t.Error("the wss backend's request did not come over TLS")
		}
		echoOnce(t, conn, "over wss")
		conn.Close(cws.StatusNormalClosure, "")
	})
	t.Run("unix socket upstream", func(t *testing.T) {
		sf := &fixture{App: onSocket, Caddy: c}
		conn, _ := sf.dialCoder(t, false, "/unix/echo?q=2", nil)
		bc := onSocket.accept(t, "/unix/echo")
		if bc.Req.RequestURI != "/unix/echo?q=2" {
			t.Errorf("the backend on a Unix socket got %q, want /unix/echo?q=2", bc.Req.RequestURI)
		}
		for i := range 3 {
			echoOnce(t, conn, fmt.Sprintf("over a Unix socket %d", i))
		}
		conn.Close(cws.StatusNormalClosure, "")
	})
	t.Run("wss upstream verified", func(t *testing.T) {
		for _, path := range []string{"/trusted/echo", "/named/echo"} {
			conn, _ := f.dialCoder(t, false, path, nil)
			if bc := secure.accept(t, path); bc.Req.TLS == nil {
				t.Errorf("%s: the wss backend's request did not come over TLS", path)
			}
			echoOnce(t, conn, "verified "+path)
			conn.Close(cws.StatusNormalClosure, "")
		}
		// Not trusted, or not valid for the name sent: no relay.
		for _, path := range []string{"/untrusted/echo", "/misnamed/echo"} {
			r := c.rawRequest(t, false, "GET", path, upgradeLines())
			if r.StatusCode != http.StatusBadGateway {
				t.Errorf("%s: upgrade to a wss backend whose certificate does not verify: %d %q, want 502", path, r.StatusCode, r.Body)
			}
		}
	})
	t.Run("header_up", func(t *testing.T) {
		conn, _ := f.dialCoder(t, false, "/hdr/echo", &cws.DialOptions{HTTPHeader: http.Header{
			"Cookie": {"session=secret"}, "X-Tag": {"client"}}})
		bc := a.accept(t, "/hdr/echo")
		checks := map[string]string{
			"Host":      a.Addr, // the upstream's host:port, not the site's
			"X-Real-IP": "127.0.0.1",
			"Cookie":    "",
			"X-Tag":     "client,edge",
		}
		got := map[string]string{"Host": bc.Req.Host, "X-Real-IP": bc.Req.Header.Get("X-Real-IP"),
			"Cookie": bc.Req.Header.Get("Cookie"), "X-Tag": strings.Join(bc.Req.Header.Values("X-Tag"), ",")}
		for k, want := range checks {
			if got[k] != want {
				t.Errorf("the backend got %s %q, want %q", k, got[k], want)
			}
		}
		echoOnce(t, conn, "with header_up")
		conn.Close(cws.StatusNormalClosure, "")
	})
	t.Run("missing unix socket", func(t *testing.T) {
		r := c.rawRequest(t, false, "GET", "/nosocket/echo", upgradeLines())
		if r.StatusCode != http.StatusBadGateway {
			t.Errorf("upgrade to a Unix socket that does not exist: %d %q, want 502", r.StatusCode, r.Body)
		}
	})
}

// TestLBPolicy: with the same `lb_policy header X-User`, each user's
// upgrades reach the backend that reverse_proxy sends that user's plain
// requests to (sticky sessions across a long-poll fallback and its
// WebSocket); least_conn sends a new connection to the backend whose
// relay ended, where round_robin would go on in turn; with the same
// `lb_policy cookie`, reverse_proxy's cookie sends upgrades to its
// backend, and an upgrade's cookie sends reverse_proxy's requests to the
// relay's.
func TestLBPolicy(t *testing.T) {
	t.Parallel()
	apps := []*app{newApp(t, appOpts{}), newApp(t, appOpts{}), newApp(t, appOpts{})}
	addrs := make([]string, len(apps))
	for i, a := range apps {
		a.SetPage(fmt.Sprint(i))
		addrs[i] = a.Addr
	}
	all := strings.Join(addrs, " ")
	c := newCaddy(t, caddyOpts{})
	c.Start(fmt.Sprintf(`http://:%d {
	websocket_relay /sticky/* %s {
		lb_policy header X-User
	}
	websocket_relay /least/* %s {
		lb_policy least_conn
	}
	websocket_relay /cookie/* %s {
		lb_policy cookie srv s3cret
	}
	handle_path /cookiepage/* {
		reverse_proxy %s {
			lb_policy cookie srv s3cret
		}
	}
	reverse_proxy %s {
		lb_policy header X-User
	}
}
`, c.HTTPPort, all, all, all, all, all))
	f := &fixture{App: apps[0], Caddy: c}
	// which returns the index of the app that accepted a connection on path.
	which := func(t *testing.T, path string) (int, *backendConn) {
		t.Helper()
		cases := make([]reflect.SelectCase, len(apps)+1)
		for i, a := range apps {
			cases[i] = reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(a.connCh(path))}
		}
		cases[len(apps)] = reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(time.After(10 * time.Second))}
		i, v, _ := reflect.Select(cases)
		if i == len(apps) {
			t.Fatalf("no backend accepted the connection on %s", path)
		}
		return i, v.Interface().(*backendConn)
	}

	t.Run("header hash as reverse_proxy's", func(t *testing.T) {
		reached := map[int]bool{}
		for u := range 12 {
			user := fmt.Sprintf("user-%d", u)
			req, _ := http.NewRequest(http.MethodGet, c.HTTPURL()+"/page.html", nil)
			req.Header.Set("X-User", user)
			resp, err := c.HTTPClient().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for range 2 {
				conn, _ := f.dialCoder(t, false, "/sticky/echo", &cws.DialOptions{HTTPHeader: http.Header{"X-User": {user}}})
				got, _ := which(t, "/sticky/echo")
				if fmt.Sprint(got) != string(page) {
					t.Errorf("%s: reverse_proxy chose backend %s, the relay %d", user, page, got)
				}
				reached[got] = true
				echoOnce(t, conn, user)
				conn.Close(cws.StatusNormalClosure, "")
			}
		}
		if len(reached) < 2 {
			t.Errorf("12 users all went to backend %v", reached)
		}
	})
	t.Run("cookie as reverse_proxy's", func(t *testing.T) {
		// page fetches the page through reverse_proxy's cookie policy
		// with cookie (if any): the backend's index and the cookie set.
		page := func(cookie string) (string, string) {
			req, _ := http.NewRequest(http.MethodGet, c.HTTPURL()+"/cookiepage/page.html", nil)
			if cookie != "" {
				req.Header.Set("Cookie", cookie)
			}
			resp, err := c.HTTPClient().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return string(body), resp.Header.Get("Set-Cookie")
		}
		// upgrade opens a relay with cookie (if any): the backend's
		// index and the cookie its 101 set.
		upgrade := func(cookie string) (string, string) {
			opts := &cws.DialOptions{HTTPHeader: http.Header{}}
			if cookie != "" {
				opts.HTTPHeader.Set("Cookie", cookie)
			}
			conn, resp := f.dialCoder(t, false, "/cookie/echo", opts)
			got, _ := which(t, "/cookie/echo")
			echoOnce(t, conn, "cookie")
			conn.Close(cws.StatusNormalClosure, "")
			return fmt.Sprint(got), resp.Header.Get("Set-Cookie")
		}
		nameValue := func(setCookie string) string { return strings.Split(setCookie, ";")[0] }
		reached := map[string]bool{}
		for range 8 {
			// A page first: the upgrades follow reverse_proxy's cookie,
			// and set none of their own.
			p, set := page("")
			if !strings.HasPrefix(set, "srv=") || !strings.Contains(set, "HttpOnly") {
				t.Fatalf("reverse_proxy set %q", set)
			}
			for range 2 {
				got, again := upgrade(nameValue(set))
				if got != p || again != "" {
					t.Errorf("reverse_proxy served backend %s and set %q; the upgrade with its cookie reached %s and set %q", p, set, got, again)
				}
			}
			// An upgrade first: its 101 sets the cookie, which sends
			// the pages to its backend.
			got, set := upgrade("")
			if want := "; Path=/; HttpOnly; SameSite=Lax"; !strings.HasPrefix(set, "srv=") || !strings.HasSuffix(set, want) {
				t.Fatalf("the 101 set %q, want srv=<value>%s as reverse_proxy sets it", set, want)
			}
			if p, again := page(nameValue(set)); p != got || again != "" {
				t.Errorf("the upgrade reached backend %s and set %q; the page with its cookie came from %s, which set %q", got, set, p, again)
			}
			reached[got] = true
		}
		if len(reached) < 2 {
			t.Errorf("8 upgrades without a cookie all went to backend %v (the fallback is random)", reached)
		}
	})
	t.Run("least_conn", func(t *testing.T) {
		conns := make([]*cws.Conn, len(apps))
		ended := len(c.ConnClosedLogs())
		for range apps {
			conn, _ := f.dialCoder(t, false, "/least/echo", nil)
			i, _ := which(t, "/least/echo")
			if conns[i] != nil {
				t.Fatalf("a second connection went to backend %d while another held none", i)
			}
			conns[i] = conn
		}
		// End the relay of one backend at a time: the next connection
		// goes there, the only one with fewer connections.
		for _, i := range []int{1, 2, 0, 1} {
			conns[i].Close(cws.StatusNormalClosure, "")
			ended++
			c.WaitConnClosed(ended)
			conn, _ := f.dialCoder(t, false, "/least/echo", nil)
			if got, _ := which(t, "/least/echo"); got != i {
				t.Fatalf("backend %d's relay ended, and the next connection went to backend %d", i, got)
			}
			echoOnce(t, conn, "least_conn")
			conns[i] = conn
		}
	})
}

// TestHealthChecks: with health_uri, an upstream whose checks fail gets
// no upgrade while another is healthy, and gets its turn again once its
// checks pass; each change of state is one log line.
func TestHealthChecks(t *testing.T) {
	t.Parallel()
	apps := []*app{newApp(t, appOpts{}), newApp(t, appOpts{})}
	c := newCaddy(t, caddyOpts{})
	c.Start(fmt.Sprintf(`http://:%d {
	websocket_relay %s %s {
		health_uri /healthz
		health_interval 100ms
		health_timeout 1s
		health_fails 2
	}
}
`, c.HTTPPort, apps[0].Addr, apps[1].Addr))
	f := &fixture{App: apps[0], Caddy: c}
	stateLines := func(msg string) int { return len(upstreamLines(c, msg, apps[0].Addr)) }
	counts := func(n int) [2]int64 { return relaysPerApp(t, f, apps, n) }
	if got := counts(4); got[0] == 0 || got[1] == 0 {
		t.Fatalf("both healthy: %v relays per app, want both used", got)
	}
	apps[0].SetHealth(http.StatusServiceUnavailable)
	waitUntil(t, 5*time.Second, "app 0 logged unhealthy", func() bool { return stateLines("upstream unhealthy") == 1 })
	if got := counts(6); got[0] != 0 || got[1] != 6 {
		t.Fatalf("app 0 unhealthy: %v relays per app, want all 6 on app 1", got)
	}
	apps[0].SetHealth(http.StatusOK)
	waitUntil(t, 5*time.Second, "app 0 logged healthy", func() bool { return stateLines("upstream healthy") == 1 })
	if got := counts(4); got[0] == 0 || got[1] == 0 {
		t.Fatalf("app 0 healthy again: %v relays per app, want both used", got)
	}
	if n := stateLines("upstream unhealthy"); n != 1 {
		t.Errorf("%d unhealthy lines for one change of state", n)
	}
}

// TestHealthChecksHeadersAndBody: health_headers go with each check and
// health_body must match its answer: an app whose /healthz answers 200
// with a body that does not match gets no upgrade, and gets them again
// once it matches.
func TestHealthChecksHeadersAndBody(t *testing.T) {
	t.Parallel()
	apps := []*app{newApp(t, appOpts{}), newApp(t, appOpts{})}
	c := newCaddy(t, caddyOpts{})
	c.Start(fmt.Sprintf(`http://:%d {
	websocket_relay %s %s {
		health_uri /healthz
		health_headers {
			X-Token t0k3n
		}
		health_body "^healthy t0k3n$"
		health_interval 100ms
	}
}
`, c.HTTPPort, apps[0].Addr, apps[1].Addr))
	f := &fixture{App: apps[0], Caddy: c}
	stateLines := func(msg string) []rt.LogEntry { return upstreamLines(c, msg, apps[0].Addr) }
	counts := func(n int) [2]int64 { return relaysPerApp(t, f, apps, n) }
	time.Sleep(300 * time.Millisecond) // checks with the token have passed
	if got := counts(4); got[0] == 0 || got[1] == 0 {
		t.Fatalf("both healthy (their bodies match only with the token sent): %v relays per app, want both used", got)
	}
	if n := len(stateLines("upstream unhealthy")); n != 0 {
		t.Fatalf("%d unhealthy lines while app 0 answered right", n)
	}
	apps[0].SetHealthBody("degraded")
	waitUntil(t, 5*time.Second, "app 0 logged unhealthy", func() bool { return len(stateLines("upstream unhealthy")) == 1 })
	if e := stateLines("upstream unhealthy")[0]; !strings.Contains(e.Str("error"), "does not match") {
		t.Errorf("unhealthy line's error %q, want the body's mismatch", e.Str("error"))
	}
	if got := counts(6); got[0] != 0 || got[1] != 6 {
		t.Fatalf("app 0 unhealthy: %v relays per app, want all 6 on app 1", got)
	}
	apps[0].SetHealthBody("healthy")
	waitUntil(t, 5*time.Second, "app 0 logged healthy", func() bool { return len(stateLines("upstream healthy")) == 1 })
	if got := counts(4); got[0] == 0 || got[1] == 0 {
		t.Fatalf("app 0 healthy again: %v relays per app, want both used", got)
	}
}

// TestTryAgain: with lb_try_duration an upgrade whose upstream is down
// (a backend restarting in a deploy) waits for it, every
// lb_try_interval, and is relayed once it is up; with lb_retries it is
// tried that many times more, then refused; without either, refused at
// once.
func TestTryAgain(t *testing.T) {
	t.Parallel()
	down := freeAddr(t)  // never up
	later := freeAddr(t) // up after a while
	c := newCaddy(t, caddyOpts{})
	c.Start(fmt.Sprintf(`http://:%d {
	websocket_relay /nowait/* %s
	websocket_relay /retries/* %s {
		lb_retries 2
		lb_try_interval 200ms
	}
	websocket_relay /wait/* %s {
		lb_try_duration 5s
		lb_try_interval 100ms
	}
}
`, c.HTTPPort, down, down, later))
	f := &fixture{Caddy: c}
	dial := func(path string) (*cws.Conn, *http.Response, time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		conn, resp, err := cws.Dial(ctx, f.URL(false, path), &cws.DialOptions{HTTPClient: c.HTTPClient()})
		return conn, resp, time.Since(start), err
	}
	_, resp, took, err := dial("/nowait/echo")
	if err == nil || !strings.HasPrefix(statusOf(resp), "502") || took > time.Second {
		t.Fatalf("no retries: %v, status %s after %s; want 502 at once", err, statusOf(resp), took)
	}
	_, resp, took, err = dial("/retries/echo")
	if err == nil || !strings.HasPrefix(statusOf(resp), "502") || took < 400*time.Millisecond || took > 2*time.Second {
		t.Fatalf("lb_retries 2, 200ms apart: %v, status %s after %s; want 502 after 400ms", err, statusOf(resp), took)
	}
	waitUntil(t, 5*time.Second, "the refusal's log line", func() bool {
		return len(c.Logs(func(e rt.LogEntry) bool {
			return e.Str("msg") == "no upstream reachable" && strings.Contains(e.Str("error"), "3 tries over")
		})) == 1
	})

	type result struct {
		conn *cws.Conn
		resp *http.Response
		took time.Duration
		err  error
	}
	got := make(chan result, 1)
	go func() {
		conn, resp, took, err := dial("/wait/echo")
		got <- result{conn, resp, took, err}
	}()
	time.Sleep(600 * time.Millisecond)
	app := newApp(t, appOpts{Listen: later})
	r := <-got
	if r.err != nil {
		t.Fatalf("lb_try_duration 5s, the backend up after 600ms: %v (status %s)", r.err, statusOf(r.resp))
	}
	defer r.conn.CloseNow()
	if r.took < 600*time.Millisecond {
		t.Errorf("relayed after %s, before the backend was up", r.took)
	}
	echoOnce(t, r.conn, "after the wait")
	if n := app.Accepted.Load(); n != 1 {
		t.Errorf("the backend accepted %d relays, want 1", n)
	}
}

// TestConnectionCap: with unhealthy_request_count an upstream holding
// that many relays gets no more: an upgrade goes to another, or, when
// every upstream is full, gets 503 with its reason (or, with
// lb_try_duration, waits for a relay to end); once one ends, the next
// is relayed.
func TestConnectionCap(t *testing.T) {
	t.Parallel()
	apps := []*app{newApp(t, appOpts{}), newApp(t, appOpts{})}
	c := newCaddy(t, caddyOpts{})
	c.Start(fmt.Sprintf(`http://:%d {
	websocket_relay /capped/* %s %s {
		lb_policy first
		unhealthy_request_count 2
	}
	websocket_relay /waits/* %s {
		unhealthy_request_count 2
		lb_try_duration 5s
		lb_try_interval 50ms
	}
}
`, c.HTTPPort, apps[0].Addr, apps[1].Addr, apps[0].Addr))
	f := &fixture{Caddy: c}
	var open []*cws.Conn
	for i := range 4 {
		conn, _ := f.dialCoder(t, false, "/capped/echo", nil)
		echoOnce(t, conn, fmt.Sprint("relay ", i))
		open = append(open, conn)
	}
	if a, b := apps[0].Accepted.Load(), apps[1].Accepted.Load(); a != 2 || b != 2 {
		t.Fatalf("4 relays over 2 upstreams capped at 2: %d and %d", a, b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := cws.Dial(ctx, f.URL(false, "/capped/echo"), &cws.DialOptions{HTTPClient: c.HTTPClient()})
	if err == nil || !strings.HasPrefix(statusOf(resp), "503") {
		t.Fatalf("a fifth: %v, status %s; want 503", err, statusOf(resp))
	}
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "every upstream is at its connection limit") {
		t.Errorf("the 503's body %q says not why", body)
	}

	// The waiting route shares app 0's count (2 relays now): full.
	got := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, _, err := cws.Dial(ctx, f.URL(false, "/waits/echo"), &cws.DialOptions{HTTPClient: c.HTTPClient()})
		if err == nil {
			conn.CloseNow()
		}
		got <- err
	}()
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-got:
		t.Fatalf("an upgrade to a full upstream with lb_try_duration ended (%v) before a relay did", err)
	default:
	}
	before := apps[0].Accepted.Load()
	open[0].Close(cws.StatusNormalClosure, "") // app 0's first relay (lb_policy first)
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("after a relay ended: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting upgrade was not relayed after a relay ended")
	}
	// The app counts a relay once its Upgrade returned, which may be
	// after the client read the 101.
	waitUntil(t, 2*time.Second, "app 0 counting the waiting upgrade", func() bool { return apps[0].Accepted.Load() == before+1 })
}

// freeAddr is a loopback address where nothing listens (now).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// upstreamLines are c's log lines with message msg about upstream.
func upstreamLines(c *caddyProc, msg, upstream string) []rt.LogEntry {
	return c.Logs(func(e rt.LogEntry) bool { return e.Str("msg") == msg && e.Str("upstream") == upstream })
}

// relaysPerApp opens n relays through f's /echo, one after another (each
// echoes once and closes), and says how many each of the two apps
// accepted.
func relaysPerApp(t *testing.T, f *fixture, apps []*app, n int) [2]int64 {
	t.Helper()
	before := [2]int64{apps[0].Accepted.Load(), apps[1].Accepted.Load()}
	for range n {
		conn, _ := f.dialCoder(t, false, "/echo", nil)
		echoOnce(t, conn, "health")
		conn.Close(cws.StatusNormalClosure, "")
	}
	return [2]int64{apps[0].Accepted.Load() - before[0], apps[1].Accepted.Load() - before[1]}
}

// waitUntil polls cond every 20 ms for up to d.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("not within %s: %s", d, what)
		}
	}
}
