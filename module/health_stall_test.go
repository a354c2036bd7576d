package wsrelay

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
)

// TestHealthChecksEachOnItsOwn: every health_interval each upstream is
// checked, whatever the others do: one that does not answer holds back
// no other's checks (rounds of all checks at once did, for a whole
// health_timeout, as reverse_proxy's checks do not).
func TestHealthChecksEachOnItsOwn(t *testing.T) {
	var hits atomic.Int64
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer good.Close()
	silent := stubServe(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	provisionHealth(t, &relayconfig.HealthChecks{URI: "/healthz", Interval: caddy.Duration(100 * time.Millisecond),
		Timeout: caddy.Duration(3 * time.Second)}, strings.TrimPrefix(good.URL, "http://"), silent)
	time.Sleep(1500 * time.Millisecond)
	if n := hits.Load(); n < 10 {
		t.Errorf("the good upstream was checked %d times in 1.5 s at a 100 ms interval", n)
	}
}
