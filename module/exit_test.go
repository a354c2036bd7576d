package wsrelay

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/coder/websocket"
	"go.uber.org/zap"

	"github.com/websocket-relay/websocket_relay/module/engine"
	"github.com/websocket-relay/websocket_relay/module/upgrade"
)

// asExiting makes the handlers' Cleanup act as on the process's exit.
func asExiting(t *testing.T) {
	exiting = func() bool { return true }
	t.Cleanup(func() {
		exiting = caddy.Exiting
		open.Lock()
		open.exiting, open.code, open.reason = false, 0, ""
		open.Unlock()
	})
}

// stubServe listens on 127.0.0.1 and hands every accepted connection to
// serve, on a goroutine of its own; cleanup closes the listener.
func stubServe(t *testing.T, serve func(net.Conn)) string {
	return serveOn(t, "tcp", "127.0.0.1:0", serve)
}

// serveOn listens on network and address (a Unix socket's path, say) and
// hands every accepted connection to serve, on a goroutine of its own;
// cleanup closes the listener. It returns the address listened on.
func serveOn(t *testing.T, network, address string, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen(network, address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return ln.Addr().String()
}

// lateBackend answers each upgrade with 101 after delay, then reads
// forever and never answers a close frame. asked gets a value as each
// upgrade request comes in, ended as each connection closes.
func lateBackend(t *testing.T, delay time.Duration) (addr string, asked chan struct{}, ended chan time.Time) {
	asked, ended = make(chan struct{}, 16), make(chan time.Time, 16)
	addr = stubServe(t, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		asked <- struct{}{}
		time.Sleep(delay)
		fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", upgrade.AcceptFor(req.Header.Get("Sec-WebSocket-Key")))
		_, _ = io.Copy(io.Discard, br)
		ended <- time.Now()
	})
	return addr, asked, ended
}

// relayRoute is a route to a websocket_relay handler for upstream, with
// close_timeout 1s and then opts as option, value pairs; for requests to
// path, or to every path when path is "".
func relayRoute(path, upstream string, opts ...string) map[string]any {
	handler := map[string]any{"handler": "websocket_relay", "upstreams": []string{upstream}, "close_timeout": "1s"}
	for i := 0; i+1 < len(opts); i += 2 {
		handler[opts[i]] = opts[i+1]
	}
	route := map[string]any{"handle": []any{handler}}
	if path != "" {
		route["match"] = []any{map[string]any{"path": []string{path}}}
	}
	return route
}

// loadRoutes loads a config of one server on port with routes.
func loadRoutes(t *testing.T, port int, routes ...any) {
	loadServer(t, port, map[string]any{}, routes...)
}

// loadServer loads a config of one server on port with routes, and app
// as the http app's settings (e.g. grace_period).
func loadServer(t *testing.T, port int, app map[string]any, routes ...any) {
	app["servers"] = map[string]any{"relay": map[string]any{
		"listen": []string{fmt.Sprintf("127.0.0.1:%d", port)},
		"routes": routes,
	}}
	cfg := map[string]any{
		"admin":   map[string]any{"disabled": true},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"level": "ERROR"}}},
		"apps":    map[string]any{"http": app},
	}
	raw, _ := json.Marshal(cfg)
	if err := caddy.Load(raw, true); err != nil {
		t.Fatalf("loading config: %v", err)
	}
}

type closeSeen struct {
	at     time.Time
	status websocket.StatusCode
}

func dialWatch(t *testing.T, ctx context.Context, url string) chan closeSeen {
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan closeSeen, 1)
	go func() {
		_, _, err := c.Read(ctx)
		ch <- closeSeen{time.Now(), websocket.CloseStatus(err)}
	}()
	return ch
}

