package wsrelay

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/gorilla/websocket"

	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
)

// seenRequest is what a test's health endpoint saw of a check.
type seenRequest struct {
	method, host, uri, body string
	header                  http.Header
}

// recordingServer serves status (and body) to every request, and keeps
// the requests it saw.
type recordingServer struct {
	srv    *httptest.Server
	mu     sync.Mutex
	seen   []seenRequest
	status atomic.Int32
	body   atomic.Value
}

func newRecordingServer(t *testing.T, route func(w http.ResponseWriter, r *http.Request) bool) *recordingServer {
	t.Helper()
	rs := &recordingServer{}
	rs.status.Store(200)
	rs.body.Store("")
	rs.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rs.mu.Lock()
		rs.seen = append(rs.seen, seenRequest{r.Method, r.Host, r.URL.RequestURI(), string(b), r.Header.Clone()})
		rs.mu.Unlock()
		if route != nil && route(w, r) {
			return
		}
		w.WriteHeader(int(rs.status.Load()))
		_, _ = io.WriteString(w, rs.body.Load().(string))
	}))
	t.Cleanup(rs.srv.Close)
	return rs
}

func (rs *recordingServer) addr() string { return strings.TrimPrefix(rs.srv.URL, "http://") }

func (rs *recordingServer) requests() []seenRequest {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return append([]seenRequest(nil), rs.seen...)
}

// TestHealthChecksRequestOptions: health_method, health_request_body and
// health_headers shape each check as reverse_proxy's: a body's global
// placeholders are replaced and its JSON braces kept, a header's value
// may name the checked upstream, a Host line sets the Host, a header
// name may be a placeholder, and User-Agent can be replaced.
func TestHealthChecksRequestOptions(t *testing.T) {
	t.Setenv("WSR_HC_TOKEN", "s3cret")
	t.Setenv("WSR_HC_NAME", "X-Named")
	rs := newRecordingServer(t, nil)
	h := provisionHealth(t, &relayconfig.HealthChecks{
		URI: "/healthz", Interval: caddy.Duration(50 * time.Millisecond),
		Method: "POST", Body: `{"probe":"{env.WSR_HC_TOKEN}","n":{"a":1}}`,
		Headers: http.Header{
			"host":              {"health.internal"},
			"X-Token":           {"{env.WSR_HC_TOKEN}@{http.reverse_proxy.active.target_upstream}"},
			"User-Agent":        {"probe/1"},
			"{env.WSR_HC_NAME}": {"named"},
			"X-Two":             {"a", "b"},
			"X-Unknown":         {"{not.a.placeholder}"},
			"Sec-Websocket-Key": {"as configured"},
		},
	}, rs.addr())
	waitFor(t, 2*time.Second, "a check", func() bool { return len(rs.requests()) > 0 })
	got := rs.requests()[0]
	want := seenRequest{method: "POST", host: "health.internal", uri: "/healthz", body: `{"probe":"s3cret","n":{"a":1}}`}
	if got.method != want.method || got.host != want.host || got.uri != want.uri || got.body != want.body {
		t.Errorf("check %s %s %s body %q, want %s %s %s body %q", got.method, got.host, got.uri, got.body,
			want.method, want.host, want.uri, want.body)
	}
	for name, vals := range map[string][]string{
		"X-Token":               {"s3cret@" + rs.addr()},
		"User-Agent":            {"probe/1"},
		"X-Named":               {"named"},
		"X-Two":                 {"a", "b"},
		"X-Unknown":             {"{not.a.placeholder}"},
		"Sec-Websocket-Key":     {"as configured"}, // a GET check: only what is configured
		"Upgrade":               nil,
		"Sec-Websocket-Version": nil,
	} {
		if g := got.header.Values(name); strings.Join(g, "|") != strings.Join(vals, "|") {
			t.Errorf("%s: %q, want %q", name, g, vals)
		}
	}
	if h.pool.unhealthy[0].Load() {
		t.Error("the upstream answering 200 is unhealthy")
	}
}

