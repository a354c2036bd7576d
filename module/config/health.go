package relayconfig

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
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
}

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
	return nil
}

// StatusOK reports whether status is the one expected.
func (h *HealthChecks) StatusOK(status int) bool {
	if h.ExpectStatus < 10 {
		return status/100 == h.ExpectStatus
	}
	return status == h.ExpectStatus
}
