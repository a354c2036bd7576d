package directive

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
)

// sec is n seconds as a caddy.Duration.
func sec(n int) caddy.Duration { return caddy.Duration(time.Duration(n) * time.Second) }

// goodCases are directives that parse, with the options each must give.
var goodCases = []struct {
	name  string
	input string
	want  relayconfig.Options
}{
	{"one inline upstream", `websocket_relay localhost:3000`,
		relayconfig.Options{Upstreams: []string{"localhost:3000"}}},
	{"inline upstreams keep their order", `websocket_relay b:2 a:1 [::1]:3`,
		relayconfig.Options{Upstreams: []string{"b:2", "a:1", "[::1]:3"}}},
	{"empty block", "websocket_relay a:1 {\n}",
		relayconfig.Options{Upstreams: []string{"a:1"}}},
	{"to adds after inline and may repeat", "websocket_relay a:1 {\n\tto b:2 c:3\n\tto d:4\n}",
		relayconfig.Options{Upstreams: []string{"a:1", "b:2", "c:3", "d:4"}}},
	{"ws and wss with path", "websocket_relay ws://a:1/x {\n\tto wss://b/y/ wss://c:8443\n}",
		relayconfig.Options{Upstreams: []string{"ws://a:1/x", "wss://b/y/", "wss://c:8443"}}},
	{"unix socket", "websocket_relay unix//run/app.sock {\n\tto unix/app.sock\n}",
		relayconfig.Options{Upstreams: []string{"unix//run/app.sock", "unix/app.sock"}}},
	{"ping_interval off is negative", "websocket_relay a:1 {\n\tping_interval off\n}",
		relayconfig.Options{Upstreams: []string{"a:1"}, PingInterval: -1}},
	{"drain_period off is negative", "websocket_relay a:1 {\n\tdrain_period off\n}",
		relayconfig.Options{Upstreams: []string{"a:1"}, DrainPeriod: -1}},
	{"day unit", "websocket_relay a:1 {\n\tclose_timeout 1d\n}",
		relayconfig.Options{Upstreams: []string{"a:1"}, CloseTimeout: caddy.Duration(24 * time.Hour)}},
	{"all options", `websocket_relay {
	to a:1
	ping_interval 30s
	pong_timeout 15s
	write_timeout 5s
	dial_timeout 2s
	handshake_timeout 3s
	close_timeout 1m
	stall_timeout 45s
	drain_period 20s
	event_loops off
	tls_insecure_skip_verify
}`, relayconfig.Options{
		Upstreams:    []string{"a:1"},
		PingInterval: sec(30), PongTimeout: sec(15), WriteTimeout: sec(5),
		DialTimeout: sec(2), HandshakeTimeout: sec(3), CloseTimeout: sec(60),
		StallTimeout: sec(45), DrainPeriod: sec(20), TLSInsecureSkipVerify: true,
		DisableEventLoops: true,
	}},
	{"trusted CAs and server name", "websocket_relay wss://b:8443 {\n\ttls_trusted_ca_certs /etc/ca.pem ca2.pem\n\ttls_server_name backend.internal\n}",
		relayconfig.Options{Upstreams: []string{"wss://b:8443"}, TLSTrustedCACerts: []string{"/etc/ca.pem", "ca2.pem"},
			TLSServerName: "backend.internal"}},
	{"header_up as reverse_proxy's, repeated", "websocket_relay a:1 {\n\theader_up Host {upstream_hostport}\n\theader_up +x-tag one\n\theader_up +X-Tag two\n\theader_up -Cookie\n\theader_up -X-Forwarded-*\n\theader_up x-real-ip {remote_host}\n\theader_up X-Real-IP {client_ip}\n\theader_up >X-Late v\n\theader_up X-Empty\n\theader_up Referer ^http:// https://\n\theader_up * a b\n\theader_up -X-Old ignored\n\theader_up +X-Tag three ignored\n\theader_up -X-Gone ignored too\n\theader_up >X-A ^a b\n}",
		relayconfig.Options{Upstreams: []string{"a:1"}, HeaderUp: &relayconfig.HeaderOps{
			Delete: []string{"Cookie", "X-Forwarded-*", "X-Old", "X-Gone"},
			Set: map[string][]string{"Host": {"{upstream_hostport}"}, "X-Real-Ip": {"{client_ip}"},
				"X-Late": {"v"}, "X-Empty": {""}},
			Add: map[string][]string{"X-Tag": {"one", "two", "three"}},
			Replace: map[string][]relayconfig.Replacement{
				"Referer": {{SearchRegexp: "^http://", Replace: "https://"}},
				"*":       {{SearchRegexp: "a", Replace: "b"}},
				"X-A":     {{SearchRegexp: "^a", Replace: "b"}},
			},
		}}},
	{"lb_policy with a fallback that has its own", "websocket_relay a:1 b:2 {\n\tlb_policy header X-User {\n\t\tfallback query room {\n\t\t\tfallback least_conn\n\t\t}\n\t}\n\tping_interval 5s\n}",
		relayconfig.Options{Upstreams: []string{"a:1", "b:2"}, PingInterval: sec(5), LBPolicy: &relayconfig.LBPolicy{
			Policy: "header", Field: "X-User", Fallback: &relayconfig.LBPolicy{
				Policy: "query", Key: "room", Fallback: &relayconfig.LBPolicy{Policy: "least_conn"}}}}},
	{"health checks", "websocket_relay a:1 b:2 {\n\thealth_interval 10s\n\thealth_uri /healthz?deep=1\n\thealth_timeout 2s\n\thealth_status 204\n\thealth_passes 2\n\thealth_fails 3\n}",
		relayconfig.Options{Upstreams: []string{"a:1", "b:2"}, HealthChecks: &relayconfig.HealthChecks{
			URI: "/healthz?deep=1", Interval: sec(10), Timeout: sec(2), ExpectStatus: 204, Passes: 2, Fails: 3}}},
	{"health checks by upgrade, a status class", "websocket_relay a:1 {\n\thealth_uri /ws\n\thealth_upgrade\n\thealth_status 1xx\n}",
		relayconfig.Options{Upstreams: []string{"a:1"}, HealthChecks: &relayconfig.HealthChecks{URI: "/ws", Upgrade: true, ExpectStatus: 1}}},
	{"health checks as reverse_proxy's other health lines", "websocket_relay a:1 b:2 {\n\thealth_uri /healthz\n\thealth_port 9000\n\thealth_headers {\n\t\tHost health.internal\n\t\tX-Token {env.TOKEN}\n\t\tX-Two a b\n\t\tX-Two c\n\t\tX-Empty\n\t}\n\thealth_method POST\n\thealth_request_body \"{\\\"deep\\\":true}\"\n\thealth_body ^ok\n\thealth_follow_redirects\n}",
		relayconfig.Options{Upstreams: []string{"a:1", "b:2"}, HealthChecks: &relayconfig.HealthChecks{URI: "/healthz", Port: 9000,
			Headers: http.Header{"Host": {"health.internal"}, "X-Token": {"{env.TOKEN}"}, "X-Two": {"a", "b", "c"}, "X-Empty": {""}},
			Method:  "POST", Body: `{"deep":true}`, ExpectBody: "^ok", FollowRedirects: true}}},
	{"health_upstream, health_path, and an upgrade check with headers", "websocket_relay unix//run/app.sock {\n\thealth_path /ws\n\thealth_upstream 127.0.0.1:9001\n\thealth_upgrade\n\thealth_method GET\n\thealth_headers {\n\t\tOrigin https://app.example\n\t}\n}",
		relayconfig.Options{Upstreams: []string{"unix//run/app.sock"}, HealthChecks: &relayconfig.HealthChecks{URI: "/ws", Upstream: "127.0.0.1:9001",
			Upgrade: true, Method: "GET", Headers: http.Header{"Origin": {"https://app.example"}}}}},
	{"tries again as reverse_proxy's lb_try_* lines", "websocket_relay a:1 {\n\tlb_try_duration 5s\n\tlb_try_interval 100ms\n\tlb_retries 3\n}",
		relayconfig.Options{Upstreams: []string{"a:1"}, TryDuration: sec(5), TryInterval: caddy.Duration(100 * time.Millisecond), Retries: 3}},
	{"passive health checks as reverse_proxy's", "websocket_relay a:1 {\n\tfail_duration 30s\n\tmax_fails 3\n\tunhealthy_status 502 5xx\n\tunhealthy_latency 2s\n\tunhealthy_request_count 1000\n}",
		relayconfig.Options{Upstreams: []string{"a:1"}, PassiveHealthChecks: &relayconfig.PassiveHealthChecks{FailDuration: sec(30), MaxFails: 3,
			UnhealthyStatus: []int{502, 5}, UnhealthyLatency: sec(2), UnhealthyRequestCount: 1000}}},
	{"fail_duration off", "websocket_relay a:1 {\n\tfail_duration off\n}",
		relayconfig.Options{Upstreams: []string{"a:1"}, PassiveHealthChecks: &relayconfig.PassiveHealthChecks{FailDuration: -1}}},
	{"event_loops on is the default", "websocket_relay a:1 {\n\tevent_loops on\n}",
		relayconfig.Options{Upstreams: []string{"a:1"}}},
}

