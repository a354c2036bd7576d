package wsrelay

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/gorilla/websocket"
	"go.uber.org/zap"

	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
)

// provisionHealth provisions a handler for upstreams with hc, and
// cleans it up at the test's end.
func provisionHealth(t *testing.T, hc *relayconfig.HealthChecks, upstreams ...string) *Handler {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	h := &Handler{Options: relayconfig.Options{Upstreams: upstreams, HealthChecks: hc, DrainPeriod: -1}}
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	return h
}

// waitFor polls cond every 10 ms for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("not within %s: %s", d, what)
		}
	}
}

// TestHealthChecksGET: an upstream whose health URI answers other than
// the expected status becomes unhealthy and goes last in every order,
// and healthy again once it answers right; the checks are GETs of the
// URI under the upstream's path, with its Host.
func TestHealthChecksGET(t *testing.T) {
	var status [2]atomic.Int32
	var lastReq [2]atomic.Value
	var addrs []string
	for i := range 2 {
		status[i].Store(200)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			lastReq[i].Store(r.Method + " " + r.Host + " " + r.URL.RequestURI() + " " + r.Header.Get("User-Agent"))
			w.WriteHeader(int(status[i].Load()))
		}))
		t.Cleanup(srv.Close)
		addrs = append(addrs, strings.TrimPrefix(srv.URL, "http://"))
	}
	h := provisionHealth(t, &relayconfig.HealthChecks{URI: "/healthz?deep=1", Interval: caddy.Duration(50 * time.Millisecond)},
		addrs[0], "ws://"+addrs[1]+"/app")
	waitFor(t, 2*time.Second, "both checked", func() bool { return lastReq[0].Load() != nil && lastReq[1].Load() != nil })
	if got, want := lastReq[1].Load(), "GET "+addrs[1]+" /app/healthz?deep=1 websocket_relay health check"; got != want {
		t.Errorf("check request %q, want %q", got, want)
	}
	status[0].Store(503)
	waitFor(t, 2*time.Second, "upstream 0 unhealthy", func() bool { return h.pool.unhealthy[0].Load() })
	for range 4 {
		if o := h.pool.order(nil, time.Now()); !slices.Equal(o, []int{1, 0}) {
			t.Fatalf("upstream 0 unhealthy: order %v, want it last", o)
		}
	}
	status[0].Store(204) // any 2xx by default
	waitFor(t, 2*time.Second, "upstream 0 healthy again", func() bool { return !h.pool.unhealthy[0].Load() })
	seen := map[int]bool{}
	for range 4 {
		seen[h.pool.order(nil, time.Now())[0]] = true
	}
	if len(seen) != 2 {
		t.Fatalf("both healthy: round-robin started only with %v", seen)
	}
}

// TestHealthChecksCount: Fails failed checks in a row make an upstream
// unhealthy, Passes passed ones healthy again; a result that agrees with
// the state starts the count over.
func TestHealthChecksCount(t *testing.T) {
	h := &Handler{Options: relayconfig.Options{Upstreams: []string{"a:1"}}}
	h.pool = newUpstreamPool([]relayconfig.Upstream{{Raw: "a:1", Addr: "a:1", Network: "tcp"}}, nil)
	h.logger = zap.NewNop()
	c := &healthChecker{h: h, cfg: &relayconfig.HealthChecks{Fails: 3, Passes: 2}, streak: make([]int, 1)}
	bad := errors.New("503")
	steps := []struct {
		err       error
		unhealthy bool
	}{
		{bad, false}, {bad, false}, {nil, false}, {bad, false}, {bad, false}, {bad, true},
		{nil, true}, {bad, true}, {nil, true}, {nil, false}, {bad, false},
	}
	for i, s := range steps {
		c.record(0, s.err)
		if got := h.pool.unhealthy[0].Load(); got != s.unhealthy {
			t.Fatalf("after check %d (%v): unhealthy %v, want %v", i, s.err, got, s.unhealthy)
		}
	}
}

// TestHealthChecksUpgrade: with health_upgrade a check is a WebSocket
// upgrade that must get a valid 101, closed at once with 1001; an
// upstream that refuses the upgrade, or answers 101 with a wrong
// Sec-WebSocket-Accept, is unhealthy.
func TestHealthChecksUpgrade(t *testing.T) {
	closes := make(chan string, 10)
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		_, _, err = c.ReadMessage()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			select {
			case closes <- ce.Error():
			default:
			}
		}
	}))
	t.Cleanup(good.Close)
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK) // a page, not a 101
	}))
	t.Cleanup(refusing.Close)
	wrongAccept := stubServe(t, func(c net.Conn) {
		defer c.Close()
		buf := make([]byte, 4096)
		_, _ = c.Read(buf)
		_, _ = c.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: bm90IHRoZSBhY2NlcHQ=\r\n\r\n"))
	})
	h := provisionHealth(t, &relayconfig.HealthChecks{URI: "/ws", Upgrade: true, Interval: caddy.Duration(50 * time.Millisecond)},
		strings.TrimPrefix(good.URL, "http://"), strings.TrimPrefix(refusing.URL, "http://"), wrongAccept)
	waitFor(t, 2*time.Second, "the refusing and the wrong-accept upstreams unhealthy", func() bool {
		return h.pool.unhealthy[1].Load() && h.pool.unhealthy[2].Load()
	})
	if h.pool.unhealthy[0].Load() {
		t.Fatal("the upstream that upgrades is unhealthy")
	}
	select {
	case got := <-closes:
		if !strings.Contains(got, "1001") || !strings.Contains(got, "health check") {
			t.Errorf("the check closed with %q, want 1001 health check", got)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no close frame from the check")
	}
}

// TestHealthChecksTimeoutAndCleanup: an upstream that accepts and never
// answers is unhealthy once the timeout passes; Cleanup ends a check
// under way at once, and no check follows it.
func TestHealthChecksTimeoutAndCleanup(t *testing.T) {
	var accepted atomic.Int32
	silent := func() string {
		return stubServe(t, func(c net.Conn) {
			accepted.Add(1)
			_, _ = io.Copy(io.Discard, c) // until the check gives up
			c.Close()
		})
	}
	h := provisionHealth(t, &relayconfig.HealthChecks{URI: "/healthz", Interval: caddy.Duration(100 * time.Millisecond),
		Timeout: caddy.Duration(300 * time.Millisecond)}, silent())
	start := time.Now()
	waitFor(t, 2*time.Second, "the silent upstream unhealthy", func() bool { return h.pool.unhealthy[0].Load() })
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("unhealthy after %s, before its timeout", d)
	}
	if err := h.Cleanup(); err != nil {
		t.Fatal(err)
	}
	n := accepted.Load()
	h2 := provisionHealth(t, &relayconfig.HealthChecks{URI: "/healthz", Interval: caddy.Duration(time.Hour),
		Timeout: caddy.Duration(time.Hour)}, silent())
	waitFor(t, 2*time.Second, "the second handler's check under way", func() bool { return accepted.Load() > n })
	start = time.Now()
	if err := h2.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Cleanup took %s with a check of an hour's timeout under way", d)
	}
	n = accepted.Load()
	time.Sleep(400 * time.Millisecond)
	if accepted.Load() != n {
		t.Fatalf("%d checks after Cleanup", accepted.Load()-n)
	}
}
