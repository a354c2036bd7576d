package wsrelay

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/coder/websocket"

	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/standard"
)

// echoBackend is a coder/websocket echo server that records the close
// code each of its connections ended with.
type echoBackend struct {
	*httptest.Server
	mu     sync.Mutex
	closes []websocket.StatusCode
	ended  chan struct{}
}

func newEchoBackend(t *testing.T) *echoBackend {
	t.Helper()
	b := &echoBackend{ended: make(chan struct{}, 1024)}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		ctx := context.Background()
		for {
			typ, msg, err := c.Read(ctx)
			if err != nil {
				b.mu.Lock()
				b.closes = append(b.closes, websocket.CloseStatus(err))
				b.mu.Unlock()
				b.ended <- struct{}{}
				return
			}
			if err := c.Write(ctx, typ, msg); err != nil {
				return
			}
		}
	}))
	t.Cleanup(b.Close)
	return b
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// loadRelay runs Caddy in this process with one relay route to upstream.
func loadRelay(t *testing.T, port int, upstream string, drain string) {
	t.Helper()
	// Metrics on: Caddy then counts response bytes of the hijacked
	// connection, which must not race with the relay's writes.
	loadServer(t, port, map[string]any{"metrics": map[string]any{}}, relayRoute("", upstream, "drain_period", drain))
}

// TestStopClosesEveryRelay opens relayed connections, unloads the config,
// and checks that every client and every backend got a close frame 1012,
// that the closes were spread over the drain period, and that no goroutine
// of the relay is left behind.
func TestStopClosesEveryRelay(t *testing.T) {
	backend := newEchoBackend(t)
	baseline := runtime.NumGoroutine()
	port := freePort(t)
	loadRelay(t, port, backend.Listener.Addr().String(), "2s")

	const n = 20
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	results := make(chan error, n)
	for i := 0; i < n; i++ {
		c, _, err := websocket.Dial(ctx, fmt.Sprintf("ws://127.0.0.1:%d/", port), nil)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		if err := c.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
			t.Fatal(err)
		}
		if _, msg, err := c.Read(ctx); err != nil || string(msg) != "hi" {
			t.Fatalf("echo %d: %q %v", i, msg, err)
		}
		go func() {
			_, _, err := c.Read(ctx)
			results <- err
		}()
	}
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	// caddy.Stop is a config unload, not an exit: 1012 on both legs,
	// spread over the 2 s drain period.
	var first, last time.Time
	for i := 0; i < n; i++ {
		err := <-results
		if i == 0 {
			first = time.Now()
		}
		last = time.Now()
		if got := websocket.CloseStatus(err); got != websocket.StatusServiceRestart {
			t.Errorf("client %d ended with %v, want close 1012", i, err)
		}
	}
	if spread := last.Sub(first); spread < time.Second || spread > 3*time.Second {
		t.Errorf("closes spread over %v, want about 2s (the drain period)", spread)
	}
	for i := 0; i < n; i++ {
		select {
		case <-backend.ended:
		case <-ctx.Done():
			t.Fatalf("only %d of %d backend connections ended", i, n)
		}
	}
	backend.mu.Lock()
	for i, code := range backend.closes {
		if code != websocket.StatusServiceRestart {
			t.Errorf("backend connection %d got %d, want 1012", i, code)
		}
	}
	backend.mu.Unlock()
	waitGoroutines(t, baseline)
}

// waitGoroutines waits until the goroutine count is back to baseline
// (plus a small allowance for the runtime and the HTTP test server).
func waitGoroutines(t *testing.T, baseline int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := runtime.NumGoroutine()
		if got <= baseline+2 {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines, baseline %d:\n%s", got, baseline, buf)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSpreadKeepsToSchedule: a drain's closes keep to their schedule:
// none before its time, and the last within the period however many
// there are and whatever each costs (relative steps added every wake's
// overshoot: 5,000 relays over 5 s took 7.8 s).
func TestSpreadKeepsToSchedule(t *testing.T) {
	const n = 5000
	period := 500 * time.Millisecond
	start := time.Now()
	var calls []time.Duration
	spread(n, period, make(chan struct{}), func(i int) {
		at := time.Since(start)
		if due := time.Duration(i) * period / n; at < due {
			t.Errorf("close %d at %v, before its time %v", i, at, due)
		}
		calls = append(calls, at)
		for t0 := time.Now(); time.Since(t0) < 20*time.Microsecond; { // a close's own cost
		}
	})
	if len(calls) != n {
		t.Fatalf("%d closes, want %d", len(calls), n)
	}
	if last := calls[n-1]; last > period+50*time.Millisecond {
		t.Errorf("last close at %v, want within the period %v (+50 ms)", last, period)
	}
	if mid := calls[n/2]; mid < period/2-time.Millisecond || mid > period/2+50*time.Millisecond {
		t.Errorf("middle close at %v, want about %v: spread, not bunched", mid, period/2)
	}
	stop := make(chan struct{})
	close(stop)
	called := 0
	spread(10, time.Second, stop, func(int) { called++ })
	if called != 0 {
		t.Errorf("%d closes after stop", called)
	}
}