// TestHealthChecksExpectBody: with health_body, a healthy answer's body
// matches the expression, within max_size bytes; one that does not
// match, or matches only past max_size, is unhealthy.
func TestHealthChecksExpectBody(t *testing.T) {
	rs := newRecordingServer(t, nil)
	rs.body.Store(`{"status":"ok"}`)
	h := provisionHealth(t, &relayconfig.HealthChecks{URI: "/healthz", Interval: caddy.Duration(30 * time.Millisecond),
		ExpectBody: `"status":\s*"ok"`}, rs.addr())
	waitFor(t, 2*time.Second, "a check", func() bool { return len(rs.requests()) > 0 })
	time.Sleep(100 * time.Millisecond)
	if h.pool.unhealthy[0].Load() {
		t.Fatal("a matching body: unhealthy")
	}
	rs.body.Store(`{"status":"degraded"}`)
	waitFor(t, 2*time.Second, "unhealthy on a body that does not match", func() bool { return h.pool.unhealthy[0].Load() })
	rs.body.Store(`{"status":"ok"}`)
	waitFor(t, 2*time.Second, "healthy again", func() bool { return !h.pool.unhealthy[0].Load() })

	far := newRecordingServer(t, nil)
	far.body.Store(strings.Repeat(" ", 100) + `"status":"ok"`)
	h2 := provisionHealth(t, &relayconfig.HealthChecks{URI: "/healthz", Interval: caddy.Duration(30 * time.Millisecond),
		ExpectBody: `"status":"ok"`, MaxSize: 64}, far.addr())
	waitFor(t, 2*time.Second, "unhealthy: the match lies past max_size", func() bool { return h2.pool.unhealthy[0].Load() })
}

// TestHealthChecksPortAndUpstream: health_port checks each upstream's
// host on another port, with that port in Host; health_upstream sends
// every upstream's check to one address, which the target placeholder
// tells apart; neither touches the upstream's own port.
func TestHealthChecksPortAndUpstream(t *testing.T) {
	app := newRecordingServer(t, nil)
	app.status.Store(500) // its own port answers checks 500
	health := newRecordingServer(t, nil)
	_, port, _ := net.SplitHostPort(health.addr())
	p := 0
	for _, c := range port {
		p = p*10 + int(c-'0')
	}
	h := provisionHealth(t, &relayconfig.HealthChecks{URI: "/healthz", Interval: caddy.Duration(50 * time.Millisecond), Port: p},
		"ws://"+app.addr()+"/app")
	waitFor(t, 2*time.Second, "a check on the health port", func() bool { return len(health.requests()) > 0 })
	if got := health.requests()[0]; got.host != "127.0.0.1:"+port || got.uri != "/app/healthz" {
		t.Errorf("health_port check: Host %s, URI %s; want 127.0.0.1:%s, /app/healthz", got.host, got.uri, port)
	}
	if n := len(app.requests()); n != 0 {
		t.Errorf("the upstream's own port got %d checks", n)
	}
	if h.pool.unhealthy[0].Load() {
		t.Error("healthy on its health port, but unhealthy")
	}

	probe := newRecordingServer(t, nil)
	closed := closedPort(t)
	h2 := provisionHealth(t, &relayconfig.HealthChecks{URI: "/healthz", Interval: caddy.Duration(50 * time.Millisecond),
		Upstream: probe.addr(), Headers: http.Header{"X-Target": {"{http.reverse_proxy.active.target_upstream}"}}},
		closed, "unix//tmp/no-such.sock")
	waitFor(t, 2*time.Second, "both upstreams checked at the health upstream", func() bool {
		seen := map[string]bool{}
		for _, r := range probe.requests() {
			seen[r.header.Get("X-Target")] = true
		}
		return seen[closed] && seen["unix//tmp/no-such.sock"]
	})
	for _, r := range probe.requests() {
		if r.host != probe.addr() {
			t.Fatalf("health_upstream check with Host %s, want %s", r.host, probe.addr())
		}
	}
	if h2.pool.unhealthy[0].Load() || h2.pool.unhealthy[1].Load() {
		t.Error("the health upstream answers 200, yet an upstream is unhealthy")
	}
}