func TestUnmarshalGood(t *testing.T) {
	t.Parallel()
	for _, tc := range goodCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got relayconfig.Options
			if err := Unmarshal(caddyfile.NewTestDispenser(tc.input), &got); err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// badCases are directives that must fail, each with substrings the error
// must hold; NewTestDispenser names the file "Testfile".
var badCases = []struct {
	name  string
	input string
	want  []string
}{
	{"empty input", ``, []string{"expected the websocket_relay directive"}},
	{"no upstream", `websocket_relay`, []string{"no upstream", "Testfile:1"}},
	{"no upstream with options", "websocket_relay {\n\tping_interval 5s\n}",
		[]string{"no upstream", "Testfile:1"}},
	{"bad inline upstream", `websocket_relay localhost`, []string{"want host:port", "Testfile:1"}},
	{"empty upstream", `websocket_relay ""`, []string{"empty upstream address"}},
	{"http scheme", `websocket_relay http://a:1`, []string{"scheme must be ws or wss"}},
	{"query in upstream", `websocket_relay ws://a:1/?x=1`, []string{"query"}},
	{"tls option without a wss upstream", "websocket_relay a:1 {\n\tping_interval 5s\n\ttls_server_name b\n}",
		[]string{"tls_server_name applies to wss:// upstreams", "Testfile:3"}},
	{"tls_trusted_ca_certs without files", "websocket_relay wss://a {\n\ttls_trusted_ca_certs\n}", []string{"Testfile:2"}},
	{"tls_trusted_ca_certs with an empty name", "websocket_relay wss://a {\n\ttls_trusted_ca_certs a.pem \"\"\n}", []string{"empty file name", "Testfile:2"}},
	{"tls_server_name empty", "websocket_relay wss://a {\n\ttls_server_name \"\"\n}", []string{"empty name", "Testfile:2"}},
	{"header_up of the upgrade's own field", "websocket_relay a:1 {\n\theader_up Sec-WebSocket-Key x\n}", []string{"cannot be changed", "Testfile:2"}},
	{"header_up replacing in the upgrade's own field", "websocket_relay a:1 {\n\theader_up Upgrade a b\n}", []string{"cannot be changed", "Testfile:2"}},
	{"header_up with a bad field name", "websocket_relay a:1 {\n\theader_up \"X A\" b\n}", []string{"not a header field name", "Testfile:2"}},
	{"header_up with an empty field name", "websocket_relay a:1 {\n\theader_up \"\" b\n}", []string{"not a header field name", "Testfile:2"}},
	{"header_up + alone", "websocket_relay a:1 {\n\theader_up +\n}", []string{"not a header field name", "Testfile:2"}},
	{"header_up wildcard set", "websocket_relay a:1 {\n\theader_up X-* v\n}", []string{"not a header field name", "Testfile:2"}},
	{"header_up default modifier", "websocket_relay a:1 {\n\theader_up ?X-A v\n}", []string{"for response headers", "Testfile:2"}},
	{"header_up bad regexp", "websocket_relay a:1 {\n\theader_up X-A ( b\n}", []string{"error parsing regexp", "Testfile:2"}},
	{"header_up bad regexp with a brace", "websocket_relay a:1 {\n\theader_up X-A \"(a{\" b\n}", []string{"error parsing regexp", "Testfile:2"}},
	{"header_up bad regexp with empty braces", "websocket_relay a:1 {\n\theader_up X-A \"{}(\" b\n}", []string{"error parsing regexp", "Testfile:2"}},
	{"header_up default modifier with a replacement", "websocket_relay a:1 {\n\theader_up ?X-A a b\n}", []string{"for response headers", "Testfile:2"}},
	{"header_up with four args", "websocket_relay a:1 {\n\theader_up X-A a b c\n}", []string{"Testfile:2"}},
	{"header_up alone", "websocket_relay a:1 {\n\theader_up\n}", []string{"Testfile:2"}},
	{"tls_server_name with two names", "websocket_relay wss://a {\n\ttls_server_name a b\n}", []string{"Testfile:2"}},
	{"unix without a path", `websocket_relay unix/`, []string{"missing socket path", "Testfile:1"}},
	{"bad upstream on to line", "websocket_relay a:1 {\n\n\tto b:2 nope\n}",
		[]string{`upstream "nope"`, "Testfile:3"}},
	{"to without args", "websocket_relay {\n\tto\n}", []string{"wrong argument count", "Testfile:2"}},
	{"unknown subdirective", "websocket_relay a:1 {\n\tping 5s\n}",
		[]string{"unrecognized subdirective 'ping'", "Testfile:2"}},
	{"repeated ping_interval", "websocket_relay a:1 {\n\tping_interval off\n\tping_interval 5s\n}",
		[]string{"'ping_interval' given more than once", "Testfile:3"}},
	{"repeated flag", "websocket_relay a:1 {\n\ttls_insecure_skip_verify\n\ttls_insecure_skip_verify\n}",
		[]string{"'tls_insecure_skip_verify' given more than once"}},
	{"repeated timeout", "websocket_relay a:1 {\n\tdial_timeout 1s\n\tdial_timeout 2s\n}",
		[]string{"'dial_timeout' given more than once"}},
	{"ping_interval missing", "websocket_relay a:1 {\n\tping_interval\n}", []string{"wrong argument count"}},
	{"ping_interval extra", "websocket_relay a:1 {\n\tping_interval 5s 6s\n}", []string{"wrong argument count"}},
	{"pong_timeout missing", "websocket_relay a:1 {\n\tpong_timeout\n}", []string{"wrong argument count"}},
	{"close_timeout extra", "websocket_relay a:1 {\n\tclose_timeout 1s x\n}", []string{"wrong argument count"}},
	{"bad event_loops", "websocket_relay a:1 {\n\tevent_loops maybe\n}",
		[]string{"event_loops: want on or off, got 'maybe'", "Testfile:2"}},
	{"event_loops missing", "websocket_relay a:1 {\n\tevent_loops\n}", []string{"wrong argument count"}},
	{"flag with arg", "websocket_relay a:1 {\n\ttls_insecure_skip_verify yes\n}", []string{"wrong argument count"}},
	{"bad ping_interval", "websocket_relay a:1 {\n\tping_interval fast\n}",
		[]string{"ping_interval: parsing duration 'fast'", "Testfile:2"}},
	{"bad write_timeout", "websocket_relay a:1 {\n\twrite_timeout 10\n}",
		[]string{"write_timeout: parsing duration '10'"}},
	{"zero ping_interval", "websocket_relay a:1 {\n\tping_interval 0\n}", []string{"use 'ping_interval off'"}},
	{"zero drain_period", "websocket_relay a:1 {\n\tdrain_period 0\n}", []string{"use 'drain_period off'", "Testfile:2"}},
	{"zero ping_interval 0s", "websocket_relay a:1 {\n\tping_interval 0s\n}", []string{"use 'ping_interval off'"}},
	{"negative ping_interval", "websocket_relay a:1 {\n\tping_interval -5s\n}", []string{"use 'ping_interval off'"}},
	{"zero pong_timeout", "websocket_relay a:1 {\n\tpong_timeout 0s\n}",
		[]string{"pong_timeout: duration must be positive"}},
	{"negative write_timeout", "websocket_relay a:1 {\n\twrite_timeout -1s\n}",
		[]string{"write_timeout: duration must be positive"}},
	{"zero dial_timeout", "websocket_relay a:1 {\n\tdial_timeout 0\n}", []string{"dial_timeout: duration must be positive"}},
	{"zero handshake_timeout", "websocket_relay a:1 {\n\thandshake_timeout 0ms\n}",
		[]string{"handshake_timeout: duration must be positive"}},
	{"zero close_timeout", "websocket_relay a:1 {\n\tclose_timeout 0d\n}", []string{"close_timeout: duration must be positive"}},
	{"lb_policy unknown", "websocket_relay a:1 {\n\tlb_policy sticky\n}", []string{"unknown policy 'sticky'", "least_conn", "Testfile:2"}},
	{"lb_policy twice", "websocket_relay a:1 {\n\tlb_policy first\n\tlb_policy random\n}", []string{"'lb_policy' given more than once", "Testfile:3"}},
	{"lb_policy header without a field", "websocket_relay a:1 {\n\tlb_policy header\n}", []string{"needs a field", "Testfile:2"}},
	{"lb_policy header with a bad field", "websocket_relay a:1 {\n\tlb_policy header \"X A\"\n}", []string{"not a header field name", "Testfile:2"}},
	{"lb_policy fallback twice", "websocket_relay a:1 {\n\tlb_policy query q {\n\t\tfallback first\n\t\tfallback random\n\t}\n}", []string{"fallback given more than once", "Testfile:4"}},
	{"lb_policy fallback of a plain policy", "websocket_relay a:1 {\n\tlb_policy first {\n\t\tfallback random\n\t}\n}", []string{"only the header, query and cookie policies take a fallback", "Testfile:3"}},
	{"lb_policy max_age of another policy", "websocket_relay a:1 {\n\tlb_policy query q {\n\t\tmax_age 1h\n\t}\n}", []string{"only the cookie policy takes max_age", "Testfile:3"}},
	{"lb_policy cookie max_age twice", "websocket_relay a:1 {\n\tlb_policy cookie {\n\t\tmax_age 1h\n\t\tmax_age 2h\n\t}\n}", []string{"max_age given more than once", "Testfile:4"}},
	{"lb_policy cookie max_age bad", "websocket_relay a:1 {\n\tlb_policy cookie {\n\t\tmax_age soon\n\t}\n}", []string{"invalid duration 'soon'", "Testfile:3"}},
	{"lb_policy cookie max_age 0", "websocket_relay a:1 {\n\tlb_policy cookie {\n\t\tmax_age 0s\n\t}\n}", []string{"want a positive one", "Testfile:3"}},
	{"lb_policy cookie bad option", "websocket_relay a:1 {\n\tlb_policy cookie {\n\t\tpath /\n\t}\n}", []string{"unrecognized option 'path' (want fallback or max_age)", "Testfile:3"}},
	{"lb_policy cookie three args", "websocket_relay a:1 {\n\tlb_policy cookie a b c\n}", []string{"wrong argument count", "Testfile:2"}},
	{"lb_policy weights bad", "websocket_relay a:1 b:2 {\n\tlb_policy weighted_round_robin 1 x\n}", []string{"invalid weight 'x'", "Testfile:2"}},
	{"lb_policy weights none", "websocket_relay a:1 {\n\tlb_policy weighted_round_robin\n}", []string{"needs a weight for each upstream", "Testfile:2"}},
	{"lb_policy weights negative", "websocket_relay a:1 b:2 {\n\tlb_policy weighted_round_robin 1 -1\n}", []string{"invalid weight '-1'", "Testfile:2"}},
	{"lb_policy random_choose without a count", "websocket_relay a:1 {\n\tlb_policy random_choose\n}", []string{"needs how many upstreams", "Testfile:2"}},
	{"lb_policy random_choose 1", "websocket_relay a:1 {\n\tlb_policy random_choose 1\n}", []string{"choose must be at least 2", "Testfile:2"}},
	{"lb_policy random_choose two counts", "websocket_relay a:1 {\n\tlb_policy random_choose 2 3\n}", []string{"wrong argument count", "Testfile:2"}},
	{"lb_policy weights for fewer upstreams", "websocket_relay a:1 {\n\tto b:2 c:3\n\tlb_policy weighted_round_robin 1 2\n\tto d:4\n}", []string{"2 weights for 4 upstreams", "Testfile:3"}},
	{"health_interval without health_uri", "websocket_relay a:1 {\n\tping_interval 5s\n\thealth_interval 5s\n\thealth_fails 2\n}", []string{"health_interval needs health_uri", "Testfile:3"}},
	{"health_uri not a path", "websocket_relay a:1 {\n\thealth_uri healthz\n}", []string{"health_uri: uri \"healthz\" is not a path", "Testfile:2"}},
	{"health_uri absolute", "websocket_relay a:1 {\n\thealth_uri http://x/healthz\n}", []string{"is not a path", "Testfile:2"}},
	{"health_uri twice", "websocket_relay a:1 {\n\thealth_uri /a\n\thealth_uri /b\n}", []string{"'health_uri' given more than once", "Testfile:3"}},
	{"health_status bad", "websocket_relay a:1 {\n\thealth_uri /a\n\thealth_status ok\n}", []string{"invalid status 'ok'", "Testfile:3"}},
	{"health_status out of range", "websocket_relay a:1 {\n\thealth_uri /a\n\thealth_status 700\n}", []string{"expect_status 700 is not a status", "Testfile:3"}},
	{"health_passes 0", "websocket_relay a:1 {\n\thealth_uri /a\n\thealth_passes 0\n}", []string{"want a whole number above 0, got '0'", "Testfile:3"}},
	{"health_timeout bad", "websocket_relay a:1 {\n\thealth_uri /a\n\thealth_timeout -1s\n}", []string{"health_timeout: duration must be positive", "Testfile:3"}},
	{"health_upgrade with an argument", "websocket_relay a:1 {\n\thealth_uri /a\n\thealth_upgrade on\n}", []string{"wrong argument count", "Testfile:3"}},
	{"health_port not a number", "websocket_relay a:1 {\n\thealth_uri /a\n\thealth_port http\n}", []string{"health_port: want a port (1-65535), got 'http'", "Testfile:3"}},
	{"health_port with health_upstream", "websocket_relay a:1 {\n\thealth_uri /a\n\thealth_upstream h:1\n\thealth_port 2\n}", []string{"health_port does not go with health_upstream", "Testfile:4"}},
	{"health_port with a socket upstream", "websocket_relay a:1 unix//run/app.sock {\n\thealth_uri /a\n\thealth_port 2\n}", []string{"health_port 2: upstream unix//run/app.sock is a Unix socket", "Testfile:3"}},
	{"health_upstream without a port", "websocket_relay a:1 {\n\thealth_uri /a\n\thealth_upstream backend\n}", []string{`health_upstream: upstream "backend" is not host:port`, "Testfile:3"}},
	{"health_method with health_upgrade", "websocket_relay a:1 {\n\thealth_uri /a\n\thealth_method HEAD\n\thealth_upgrade\n}", []string{"health_method does not go with health_upgrade", "Testfile:3"}},
	{"health_body with health_upgrade", "websocket_relay a:1 {\n\thealth_upgrade\n\thealth_uri /a\n\thealth_body ok\n}", []string{"health_body does not go with health_upgrade", "Testfile:4"}},
	{"health_request_body with health_upgrade", "websocket_relay a:1 {\n\thealth_upgrade\n\thealth_uri /a\n\thealth_request_body x\n}", []string{"health_request_body does not go with health_upgrade", "Testfile:4"}},
	{"health_follow_redirects with health_upgrade", "websocket_relay a:1 {\n\thealth_upgrade\n\thealth_uri /a\n\thealth_follow_redirects\n}", []string{"health_follow_redirects does not go with health_upgrade", "Testfile:4"}},
	{"health_follow_redirects with an argument", "websocket_relay a:1 {\n\thealth_uri /a\n\thealth_follow_redirects 3\n}", []string{"wrong argument count", "Testfile:3"}},
	{"health_body bad regexp", "websocket_relay a:1 {\n\thealth_uri /a\n\thealth_body (ok\n}", []string{"health_body: expect_body: error parsing regexp", "Testfile:3"}},
	{"health_method not a token", "websocket_relay a:1 {\n\thealth_uri /a\n\thealth_method \"GE T\"\n}", []string{`health_method: method "GE T" is not a method`, "Testfile:3"}},
	{"health_headers bad name", "websocket_relay a:1 {\n\thealth_uri /a\n\thealth_headers {\n\t\t\"X Y\" v\n\t}\n}", []string{`health_headers: headers: "X Y" is not a field name`, "Testfile:4"}},
	{"health_headers empty", "websocket_relay a:1 {\n\thealth_uri /a\n\thealth_headers {\n\t}\n}", []string{"health_headers: an empty block", "Testfile:"}},
	{"health_headers inline", "websocket_relay a:1 {\n\thealth_uri /a\n\thealth_headers X-A b\n}", []string{"health_headers takes a block", "Testfile:3"}},
	{"health_headers nested block", "websocket_relay a:1 {\n\thealth_uri /a\n\thealth_headers {\n\t\tX-A {\n\t\t\tb\n\t\t}\n\t}\n}", []string{"'X-A' takes no block", "Testfile:4"}},
	{"health_path with a query", "websocket_relay a:1 {\n\thealth_path /a?b=1\n}", []string{"health_path: '/a?b=1' has a query", "Testfile:2"}},
	{"health_path and health_uri", "websocket_relay a:1 {\n\thealth_uri /a\n\thealth_path /b\n}", []string{"health_path with health_uri", "Testfile:3"}},
	{"health_headers without health_uri", "websocket_relay a:1 {\n\thealth_headers {\n\t\tX-A b\n\t}\n}", []string{"health_headers needs health_uri", "Testfile:2"}},
	{"lb_try_interval alone", "websocket_relay a:1 {\n\tlb_try_interval 1s\n}", []string{"lb_try_interval needs lb_try_duration or lb_retries", "Testfile:2"}},
	{"lb_retries 0", "websocket_relay a:1 {\n\tlb_retries 0\n}", []string{"lb_retries: want a whole number above 0, got '0'", "Testfile:2"}},
	{"lb_try_duration negative", "websocket_relay a:1 {\n\tlb_try_duration -1s\n}", []string{"lb_try_duration: duration must be positive", "Testfile:2"}},
	{"max_fails 0", "websocket_relay a:1 {\n\tmax_fails 0\n}", []string{"max_fails: want a whole number above 0, got '0'", "Testfile:2"}},
	{"unhealthy_request_count x", "websocket_relay a:1 {\n\tunhealthy_request_count x\n}", []string{"unhealthy_request_count: want a whole number above 0, got 'x'", "Testfile:2"}},
	{"unhealthy_status none", "websocket_relay a:1 {\n\tunhealthy_status\n}", []string{"wrong argument count", "Testfile:2"}},
	{"unhealthy_status bad", "websocket_relay a:1 {\n\tunhealthy_status 503 oops\n}", []string{"unhealthy_status: invalid status 'oops'", "Testfile:2"}},
	{"unhealthy_status 101", "websocket_relay a:1 {\n\tunhealthy_status 101\n}", []string{"unhealthy_status 101 is not a refusal's status", "Testfile:2"}},
	{"unhealthy_status 1xx", "websocket_relay a:1 {\n\tunhealthy_status 502 1xx\n}", []string{"unhealthy_status 1 is not a refusal's status", "a 101 (1xx) is every upgrade's answer", "Testfile:2"}},
	{"unhealthy_latency 0", "websocket_relay a:1 {\n\tunhealthy_latency 0s\n}", []string{"unhealthy_latency: duration must be positive", "Testfile:2"}},
	{"fail_duration 0", "websocket_relay a:1 {\n\tfail_duration 0s\n}", []string{"fail_duration: 0s is not a valid duration; use 'fail_duration off'", "Testfile:2"}},
	{"health_bogus", "websocket_relay a:1 {\n\thealth_uri /a\n\thealth_bogus 1\n}", []string{"unrecognized subdirective 'health_bogus'", "Testfile:3"}},
	{"lb_policy fallback without a policy", "websocket_relay a:1 {\n\tlb_policy query q {\n\t\tfallback\n\t}\n}", []string{"wrong argument count", "Testfile:3"}},
	{"nested block", "websocket_relay a:1 {\n\tping_interval 5s {\n\t}\n}", []string{"take no block", "Testfile:2"}},
}

func TestUnmarshalBad(t *testing.T) {
	t.Parallel()
	for _, tc := range badCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var o relayconfig.Options
			err := Unmarshal(caddyfile.NewTestDispenser(tc.input), &o)
			assertErrContains(t, err, tc.want)
		})
	}
}

// assertErrContains fails t unless err is non-nil and holds every want.
func assertErrContains(t *testing.T, err error, want []string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}
