package relayconfig

import (
	"fmt"
	"strings"
)

// LBPolicy chooses the upstream of each upgrade, as reverse_proxy's
// lb_policy does: the same names, the same hashing (so a hash policy
// picks the backend reverse_proxy picks for the same request, given the
// same upstream addresses), and the same JSON as reverse_proxy's
// load_balancing.selection_policy. The upstreams after the choice are
// tried in the policy's order when a dial fails.
type LBPolicy struct {
	// Policy is one of round_robin (the default), least_conn, first,
	// random, ip_hash, client_ip_hash, uri_hash, header and query.
	Policy string `json:"policy"`
	// Field is the request header whose value the header policy hashes.
	Field string `json:"field,omitempty"`
	// Key is the query parameter whose values the query policy hashes.
	Key string `json:"key,omitempty"`
	// Fallback is the policy used when the header or query parameter is
	// absent or empty. Default: random.
	Fallback *LBPolicy `json:"fallback,omitempty"`
}

// LBPolicies are the policy names, in the order the docs give them.
var LBPolicies = []string{
	"round_robin", "least_conn", "first", "random",
	"ip_hash", "client_ip_hash", "uri_hash", "header", "query",
}

// Validate rejects an unknown policy, a header policy without a valid
// field name, a query policy without a key, and an argument or fallback
// that the policy does not take.
func (p *LBPolicy) Validate() error {
	if p == nil {
		return nil
	}
	switch p.Policy {
	case "header":
		if p.Field == "" {
			return fmt.Errorf("the header policy needs a field")
		}
		if !validFieldName(p.Field) {
			return fmt.Errorf("%q is not a header field name", p.Field)
		}
		if p.Key != "" {
			return fmt.Errorf("the header policy takes a field, not a key")
		}
	case "query":
		if p.Key == "" {
			return fmt.Errorf("the query policy needs a key")
		}
		if p.Field != "" {
			return fmt.Errorf("the query policy takes a key, not a field")
		}
	case "round_robin", "least_conn", "first", "random", "ip_hash", "client_ip_hash", "uri_hash":
		if p.Field != "" || p.Key != "" || p.Fallback != nil {
			return fmt.Errorf("policy %s takes no field, key or fallback", p.Policy)
		}
		return nil
	default:
		return fmt.Errorf("unknown policy %q (want one of: %s)", p.Policy, strings.Join(LBPolicies, ", "))
	}
	if err := p.Fallback.Validate(); err != nil {
		return fmt.Errorf("fallback: %w", err)
	}
	return nil
}
