package relayconfig

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"golang.org/x/net/http/httpguts"
)

// Defaults of the active health checks, as reverse_proxy's.
const (
	DefaultHealthInterval = 30 * time.Second
	DefaultHealthTimeout  = 5 * time.Second
	// MinHealthInterval is the shortest interval taken.
	MinHealthInterval = 10 * time.Millisecond
)

// HealthChecks are active health checks: every Interval, each upstream
// is asked for URI, and one that fails Fails checks in a row is
// unhealthy until it passes Passes in a row. An unhealthy upstream is
// tried only after every healthy one (an upgrade still goes to one when
// none is healthy, rather than failing outright).
type HealthChecks struct {
	// URI is the path (and query) asked of each upstream, under the
	// upstream's own path, as a client's request path goes. Required.
	URI string `json:"uri,omitempty"`
	// Interval is the time between two checks of an upstream. Default:
	// 30s.
	Interval caddy.Duration `json:"interval,omitempty"`
	// Timeout bounds a check: the dial, the request and the answer's
	// header. Default: 5s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// ExpectStatus is the status a healthy upstream answers: a code
	// (200), or a class as its first digit (2 for any 2xx). Default: 2,
	// or 101 with Upgrade.
	ExpectStatus int `json:"expect_status,omitempty"`
	// Passes and Fails are how many checks in a row make an unhealthy
	// upstream healthy and a healthy one unhealthy. Default: 1 each.
	Passes int `json:"passes,omitempty"`
	Fails  int `json:"fails,omitempty"`
	// Upgrade makes each check a WebSocket upgrade of URI (101 with a
	// valid Sec-WebSocket-Accept, then a close frame 1001) instead of a
	// GET: it proves that the upstream's WebSocket endpoint answers, not
	// only its HTTP server.
	Upgrade bool `json:"upgrade,omitempty"`

	// Upstream, host:port, is where every upstream's checks go instead
	// of the upstream's own address, and their Host (as reverse_proxy's
	// health_upstream): for an app whose health endpoint is served
	// apart. Default: the upstream's own address.
	Upstream string `json:"upstream,omitempty"`
	// Port is the port each upstream's checks go to on the upstream's
	// host, and in their Host (TCP upstreams only; not with Upstream).
	// Default: the upstream's own port.
	Port int `json:"port,omitempty"`
	// Headers are set on each check's request (names in any case are
	// one field); a Host field sets its Host, unless it comes out empty. Names and values may hold global placeholders ({env.*},
	// {system.*}) and {http.reverse_proxy.active.target_upstream}, the
	// upstream's address, as reverse_proxy's health_headers.
	Headers http.Header `json:"headers,omitempty"`
	// Method is a check's method. Default: GET; an upgrade is a GET.
	Method string `json:"method,omitempty"`
	// Body is sent with each check (not with Upgrade); its global
	// placeholders are replaced, and braces that are no placeholder
	// (JSON's) are kept.
	Body string `json:"body,omitempty"`
	// FollowRedirects follows a check's 3xx answers, as many as Timeout
	// allows, to the same upstream (as reverse_proxy's: the Location's host goes in
	// Host, the dial is the upstream's). Default: a 3xx is the answer.
	FollowRedirects bool `json:"follow_redirects,omitempty"`
	// ExpectBody is a regular expression (Go's syntax) that a healthy
	// answer's body matches (not with Upgrade: a 101 has no body).
	ExpectBody string `json:"expect_body,omitempty"`
	// MaxSize bounds how much of the body is read for ExpectBody, in
	// bytes. Default: 1 MiB.
	MaxSize int64 `json:"max_size,omitempty"`
}

// DefaultHealthMaxSize is how much of an answer's body is read for
// ExpectBody by default.
const DefaultHealthMaxSize = 1 << 20

// HealthTargetPlaceholder is the placeholder of Headers that holds the
// checked upstream's address (reverse_proxy's name for it).
const HealthTargetPlaceholder = "http.reverse_proxy.active.target_upstream"

// SetDefaults fills every unset field with its default.
func (h *HealthChecks) SetDefaults() {
	if h == nil {
		return
	}
	if h.Interval == 0 {
		h.Interval = caddy.Duration(DefaultHealthInterval)
	}
	if h.Timeout == 0 {
		h.Timeout = caddy.Duration(DefaultHealthTimeout)
	}
	if h.ExpectStatus == 0 {
		h.ExpectStatus = 2
		if h.Upgrade {
			h.ExpectStatus = 101
		}
	}
	if h.Passes == 0 {
		h.Passes = 1
	}
	if h.Fails == 0 {
		h.Fails = 1
	}
	if h.Method == "" {
		h.Method = http.MethodGet
	}
	if h.MaxSize == 0 {
		h.MaxSize = DefaultHealthMaxSize
	}
}

