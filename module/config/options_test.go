package relayconfig

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		o       Options
		wantErr string
	}{
		{"no upstream", Options{}, "at least one upstream"},
		{"bad upstream", Options{Upstreams: []string{"nope"}}, "want host:port"},
		{"plain", Options{Upstreams: []string{"a:1", "unix//run/a.sock"}}, ""},
		{"trusted CAs with wss", Options{Upstreams: []string{"a:1", "wss://b"}, TLSTrustedCACerts: []string{"ca.pem"}}, ""},
		{"server name with wss", Options{Upstreams: []string{"wss://b"}, TLSServerName: "b.internal"}, ""},
		{"trusted CAs without wss", Options{Upstreams: []string{"a:1"}, TLSTrustedCACerts: []string{"ca.pem"}}, "apply to wss:// upstreams"},
		{"server name without wss", Options{Upstreams: []string{"ws://a"}, TLSServerName: "a"}, "apply to wss:// upstreams"},
		{"empty CA file name", Options{Upstreams: []string{"wss://b"}, TLSTrustedCACerts: []string{""}}, "empty file name"},
		{"insecure without wss stays allowed", Options{Upstreams: []string{"a:1"}, TLSInsecureSkipVerify: true}, ""},
		{"header_up", Options{Upstreams: []string{"a:1"}, HeaderUp: &HeaderOps{Set: map[string][]string{"Host": {"h"}},
			Delete: []string{"Cookie", "X-*", "*-Id", "*", "*Token*"}, Replace: map[string][]Replacement{"*": {{Search: "a"}}}}}, ""},
		{"header_up of Upgrade", Options{Upstreams: []string{"a:1"}, HeaderUp: &HeaderOps{Set: map[string][]string{"upgrade": {"x"}}}}, "header_up: Upgrade is set by the upgrade itself"},
		{"header_up with an empty name", Options{Upstreams: []string{"a:1"}, HeaderUp: &HeaderOps{Delete: []string{""}}}, "not a header field name"},
		{"header_up setting a wildcard", Options{Upstreams: []string{"a:1"}, HeaderUp: &HeaderOps{Add: map[string][]string{"X-*": {"v"}}}}, "not a header field name"},
		{"header_up with both searches", Options{Upstreams: []string{"a:1"}, HeaderUp: &HeaderOps{Replace: map[string][]Replacement{"X": {{Search: "a", SearchRegexp: "b"}}}}}, "not both"},
		{"header_up with a bad regexp", Options{Upstreams: []string{"a:1"}, HeaderUp: &HeaderOps{Replace: map[string][]Replacement{"X": {{SearchRegexp: "("}}}}}, "error parsing regexp"},
		{"lb_policy", Options{Upstreams: []string{"a:1"}, LBPolicy: &LBPolicy{Policy: "header", Field: "X-User",
			Fallback: &LBPolicy{Policy: "query", Key: "k", Fallback: &LBPolicy{Policy: "least_conn"}}}}, ""},
		{"lb_policy unknown", Options{Upstreams: []string{"a:1"}, LBPolicy: &LBPolicy{Policy: "sticky"}}, `lb_policy: unknown policy "sticky"`},
		{"lb_policy cookie", Options{Upstreams: []string{"a:1"}, LBPolicy: &LBPolicy{Policy: "cookie", Name: "srv", Secret: "s",
			MaxAge: caddy.Duration(time.Hour), Fallback: &LBPolicy{Policy: "weighted_round_robin", Weights: []int{1}}}}, ""},
		{"lb_policy cookie with a bad name", Options{Upstreams: []string{"a:1"}, LBPolicy: &LBPolicy{Policy: "cookie", Name: "a b"}}, `cookie: "a b" is not a cookie name`},
		{"lb_policy cookie with a short max_age", Options{Upstreams: []string{"a:1"}, LBPolicy: &LBPolicy{Policy: "cookie", MaxAge: caddy.Duration(time.Millisecond)}}, "max_age must be positive and at least 1s"},
		{"lb_policy cookie with weights", Options{Upstreams: []string{"a:1"}, LBPolicy: &LBPolicy{Policy: "cookie", Weights: []int{1}}}, "policy cookie takes no weights"},
		{"lb_policy weights", Options{Upstreams: []string{"a:1", "b:1", "c:1"}, LBPolicy: &LBPolicy{Policy: "weighted_round_robin", Weights: []int{3, 0, 1}}}, ""},
		{"lb_policy weights all 0", Options{Upstreams: []string{"a:1", "b:1"}, LBPolicy: &LBPolicy{Policy: "weighted_round_robin", Weights: []int{0, 0}}}, "at least one upstream with a positive weight"},
		{"lb_policy weight negative", Options{Upstreams: []string{"a:1", "b:1"}, LBPolicy: &LBPolicy{Policy: "weighted_round_robin", Weights: []int{2, -1}}}, "weight -1 is negative"},
		{"lb_policy weights short", Options{Upstreams: []string{"a:1", "b:1", "c:1"}, LBPolicy: &LBPolicy{Policy: "weighted_round_robin", Weights: []int{1, 2}}}, "2 weights for 3 upstreams"},
		{"lb_policy fallback weights long", Options{Upstreams: []string{"a:1"}, LBPolicy: &LBPolicy{Policy: "query", Key: "k",
			Fallback: &LBPolicy{Policy: "weighted_round_robin", Weights: []int{1, 2}}}}, "2 weights for 1 upstreams"},
		{"lb_policy random_choose", Options{Upstreams: []string{"a:1"}, LBPolicy: &LBPolicy{Policy: "random_choose"}}, ""},
		{"lb_policy random_choose 1", Options{Upstreams: []string{"a:1"}, LBPolicy: &LBPolicy{Policy: "random_choose", Choose: 1}}, "choose must be at least 2, got 1"},
		{"lb_policy empty", Options{Upstreams: []string{"a:1"}, LBPolicy: &LBPolicy{}}, `unknown policy ""`},
		{"lb_policy header without field", Options{Upstreams: []string{"a:1"}, LBPolicy: &LBPolicy{Policy: "header"}}, "needs a field"},
		{"lb_policy header with a key", Options{Upstreams: []string{"a:1"}, LBPolicy: &LBPolicy{Policy: "header", Field: "X", Key: "k"}}, "policy header takes no key"},
		{"lb_policy query with a field", Options{Upstreams: []string{"a:1"}, LBPolicy: &LBPolicy{Policy: "query", Key: "k", Field: "X"}}, "policy query takes no field"},
		{"lb_policy plain with a fallback", Options{Upstreams: []string{"a:1"}, LBPolicy: &LBPolicy{Policy: "first", Fallback: &LBPolicy{Policy: "random"}}}, "policy first takes no fallback"},
		{"lb_policy bad fallback", Options{Upstreams: []string{"a:1"}, LBPolicy: &LBPolicy{Policy: "query", Key: "k", Fallback: &LBPolicy{Policy: "x"}}}, "fallback: unknown policy"},
		{"health checks", Options{Upstreams: []string{"a:1"}, HealthChecks: &HealthChecks{URI: "/healthz?x=1", ExpectStatus: 204}}, ""},
		{"health checks without uri", Options{Upstreams: []string{"a:1"}, HealthChecks: &HealthChecks{Passes: 2}}, "health checks: uri is required"},
		{"health checks with a full URL", Options{Upstreams: []string{"a:1"}, HealthChecks: &HealthChecks{URI: "http://a/healthz"}}, "is not a path"},
		{"health checks with a fragment", Options{Upstreams: []string{"a:1"}, HealthChecks: &HealthChecks{URI: "/h#x"}}, "is not a path"},
		{"health checks status", Options{Upstreams: []string{"a:1"}, HealthChecks: &HealthChecks{URI: "/h", ExpectStatus: 42}}, "expect_status 42 is not a status"},
		{"health checks too often", Options{Upstreams: []string{"a:1"}, HealthChecks: &HealthChecks{URI: "/h", Interval: 1}}, "interval 1ns is shorter than 10ms"},
		{"health checks negative", Options{Upstreams: []string{"a:1"}, HealthChecks: &HealthChecks{URI: "/h", Fails: -1}}, "passes and fails must be positive"},
		{"health request options", Options{Upstreams: []string{"a:1", "unix//s"}, HealthChecks: &HealthChecks{URI: "/h", Method: "POST", Body: "{}",
			Headers: http.Header{"Host": {"x"}, "{env.N}": {"v"}}, ExpectBody: "^ok", MaxSize: 10, FollowRedirects: true, Upstream: "h:9"}}, ""},
		{"health port", Options{Upstreams: []string{"a:1", "ws://b/p"}, HealthChecks: &HealthChecks{URI: "/h", Port: 9000}}, ""},
		{"health port with a socket", Options{Upstreams: []string{"a:1", "unix//run/app.sock"}, HealthChecks: &HealthChecks{URI: "/h", Port: 9000}}, "upstream unix//run/app.sock is a Unix socket"},
		{"health port out of range", Options{Upstreams: []string{"a:1"}, HealthChecks: &HealthChecks{URI: "/h", Port: 70000}}, "port 70000 is not a port"},
		{"health port and upstream", Options{Upstreams: []string{"a:1"}, HealthChecks: &HealthChecks{URI: "/h", Port: 1, Upstream: "h:2"}}, "port and upstream both given"},
		{"health upstream without port", Options{Upstreams: []string{"a:1"}, HealthChecks: &HealthChecks{URI: "/h", Upstream: "h"}}, `upstream "h" is not host:port`},
		{"health upstream bad port", Options{Upstreams: []string{"a:1"}, HealthChecks: &HealthChecks{URI: "/h", Upstream: "h:http"}}, `bad port "http"`},
		{"health header name", Options{Upstreams: []string{"a:1"}, HealthChecks: &HealthChecks{URI: "/h", Headers: http.Header{"X Y": {"v"}}}}, `"X Y" is not a field name`},
		{"health header value", Options{Upstreams: []string{"a:1"}, HealthChecks: &HealthChecks{URI: "/h", Headers: http.Header{"X": {"a\r\nEvil: 1"}}}}, "holds a line break"},
		{"health method", Options{Upstreams: []string{"a:1"}, HealthChecks: &HealthChecks{URI: "/h", Method: "GE T"}}, `method "GE T" is not a method`},
		{"health body regexp", Options{Upstreams: []string{"a:1"}, HealthChecks: &HealthChecks{URI: "/h", ExpectBody: "(ok"}}, "expect_body: error parsing regexp"},
		{"health max_size", Options{Upstreams: []string{"a:1"}, HealthChecks: &HealthChecks{URI: "/h", MaxSize: -1}}, "max_size must be positive"},
		{"health upgrade with POST", Options{Upstreams: []string{"a:1"}, HealthChecks: &HealthChecks{URI: "/h", Upgrade: true, Method: "POST"}}, "method POST with upgrade"},
		{"health upgrade with a body", Options{Upstreams: []string{"a:1"}, HealthChecks: &HealthChecks{URI: "/h", Upgrade: true, Body: "x"}}, "body with upgrade"},
		{"health upgrade expecting a body", Options{Upstreams: []string{"a:1"}, HealthChecks: &HealthChecks{URI: "/h", Upgrade: true, ExpectBody: "x"}}, "expect_body with upgrade"},
		{"health upgrade redirected", Options{Upstreams: []string{"a:1"}, HealthChecks: &HealthChecks{URI: "/h", Upgrade: true, FollowRedirects: true}}, "follow_redirects with upgrade"},
		{"negative timeout", Options{Upstreams: []string{"a:1"}, DialTimeout: -1}, "dial_timeout must not be negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.SetDefaults()
			err := tc.o.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
