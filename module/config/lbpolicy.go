package relayconfig

import (
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"golang.org/x/net/http/httpguts"
)

// LBPolicy chooses the upstream of each upgrade, as reverse_proxy's
// lb_policy does: the same names, the same hashing (so a hash policy
// picks the backend reverse_proxy picks for the same request, given the
// same upstream addresses), the same cookie, and the same JSON as
// reverse_proxy's load_balancing.selection_policy. The upstreams after
// the choice are tried in the policy's order when a dial or upgrade
// fails.
type LBPolicy struct {
	// Policy is one of round_robin (the default), weighted_round_robin,
	// least_conn, random_choose, first, random, ip_hash, client_ip_hash,
	// uri_hash, header, query and cookie.
	Policy string `json:"policy"`
	// Field is the request header whose value the header policy hashes.
	Field string `json:"field,omitempty"`
	// Key is the query parameter whose values the query policy hashes.
	Key string `json:"key,omitempty"`
	// Weights are weighted_round_robin's, one per upstream in the order
	// of the upstreams; an upstream of weight 0 gets no upgrade.
	Weights []int `json:"weights,omitempty"`
	// Choose is how many upstreams random_choose draws at random, to
	// take the one holding the fewest connections. Default: 2.
	Choose int `json:"choose,omitempty"`
	// Name is the cookie policy's cookie. Default: lb.
	Name string `json:"name,omitempty"`
	// Secret is the HMAC key of the cookie policy's cookie values: with
	// the same secret and upstream addresses, reverse_proxy's cookie
	// policy and the relay's read and write the same cookie.
	Secret string `json:"secret,omitempty"`
	// MaxAge is the cookie's Max-Age. Default: none (a session cookie).
	MaxAge caddy.Duration `json:"max_age,omitempty"`
	// Fallback is the policy used when the header, query parameter or
	// cookie is absent or empty (or, for cookie, names no upstream).
	// Default: random.
	Fallback *LBPolicy `json:"fallback,omitempty"`
}

// LBPolicies are the policy names, in the order the docs give them.
var LBPolicies = []string{
	"round_robin", "weighted_round_robin", "least_conn", "random_choose", "first", "random",
	"ip_hash", "client_ip_hash", "uri_hash", "header", "query", "cookie",
}

// DefaultCookieName is the cookie policy's cookie when none is named,
// as in reverse_proxy.
const DefaultCookieName = "lb"

// CookieName is the cookie policy's cookie.
func (p *LBPolicy) CookieName() string {
	if p.Name == "" {
		return DefaultCookieName
	}
	return p.Name
}

// ChooseCount is how many upstreams random_choose draws.
func (p *LBPolicy) ChooseCount() int {
	if p.Choose == 0 {
		return 2
	}
	return p.Choose
}

// Validate rejects an unknown policy, a header policy without a valid
// field name, a query policy without a key, bad weights, a choice of
// fewer than 2, a bad cookie name or max age, and an argument or
// fallback that the policy does not take.
func (p *LBPolicy) Validate() error {
	if p == nil {
		return nil
	}
	takes := map[string]bool{}
	switch p.Policy {
	case "header":
		if p.Field == "" {
			return fmt.Errorf("the header policy needs a field")
		}
		if !validFieldName(p.Field) {
			return fmt.Errorf("%q is not a header field name", p.Field)
		}
		takes["field"], takes["fallback"] = true, true
	case "query":
		if p.Key == "" {
			return fmt.Errorf("the query policy needs a key")
		}
		takes["key"], takes["fallback"] = true, true
	case "weighted_round_robin":
		total := 0
		for _, w := range p.Weights {
			if w < 0 {
				return fmt.Errorf("weighted_round_robin: weight %d is negative", w)
			}
			total += w
		}
		if total <= 0 {
			return fmt.Errorf("weighted_round_robin needs at least one upstream with a positive weight")
		}
		takes["weights"] = true
	case "random_choose":
		if p.ChooseCount() < 2 {
			return fmt.Errorf("random_choose: choose must be at least 2, got %d", p.Choose)
		}
		takes["choose"] = true
	case "cookie":
		if !validCookieName(p.CookieName()) {
			return fmt.Errorf("cookie: %q is not a cookie name", p.Name)
		}
		if p.MaxAge < 0 || (p.MaxAge > 0 && time.Duration(p.MaxAge) < time.Second) {
			return fmt.Errorf("cookie: max_age must be positive and at least 1s, got %s", time.Duration(p.MaxAge))
		}
		takes["name"], takes["secret"], takes["max_age"], takes["fallback"] = true, true, true, true
	case "round_robin", "least_conn", "first", "random", "ip_hash", "client_ip_hash", "uri_hash":
	default:
		return fmt.Errorf("unknown policy %q (want one of: %s)", p.Policy, strings.Join(LBPolicies, ", "))
	}
	for _, arg := range []struct {
		name string
		set  bool
	}{
		{"field", p.Field != ""}, {"key", p.Key != ""}, {"weights", p.Weights != nil}, {"choose", p.Choose != 0},
		{"name", p.Name != ""}, {"secret", p.Secret != ""}, {"max_age", p.MaxAge != 0}, {"fallback", p.Fallback != nil},
	} {
		if arg.set && !takes[arg.name] {
			return fmt.Errorf("policy %s takes no %s", p.Policy, arg.name)
		}
	}
	if err := p.Fallback.Validate(); err != nil {
		return fmt.Errorf("fallback: %w", err)
	}
	return nil
}

// CheckUpstreams rejects a policy that does not fit n upstreams:
// weighted_round_robin needs one weight per upstream, its own or a
// fallback's.
func (p *LBPolicy) CheckUpstreams(n int) error {
	for ; p != nil; p = p.Fallback {
		if p.Policy == "weighted_round_robin" && len(p.Weights) != n {
			return fmt.Errorf("weighted_round_robin has %d weights for %d upstreams: give each upstream its weight, 0 for none", len(p.Weights), n)
		}
	}
	return nil
}

// validCookieName reports whether name is an RFC 6265 cookie name (a
// token).
func validCookieName(name string) bool {
	return httpguts.ValidHeaderFieldName(name) // a token too
}