// Validate rejects health checks without a URI or with one that is not
// an origin-form path, and bad durations, counts or statuses.
func (h *HealthChecks) Validate() error {
	if h == nil {
		return nil
	}
	if h.URI == "" {
		return fmt.Errorf("uri is required")
	}
	u, err := url.ParseRequestURI(h.URI)
	if err != nil || !strings.HasPrefix(h.URI, "/") || u.Host != "" || strings.ContainsAny(h.URI, " \r\n#") {
		return fmt.Errorf("uri %q is not a path (and query), like /healthz", h.URI)
	}
	if h.Interval < 0 || h.Timeout < 0 {
		return fmt.Errorf("interval and timeout must be positive")
	}
	if h.Interval != 0 && time.Duration(h.Interval) < MinHealthInterval {
		return fmt.Errorf("interval %s is shorter than %s: each upstream would be asked without a pause", time.Duration(h.Interval), MinHealthInterval)
	}
	if h.Passes < 0 || h.Fails < 0 {
		return fmt.Errorf("passes and fails must be positive")
	}
	if s := h.ExpectStatus; s != 0 && !(s >= 1 && s <= 5) && !(s >= 100 && s <= 599) {
		return fmt.Errorf("expect_status %d is not a status (200) or a class (2 for 2xx)", s)
	}
	return h.validateRequest()
}

// validateRequest checks the options that shape a check's request and
// the reading of its answer.
func (h *HealthChecks) validateRequest() error {
	if h.Upstream != "" {
		host, port, err := net.SplitHostPort(h.Upstream)
		if err != nil || host == "" {
			return fmt.Errorf("upstream %q is not host:port", h.Upstream)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("upstream %q: bad port %q", h.Upstream, port)
		}
		if h.Port != 0 {
			return fmt.Errorf("port and upstream both given: upstream names the port")
		}
	}
	if h.Port < 0 || h.Port > 65535 {
		return fmt.Errorf("port %d is not a port (1-65535)", h.Port)
	}
	for name, vals := range h.Headers {
		if !strings.Contains(name, "{") && !httpguts.ValidHeaderFieldName(name) {
			return fmt.Errorf("headers: %q is not a field name", name)
		}
		for _, v := range vals {
			if strings.ContainsAny(v, "\r\n\x00") {
				return fmt.Errorf("headers: the value of %s holds a line break or NUL", name)
			}
		}
	}
	if h.Method != "" && (strings.ContainsFunc(h.Method, func(r rune) bool { return !httpguts.IsTokenRune(r) })) {
		return fmt.Errorf("method %q is not a method", h.Method)
	}
	if h.ExpectBody != "" {
		if _, err := regexp.Compile(h.ExpectBody); err != nil {
			return fmt.Errorf("expect_body: %v", err)
		}
	}
	if h.MaxSize < 0 {
		return fmt.Errorf("max_size must be positive")
	}
	if h.Upgrade {
		switch {
		case h.Method != "" && h.Method != http.MethodGet:
			return fmt.Errorf("method %s with upgrade: a WebSocket upgrade is a GET", h.Method)
		case h.Body != "":
			return fmt.Errorf("body with upgrade: a WebSocket upgrade sends none")
		case h.ExpectBody != "":
			return fmt.Errorf("expect_body with upgrade: a 101 has no body")
		case h.FollowRedirects:
			return fmt.Errorf("follow_redirects with upgrade: an upgrade is not redirected")
		}
	}
	return nil
}

// CheckUpstreams rejects a Port with a Unix socket upstream, which has
// no host to take it to.
func (h *HealthChecks) CheckUpstreams(ups []string) error {
	if h == nil || h.Port == 0 || h.Upstream != "" {
		return nil
	}
	for _, s := range ups {
		if u, err := ParseUpstream(s); err == nil && u.Network == "unix" {
			return fmt.Errorf("port %d: upstream %s is a Unix socket, which has no host to check on another port (health_upstream names one)", h.Port, s)
		}
	}
	return nil
}

// StatusOK reports whether status is the one expected.
func (h *HealthChecks) StatusOK(status int) bool { return statusMatches(status, h.ExpectStatus) }

// statusMatches reports whether status is want, a code (503) or a class
// (5 for 5xx), as Caddy matches a configured status.
func statusMatches(status, want int) bool {
	if want < 10 {
		return status/100 == want
	}
	return status == want
}
