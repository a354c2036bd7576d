package relayconfig

import (
	"strings"
	"testing"
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
		{"lb_policy unknown", Options{Upstreams: []string{"a:1"}, LBPolicy: &LBPolicy{Policy: "cookie"}}, `lb_policy: unknown policy "cookie"`},
		{"lb_policy empty", Options{Upstreams: []string{"a:1"}, LBPolicy: &LBPolicy{}}, `unknown policy ""`},
		{"lb_policy header without field", Options{Upstreams: []string{"a:1"}, LBPolicy: &LBPolicy{Policy: "header"}}, "needs a field"},
		{"lb_policy header with a key", Options{Upstreams: []string{"a:1"}, LBPolicy: &LBPolicy{Policy: "header", Field: "X", Key: "k"}}, "not a key"},
		{"lb_policy query with a field", Options{Upstreams: []string{"a:1"}, LBPolicy: &LBPolicy{Policy: "query", Key: "k", Field: "X"}}, "not a field"},
		{"lb_policy plain with a fallback", Options{Upstreams: []string{"a:1"}, LBPolicy: &LBPolicy{Policy: "first", Fallback: &LBPolicy{Policy: "random"}}}, "takes no field, key or fallback"},
		{"lb_policy bad fallback", Options{Upstreams: []string{"a:1"}, LBPolicy: &LBPolicy{Policy: "query", Key: "k", Fallback: &LBPolicy{Policy: "x"}}}, "fallback: unknown policy"},
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