// TestExitClosesAllHandlersAtOnce: two websocket_relay handlers in one
// config (two routes), one with a backend that never answers a close
// frame. On exit the relays of both get their 1001 at once: not the
// second's only once the first handler's Cleanup waited for its own.
func TestExitClosesAllHandlersAtOnce(t *testing.T) {
	stuck, _, _ := lateBackend(t, 0)
	echo := newEchoBackend(t)
	port := freePort(t)
	loadRoutes(t, port, relayRoute("/a", stuck), relayRoute("/b", echo.Listener.Addr().String()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a := dialWatch(t, ctx, fmt.Sprintf("ws://127.0.0.1:%d/a", port))
	b := dialWatch(t, ctx, fmt.Sprintf("ws://127.0.0.1:%d/b", port))
	time.Sleep(200 * time.Millisecond)
	asExiting(t)
	t0 := time.Now()
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	stopTook := time.Since(t0)
	ra, rb := <-a, <-b
	t.Logf("Stop took %v; client a got %d after %v; client b got %d after %v",
		stopTook, ra.status, ra.at.Sub(t0), rb.status, rb.at.Sub(t0))
	if d := max(ra.at.Sub(t0), rb.at.Sub(t0)); d > 500*time.Millisecond {
		t.Errorf("a client got its 1001 only %v after exit began: handlers shut down in turn", d)
	}
}

// TestExitWaitsForDrainedRelays: a reload whose drain ends at once (one
// relay) leaves that relay finishing its close handshake with a backend
// that never answers. An exit right after waits for it too, for as long
// as its own configuration says.
func TestExitWaitsForDrainedRelays(t *testing.T) {
	stuck, _, ended := lateBackend(t, 0)
	port := freePort(t)
	loadRoutes(t, port, relayRoute("/a", stuck, "close_timeout", "3s"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a := dialWatch(t, ctx, fmt.Sprintf("ws://127.0.0.1:%d/a", port))
	time.Sleep(200 * time.Millisecond)
	// Reload: the old handler's one relay gets its 1012 at once and
	// waits 3 s for the backend's answer. The new handler's own exit
	// bound (close_timeout + write_timeout + 1 s) is shorter: the exit
	// must wait for the old relay by its own handler's bound.
	loadRoutes(t, port, relayRoute("/a", stuck, "close_timeout", "100ms", "write_timeout", "100ms"))
	ra := <-a
	asExiting(t)
	t0 := time.Now()
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	stopTook := time.Since(t0)
	var relayEnd time.Duration
	select {
	case e := <-ended:
		relayEnd = e.Sub(t0)
	case <-time.After(5 * time.Second):
	}
	t.Logf("client got %d; exit Cleanup returned after %v; the old relay (backend never answers) ended %v after exit began",
		ra.status, stopTook, relayEnd)
	// The backend sees the end a moment after the relay's teardown,
	// which may come just after the wait saw the relay go.
	if relayEnd == 0 || relayEnd > stopTook+time.Second || relayEnd < 2*time.Second {
		t.Errorf("exit returned after %v, the old configuration's relay ended after %v", stopTook, relayEnd)
	}
}

// TestRegistryWait: an upgrade under way that fails, a deadline already
// passed, one that passes while a relay is live, and a relay ending
// before the deadline.
func TestRegistryWait(t *testing.T) {
	r := newRegistry(0)
	if !r.wait(time.Now().Add(-time.Second)) {
		t.Fatal("empty registry, past deadline: want true")
	}
	u := r.begin()
	t0 := time.Now()
	time.AfterFunc(50*time.Millisecond, func() { r.abort(u) })
	if !r.wait(time.Now().Add(2*time.Second)) || time.Since(t0) < 50*time.Millisecond {
		t.Fatalf("an upgrade under way that failed at 50ms: took %v", time.Since(t0))
	}
	s := new(engine.Session) // only a map key here
	u = r.begin()
	if r.wait(time.Now().Add(-time.Second)) {
		t.Fatal("an upgrade under way, past deadline: want false")
	}
	_, _, _ = r.add(u, s)
	r.abort(u) // after add: a no-op (as ServeHTTP's deferred abort)
	t0 = time.Now()
	if r.wait(time.Now().Add(-time.Second)) || time.Since(t0) > time.Second {
		t.Fatalf("live relay, past deadline: want false at once (took %v)", time.Since(t0))
	}
	t0 = time.Now()
	if r.wait(time.Now().Add(100*time.Millisecond)) || time.Since(t0) < 100*time.Millisecond || time.Since(t0) > time.Second {
		t.Fatalf("live relay, 100ms deadline: took %v", time.Since(t0))
	}
	time.AfterFunc(50*time.Millisecond, func() { r.remove(s) })
	t0 = time.Now()
	if !r.wait(time.Now().Add(2*time.Second)) || time.Since(t0) > 500*time.Millisecond {
		t.Fatalf("relay ending at 50ms: took %v", time.Since(t0))
	}
}

// TestLateRelayOnExit: an upgrade whose backend answers only after the
// server's grace period on exit becomes a relay once the exit's Cleanup
// began: it gets 1001 (going away), as every relay on exit, not a
// reload's 1012, and the exit waits for it as for every relay.
func TestLateRelayOnExit(t *testing.T) {
	up, asked, _ := lateBackend(t, 700*time.Millisecond)
	port := freePort(t)
	loadServer(t, port, map[string]any{"grace_period": "100ms"}, relayRoute("/a", up))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan closeSeen, 1)
	go func() {
		c, _, err := websocket.Dial(ctx, fmt.Sprintf("ws://127.0.0.1:%d/a", port), nil)
		if err != nil {
			t.Error(err)
			got <- closeSeen{status: -1}
			return
		}
		_, _, err = c.Read(ctx)
		got <- closeSeen{time.Now(), websocket.CloseStatus(err)}
	}()
	select { // the upgrade then waits for the backend's answer
	case <-asked:
	case <-ctx.Done():
		t.Fatal("the backend got no upgrade request")
	}
	asExiting(t)
	t0 := time.Now()
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	stopTook := time.Since(t0)
	r := <-got
	if r.status != websocket.StatusGoingAway {
		t.Errorf("a relay set up after the exit began got close %d, want 1001", r.status)
	}
	if seen := r.at.Sub(t0); seen > stopTook {
		t.Errorf("the exit returned after %v, before its last relay's client got its close frame (%v)", stopTook, seen)
	}
}

// TestRejectedAnswerDoesNotHoldExit: a backend's 403 copied to a client
// that does not read it is no upgrade under way (it can never become a
// relay), so the exit does not wait for it past the server's grace
// period (it waited until the registry's deadline, 3 s here).
func TestRejectedAnswerDoesNotHoldExit(t *testing.T) {
	up := bigRejectBackend(t, 32<<20)
	port := freePort(t)
	loadServer(t, port, map[string]any{"grace_period": "100ms"}, relayRoute("", up, "write_timeout", "1s"))
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	time.Sleep(500 * time.Millisecond) // the 403's body fills the socket buffers
	asExiting(t)
	t0 := time.Now()
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	took := time.Since(t0)
	t.Logf("exit took %v", took)
	if took > time.Second {
		t.Errorf("the exit waited %v for a rejected upgrade's answer to a client that does not read", took)
	}
}

// bigRejectBackend answers every upgrade with a 403 and a body of size bytes.
func bigRejectBackend(t *testing.T, size int) string {
	return stubServe(t, func(c net.Conn) {
		defer c.Close()
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		fmt.Fprintf(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: %d\r\n\r\n", size)
		_, _ = c.Write(make([]byte, size))
	})
}

// TestHeldRequestOnExit: a request held in earlier middleware past the
// server's grace period reaches a handler while the exit waits for
// another relay. Its relay gets 1001 and the exit waits for it too,
// whether its registry is an unloaded configuration's whose drain had
// ended (so the exit's list did not hold it; such a relay got the
// drain's 1012), or a loaded one the exit found empty, past the bound it
// would have had from then.
func TestHeldRequestOnExit(t *testing.T) {
	cases := map[string]func() *registry{
		"drained": func() *registry {
			r := newRegistry(time.Second)
			r.drain(engine.CodeServiceRestart, "service restart", 0) // empty: out of the open set
			return r
		},
		"empty at the exit": func() *registry { return newRegistry(700 * time.Millisecond) },
	}
	for name, late := range cases {
		t.Run(name, func(t *testing.T) {
			asExiting(t)
			lr := late()
			t.Cleanup(func() { lr.shutdown(0, "") }) // out of the open set, for the next tests
			cur := &Handler{live: newRegistry(3 * time.Second), logger: zap.NewNop()}
			u := cur.live.begin() // an upgrade under way holds the exit
			exited := make(chan time.Time, 1)
			go func() {
				_ = cur.Cleanup()
				exited <- time.Now()
			}()
			time.Sleep(900 * time.Millisecond) // the exit waits for cur now, past lr's bound
			lu := lr.begin()                   // the held request
			cur.live.abort(u)
			cRelay, cPeer := net.Pipe()
			bRelay, bPeer := net.Pipe()
			for _, c := range []net.Conn{cPeer, bPeer} {
				go func() { _, _ = io.Copy(io.Discard, c) }() // takes the close frames, never answers
				t.Cleanup(func() { c.Close() })
			}
			s := engine.New(engine.Leg{Conn: cRelay}, engine.Leg{Conn: bRelay}, engine.Config{CloseTimeout: 300 * time.Millisecond})
			ok, code, _ := lr.add(lu, s)
			if ok || code != engine.CodeGoingAway {
				t.Errorf("a relay set up during the exit: add gave ok=%v code %d, want false and 1001", ok, code)
			}
			s.Shutdown(code, "server shutting down")
			ended := make(chan time.Time, 1)
			s.Start(func(engine.Result) {
				ended <- time.Now()
				lr.remove(s)
			})
			select {
			case at := <-exited:
				select {
				case end := <-ended:
					if at.Before(end) {
						t.Fatalf("the exit returned %v before the late relay ended", end.Sub(at))
					}
				case <-time.After(5 * time.Second):
					t.Fatal("the late relay did not end")
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the exit did not return")
			}
		})
	}
}
