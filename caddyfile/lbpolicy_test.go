package relaycaddyfile

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/websocket-relay/websocket_relay/caddyfile/directive"
	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
)

// TestLBPolicyAsReverseProxy: an lb_policy line gives the relay the JSON
// that reverse_proxy's own parser gives its selection_policy, fallbacks
// included, and one that reverse_proxy refuses is refused, each refusal
// naming its line.
func TestLBPolicyAsReverseProxy(t *testing.T) {
	t.Parallel()
	parse := func(line string) (rp, relay string, rpErr, relayErr error) {
		var h reverseproxy.Handler
		rpErr = h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("reverse_proxy a:1 b:1 c:1 {\n\tlb_policy " + line + "\n}"))
		if rpErr == nil {
			rp = string(h.LoadBalancing.SelectionPolicyRaw)
		}
		var o relayconfig.Options
		relayErr = directive.Unmarshal(caddyfile.NewTestDispenser("websocket_relay a:1 b:1 c:1 {\n\tlb_policy "+line+"\n}"), &o)
		if relayErr == nil {
			b, _ := json.Marshal(o.LBPolicy)
			relay = string(b)
		}
		return rp, relay, rpErr, relayErr
	}
	same := []string{
		"round_robin", "least_conn", "first", "random", "ip_hash", "client_ip_hash", "uri_hash",
		"header X-User", "header host", "query room",
		"header X-User {\n\t\tfallback first\n\t}",
		"query room {\n\t\tfallback header X-A {\n\t\t\tfallback least_conn\n\t\t}\n\t}",
		"weighted_round_robin 3 0 1", "weighted_round_robin 1 1 1", "random_choose 2", "random_choose 3",
		"cookie", "cookie srv", "cookie srv s3cret", "cookie {\n\t\tmax_age 24h\n\t}",
		"cookie srv s3cret {\n\t\tfallback least_conn\n\t\tmax_age 90m\n\t}",
		"cookie {\n\t\tfallback header X-User {\n\t\t\tfallback weighted_round_robin 1 2 3\n\t\t}\n\t}",
		"header X-User {\n\t\tfallback cookie srv\n\t}",
	}
	for _, line := range same {
		rp, relay, rpErr, relayErr := parse(line)
		if rpErr != nil || relayErr != nil {
			t.Errorf("%q: reverse_proxy: %v, relay: %v", line, rpErr, relayErr)
			continue
		}
		var a, b any
		_ = json.Unmarshal([]byte(rp), &a)
		_ = json.Unmarshal([]byte(relay), &b)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%q: the relay reads %s, reverse_proxy %s", line, relay, rp)
		}
	}
	for _, line := range []string{"nope", "header", "query", "first x", "least_conn a b",
		"weighted_round_robin", "weighted_round_robin 1 x", "weighted_round_robin -1", "random_choose", "random_choose x",
		"cookie a b c", "cookie {\n\t\tmax_age\n\t}", "cookie {\n\t\tmax_age -1s\n\t}", "cookie {\n\t\tmax_age 1h 2h\n\t}",
		"cookie {\n\t\tmax_age 1h\n\t\tmax_age 2h\n\t}", "cookie {\n\t\tfallback first\n\t\tfallback random\n\t}", "cookie {\n\t\tpath /\n\t}",
		"header X-A {\n\t\tfallback nope\n\t}", "header X-A {\n\t\tfallback first x\n\t}", "header X-A {\n\t\tbogus\n\t}"} {
		_, relay, rpErr, relayErr := parse(line)
		bothRefuse(t, line, rpErr, relayErr, relay)
	}
}

// TestTryLinesAsReverseProxy: lb_try_duration, lb_try_interval and
// lb_retries read as reverse_proxy's.
func TestTryLinesAsReverseProxy(t *testing.T) {
	t.Parallel()
	lines := "lb_try_duration 5s\n\tlb_try_interval 100ms\n\tlb_retries 3"
	var h reverseproxy.Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("reverse_proxy a:1 {\n\t" + lines + "\n}")); err != nil {
		t.Fatal(err)
	}
	var o relayconfig.Options
	if err := directive.Unmarshal(caddyfile.NewTestDispenser("websocket_relay a:1 {\n\t"+lines+"\n}"), &o); err != nil {
		t.Fatal(err)
	}
	lb := h.LoadBalancing
	if o.TryDuration != lb.TryDuration || o.TryInterval != lb.TryInterval || o.Retries != lb.Retries {
		t.Errorf("the relay reads %v %v %d, reverse_proxy %v %v %d", o.TryDuration, o.TryInterval, o.Retries,
			lb.TryDuration, lb.TryInterval, lb.Retries)
	}
}
