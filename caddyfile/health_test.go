package relaycaddyfile

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/websocket-relay/websocket_relay/caddyfile/directive"
	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
)

// TestHealthLinesAsReverseProxy: the health_* lines the relay shares
// with reverse_proxy give the JSON of reverse_proxy's active health
// checks, field for field, and lines both refuse are refused.
func TestHealthLinesAsReverseProxy(t *testing.T) {
	t.Parallel()
	parse := func(lines string) (rp, relay map[string]any, rpErr, relayErr error) {
		var h reverseproxy.Handler
		rpErr = h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("reverse_proxy a:1 b:1 {\n" + lines + "\n}"))
		if rpErr == nil {
			b, _ := json.Marshal(h.HealthChecks.Active)
			_ = json.Unmarshal(b, &rp)
		}
		var o relayconfig.Options
		relayErr = directive.Unmarshal(caddyfile.NewTestDispenser("websocket_relay a:1 b:1 {\n"+lines+"\n}"), &o)
		if relayErr == nil {
			b, _ := json.Marshal(o.HealthChecks)
			_ = json.Unmarshal(b, &relay)
		}
		return rp, relay, rpErr, relayErr
	}
	same := []string{
		"health_uri /healthz?deep=1\nhealth_interval 10s\nhealth_timeout 2s\nhealth_status 204\nhealth_passes 2\nhealth_fails 3",
		"health_uri /h\nhealth_status 2xx",
		"health_uri /h\nhealth_port 9000",
		"health_uri /h\nhealth_upstream 10.0.0.9:8080",
		"health_uri /h\nhealth_headers {\n\tHost health.internal\n\tX-Token {env.TOKEN}\n\tX-Two a b\n\tX-Two c\n\tX-Empty\n}",
		"health_uri /h\nhealth_method POST\nhealth_request_body `{\"deep\":true}`",
		"health_uri /h\nhealth_body \"^\\{.*ok\"\nhealth_follow_redirects",
	}
	for _, lines := range same {
		rp, relay, rpErr, relayErr := parse(lines)
		if rpErr != nil || relayErr != nil {
			t.Errorf("%q: reverse_proxy: %v, relay: %v", lines, rpErr, relayErr)
			continue
		}
		if !reflect.DeepEqual(rp, relay) {
			t.Errorf("%q: the relay reads %v, reverse_proxy %v", lines, relay, rp)
		}
	}
	for _, lines := range []string{
		"health_uri /h\nhealth_port x", "health_uri /h\nhealth_upstream h", "health_uri /h\nhealth_upstream h:x",
		"health_uri /h\nhealth_upstream h:1\nhealth_port 2", "health_uri /h\nhealth_method",
		"health_uri /h\nhealth_follow_redirects on", "health_uri /h\nhealth_status x",
	} {
		_, relay, rpErr, relayErr := parse(lines)
		bothRefuse(t, lines, rpErr, relayErr, relay)
	}
}

// bothRefuse checks that reverse_proxy and the relay both refused lines,
// the relay with an error naming the line; relay is what the relay read
// if it did not.
func bothRefuse(t *testing.T, lines string, rpErr, relayErr error, relay any) {
	t.Helper()
	if rpErr == nil || relayErr == nil {
		t.Errorf("%q: reverse_proxy: %v, the relay: %v (%v); want both to refuse it", lines, rpErr, relayErr, relay)
	} else if !strings.Contains(relayErr.Error(), "Testfile:") {
		t.Errorf("%q: error %q names no line", lines, relayErr)
	}
}

// TestPassiveLinesAsReverseProxy: the passive health check lines give
// the JSON of reverse_proxy's passive health checks, field for field.
func TestPassiveLinesAsReverseProxy(t *testing.T) {
	t.Parallel()
	for _, lines := range []string{
		"fail_duration 30s\nmax_fails 3\nunhealthy_status 502 5xx\nunhealthy_latency 2s\nunhealthy_request_count 1000",
		"fail_duration 10s",
		"unhealthy_status 503",
	} {
		var h reverseproxy.Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("reverse_proxy a:1 {\n" + lines + "\n}")); err != nil {
			t.Fatal(err)
		}
		var o relayconfig.Options
		if err := directive.Unmarshal(caddyfile.NewTestDispenser("websocket_relay a:1 {\n"+lines+"\n}"), &o); err != nil {
			t.Fatal(err)
		}
		var rp, relay map[string]any
		b, _ := json.Marshal(h.HealthChecks.Passive)
		_ = json.Unmarshal(b, &rp)
		b, _ = json.Marshal(o.PassiveHealthChecks)
		_ = json.Unmarshal(b, &relay)
		if !reflect.DeepEqual(rp, relay) {
			t.Errorf("%q: the relay reads %v, reverse_proxy %v", lines, relay, rp)
		}
	}
}
