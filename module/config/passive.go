package relayconfig

import (
	"fmt"
	"slices"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// DefaultFailDuration is how long a failed dial or upgrade is
// remembered when nothing else is configured.
const DefaultFailDuration = 5 * time.Second

// PassiveHealthChecks judge the upstreams by the upgrades they get, as
// reverse_proxy's passive health checks judge them by requests. An
// upstream with MaxFails failures within FailDuration is down: it goes
// after the others (those up) until they expire or it answers an
// upgrade well. A failure is a failed dial or upgrade (no answer in
// time, not HTTP, a bad 101), or an answer with an UnhealthyStatus or
// slower than UnhealthyLatency (that answer is still used).
type PassiveHealthChecks struct {
	// FailDuration is how long a failure is remembered. Default: 5s. A
	// negative value remembers none (an upgrade still goes on to the
	// next upstream when one fails).
	FailDuration caddy.Duration `json:"fail_duration,omitempty"`
	// MaxFails is how many failures within FailDuration make an upstream
	// down. Default: 1.
	MaxFails int `json:"max_fails,omitempty"`
	// UnhealthyStatus are answers that count as failures: codes (503)
	// or classes (5 for 5xx).
	UnhealthyStatus []int `json:"unhealthy_status,omitempty"`
	// UnhealthyLatency: an answer that took longer, from the dial on,
	// counts as a failure. Default: none.
	UnhealthyLatency caddy.Duration `json:"unhealthy_latency,omitempty"`
	// UnhealthyRequestCount caps the connections an upstream holds (its
	// relays and the upgrades under way to it, across every
	// configuration of the process, as least_conn counts them): at the
	// cap it gets no more until one ends; when every upstream is at it,
	// an upgrade gets 503. Default: no cap.
	UnhealthyRequestCount int `json:"unhealthy_request_count,omitempty"`
}

// SetDefaults fills every unset field with its default.
func (p *PassiveHealthChecks) SetDefaults() {
	if p == nil {
		return
	}
	if p.FailDuration == 0 {
		p.FailDuration = caddy.Duration(DefaultFailDuration)
	}
	if p.MaxFails == 0 {
		p.MaxFails = 1
	}
}

// Validate rejects counts, statuses and durations that cannot work.
func (p *PassiveHealthChecks) Validate() error {
	if p == nil {
		return nil
	}
	if p.MaxFails < 0 || p.UnhealthyRequestCount < 0 || p.UnhealthyLatency < 0 {
		return fmt.Errorf("max_fails, unhealthy_request_count and unhealthy_latency must not be negative")
	}
	for _, s := range p.UnhealthyStatus {
		if !(s >= 2 && s <= 5) && !(s >= 100 && s <= 599) || s == 101 {
			return fmt.Errorf("unhealthy_status %d is not a refusal's status (503) or class (5 for 5xx); a 101 (1xx) is every upgrade's answer", s)
		}
	}
	return nil
}

// StatusUnhealthy reports whether an answer's status counts as a
// failure.
func (p *PassiveHealthChecks) StatusUnhealthy(status int) bool {
	if p == nil {
		return false
	}
	return slices.ContainsFunc(p.UnhealthyStatus, func(want int) bool { return statusMatches(status, want) })
}
