package relayconfig

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
)

// HeaderOps change the headers of the upgrade request sent to the
// backend, as Caddy's header operations (reverse_proxy's header_up) do,
// in the same JSON form, applied in Caddy's order: a Delete of "*"
// first, then Add, Set, the other Deletes, then Replace. Values
// may hold Caddy placeholders, the upstream's
// {http.reverse_proxy.upstream.hostport} (Caddyfile: {upstream_hostport})
// with .host and .port among them; an unknown placeholder is left as
// written. "Host" is the request's host. The module applies them with
// Caddy's own code.
type HeaderOps struct {
	Add     map[string][]string      `json:"add,omitempty"`
	Set     map[string][]string      `json:"set,omitempty"`
	Delete  []string                 `json:"delete,omitempty"`
	Replace map[string][]Replacement `json:"replace,omitempty"`
}

// Replacement replaces Search, or matches of SearchRegexp, in a header's
// values with Replace.
type Replacement struct {
	Search       string `json:"search,omitempty"`
	SearchRegexp string `json:"search_regexp,omitempty"`
	Replace      string `json:"replace,omitempty"`
}

// FixedHeaders are the fields the upgrade itself needs. header_up may
// not name them, and the module sets them again after the operations
// (a wildcard may reach them); Content-Length and Transfer-Encoding are
// removed (an upgrade request has no body).
var FixedHeaders = []string{
	"Connection", "Upgrade", "Sec-Websocket-Key", "Sec-Websocket-Version",
	"Content-Length", "Transfer-Encoding",
}

// CheckHeaderField reports why header_up cannot name field, or nil when
// it can. With wildcard, a leading or trailing * is allowed (a delete's
// suffix, prefix or substring match; * alone is every field).
func CheckHeaderField(field string, wildcard bool) error {
	name := field
	if wildcard && name != "*" {
		name = strings.TrimSuffix(strings.TrimPrefix(name, "*"), "*")
	}
	if name == "*" && wildcard {
		return nil
	}
	if !validFieldName(name) {
		return fmt.Errorf("%q is not a header field name", field)
	}
	canon := http.CanonicalHeaderKey(field)
	for _, f := range FixedHeaders {
		if canon == f {
			return fmt.Errorf("%s is set by the upgrade itself and cannot be changed", canon)
		}
	}
	return nil
}

// validFieldName reports whether name is an HTTP token (RFC 9110 5.1).
func validFieldName(name string) bool {
	return name != "" && !strings.ContainsFunc(name, func(r rune) bool {
		return r <= ' ' || r >= 0x7f || strings.ContainsRune(`"(),/:;<=>?@[\]{}*`, r)
	})
}

// Validate checks every field name and regular expression of ops (nil
// is valid).
func (ops *HeaderOps) Validate() error {
	if ops == nil {
		return nil
	}
	for k := range ops.Add {
		if err := CheckHeaderField(k, false); err != nil {
			return err
		}
	}
	for k := range ops.Set {
		if err := CheckHeaderField(k, false); err != nil {
			return err
		}
	}
	for _, k := range ops.Delete {
		if err := CheckHeaderField(k, true); err != nil {
			return err
		}
	}
	for k, rs := range ops.Replace {
		if err := CheckHeaderField(k, k == "*"); err != nil {
			return err
		}
		for i, r := range rs {
			if r.Search != "" && r.SearchRegexp != "" {
				return fmt.Errorf("replacement %d for %s: give search or search_regexp, not both", i, k)
			}
			if r.SearchRegexp != "" && !hasPlaceholder(r.SearchRegexp) {
				if _, err := regexp.Compile(r.SearchRegexp); err != nil {
					return fmt.Errorf("replacement %d for %s: %w", i, k, err)
				}
			}
		}
	}
	return nil
}

// hasPlaceholder reports whether s holds a {...} with something inside:
// Caddy compiles such a regexp only once the placeholders are replaced,
// and every other one at provisioning.
func hasPlaceholder(s string) bool {
	_, after, ok := strings.Cut(s, "{")
	return ok && strings.Index(after, "}") > 0
}