// closedPort is a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestHealthChecksRedirects: a 3xx is the answer (not 2xx: unhealthy)
// unless health_follow_redirects, which follows them (as many as
// health_timeout allows, as reverse_proxy's) on the same upstream
// even when the Location names another host, keeping a Host given for
// a redirect on the same host.
func TestHealthChecksRedirects(t *testing.T) {
	route := func(w http.ResponseWriter, r *http.Request) bool {
		switch r.URL.Path {
		case "/healthz":
			http.Redirect(w, r, "/real", http.StatusFound)
		case "/real":
			http.Redirect(w, r, "http://elsewhere.invalid/final", http.StatusTemporaryRedirect)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		default:
			return false
		}
		return true
	}
	rs := newRecordingServer(t, route)
	h := provisionHealth(t, &relayconfig.HealthChecks{URI: "/healthz", Interval: caddy.Duration(50 * time.Millisecond)}, rs.addr())
	waitFor(t, 2*time.Second, "a 302 unhealthy", func() bool { return h.pool.unhealthy[0].Load() })

	rs2 := newRecordingServer(t, route)
	h2 := provisionHealth(t, &relayconfig.HealthChecks{URI: "/healthz", Interval: caddy.Duration(time.Hour),
		FollowRedirects: true, Headers: http.Header{"Host": {"app.example"}}}, rs2.addr())
	waitFor(t, 2*time.Second, "three requests of one check", func() bool { return len(rs2.requests()) >= 3 })
	var got []string
	for _, r := range rs2.requests() {
		got = append(got, r.method+" "+r.host+" "+r.uri)
	}
	want := []string{"GET app.example /healthz", "GET app.example /real", "GET elsewhere.invalid /final"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("redirects followed: %q, want %q", got, want)
	}
	time.Sleep(50 * time.Millisecond)
	if h2.pool.unhealthy[0].Load() {
		t.Error("the redirects end on a 200, yet unhealthy")
	}

	rs3 := newRecordingServer(t, route)
	h3 := provisionHealth(t, &relayconfig.HealthChecks{URI: "/loop", Interval: caddy.Duration(time.Hour), FollowRedirects: true,
		Timeout: caddy.Duration(300 * time.Millisecond)}, rs3.addr())
	waitFor(t, 2*time.Second, "unhealthy at the timeout", func() bool { return h3.pool.unhealthy[0].Load() })
	if n := len(rs3.requests()); n <= 10 {
		t.Errorf("a redirect loop: %d requests, want it followed until health_timeout, as reverse_proxy's", n)
	}
}

// TestHealthChecksUpgradeHeaders: an upgrade check carries the
// configured headers (an Origin an endpoint requires) but never loses
// its own upgrade fields to them.
func TestHealthChecksUpgradeHeaders(t *testing.T) {
	var origins atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origins.Store(r.Header.Get("Origin"))
		up := websocket.Upgrader{CheckOrigin: func(r *http.Request) bool { return r.Header.Get("Origin") == "https://app.example" }}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		_, _, _ = c.ReadMessage()
		c.Close()
	}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	h := provisionHealth(t, &relayconfig.HealthChecks{URI: "/ws", Upgrade: true, Interval: caddy.Duration(50 * time.Millisecond),
		Headers: http.Header{"Origin": {"https://app.example"}, "Sec-Websocket-Key": {"bogus"}, "Upgrade": {"h2c"}}}, addr)
	waitFor(t, 2*time.Second, "a check", func() bool { return origins.Load() != nil })
	time.Sleep(150 * time.Millisecond)
	if h.pool.unhealthy[0].Load() {
		t.Fatal("an upgrade check with the Origin the endpoint wants: unhealthy")
	}
	h2 := provisionHealth(t, &relayconfig.HealthChecks{URI: "/ws", Upgrade: true, Interval: caddy.Duration(50 * time.Millisecond)}, addr)
	waitFor(t, 2*time.Second, "without the Origin, refused: unhealthy", func() bool { return h2.pool.unhealthy[0].Load() })
}
