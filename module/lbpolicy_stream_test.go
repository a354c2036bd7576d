package wsrelay

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
)

// TestHeaderPolicyStreamAsUpgrade: `lb_policy header Upgrade` (or
// Connection) picks for an HTTP/2 or HTTP/3 extended CONNECT the backend
// it picks for the same user's HTTP/1.1 upgrade, as reverse_proxy does:
// reverse_proxy selects on its request turned into the HTTP/1.1 upgrade
// (Connection: Upgrade, Upgrade: websocket set, reverseproxy.go:524-537).
func TestHeaderPolicyStreamAsUpgrade(t *testing.T) {
	var list []relayconfig.Upstream
	for i := range 5 {
		list = append(list, relayconfig.Upstream{Raw: fmt.Sprint(i), Addr: fmt.Sprintf("10.0.0.%d:80", i)})
	}
	for _, field := range []string{"Upgrade", "Connection"} {
		p := newUpstreamPool(list, &relayconfig.LBPolicy{Policy: "header", Field: field,
			Fallback: &relayconfig.LBPolicy{Policy: "round_robin"}})
		h1 := httptest.NewRequest(http.MethodGet, "/chat", nil)
		h1.Header.Set("Connection", "Upgrade")
		h1.Header.Set("Upgrade", "websocket")
		h1.Header.Set("Sec-WebSocket-Version", "13")
		want := p.order(h1, time.Now())[0]
		h2 := httptest.NewRequest(http.MethodConnect, "/chat", nil)
		h2.Proto, h2.ProtoMajor, h2.ProtoMinor = "HTTP/2.0", 2, 0
		h2.Header.Set(":protocol", "websocket")
		h2.Header.Set("Sec-WebSocket-Version", "13")
		h3 := httptest.NewRequest(http.MethodConnect, "/chat", nil)
		h3.Proto, h3.ProtoMajor, h3.ProtoMinor = "websocket", 3, 0
		h3.Header.Set("Sec-WebSocket-Version", "13")
		for i := range 5 {
			for name, r := range map[string]*http.Request{"HTTP/2": h2, "HTTP/3": h3} {
				if got := p.order(r, time.Now())[0]; got != want {
					t.Fatalf("header %s, %s try %d: picked %d, HTTP/1.1 (and reverse_proxy) pick %d", field, name, i, got, want)
				}
			}
		}
	}
}
