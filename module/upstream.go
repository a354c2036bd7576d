package wsrelay

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Upstream is one parsed backend address.
type Upstream struct {
	// Raw is the address as configured, used in logs.
	Raw string
	// Addr is host:port to dial.
	Addr string
	// TLS is true for wss:// upstreams.
	TLS bool
	// Path is prefixed to the request path ("" for none).
	Path string
}

// ParseUpstream parses "host:port", "ws://host:port[/path]" or
// "wss://host:port[/path]". A ws:// or wss:// address without a port
// takes 80 or 443.
func ParseUpstream(s string) (Upstream, error) {
	u := Upstream{Raw: s}
	if s == "" {
		return u, fmt.Errorf("empty upstream address")
	}
	if !strings.Contains(s, "://") {
		host, port, err := net.SplitHostPort(s)
		if err != nil || port == "" {
			return u, fmt.Errorf("upstream %q: want host:port, ws://host:port or wss://host:port", s)
		}
		u.Addr = net.JoinHostPort(host, port)
		return u, nil
	}
	pu, err := url.Parse(s)
	if err != nil {
		return u, fmt.Errorf("upstream %q: %w", s, err)
	}
	switch pu.Scheme {
	case "ws":
	case "wss":
		u.TLS = true
	default:
		return u, fmt.Errorf("upstream %q: scheme must be ws or wss, not %q", s, pu.Scheme)
	}
	if pu.Host == "" || pu.Hostname() == "" {
		return u, fmt.Errorf("upstream %q: missing host", s)
	}
	if pu.RawQuery != "" || pu.Fragment != "" || pu.User != nil {
		return u, fmt.Errorf("upstream %q: a query, fragment or user info is not allowed", s)
	}
	port := pu.Port()
	if port == "" {
		port = "80"
		if u.TLS {
			port = "443"
		}
	}
	u.Addr = net.JoinHostPort(pu.Hostname(), port)
	u.Path = strings.TrimSuffix(pu.EscapedPath(), "/")
	return u, nil
}

// upstreamPool hands out upstreams round-robin and skips one whose dial
// failed within the last failBackoff.
type upstreamPool struct {
	list []Upstream
	next atomic.Uint64

	mu       sync.Mutex
	failedAt map[int]time.Time
}

// failBackoff is how long an upstream whose dial failed is skipped while
// another one is available.
const failBackoff = 5 * time.Second

func newUpstreamPool(list []Upstream) *upstreamPool {
	return &upstreamPool{list: list, failedAt: make(map[int]time.Time)}
}

// order returns the indexes of the upstreams to try for one request: the
// round-robin choice first, then the rest; upstreams that failed recently
// go last, so they are tried only when all others fail too.
func (p *upstreamPool) order(now time.Time) []int {
	n := len(p.list)
	start := int(p.next.Add(1)-1) % n
	healthy := make([]int, 0, n)
	var failed []int
	p.mu.Lock()
	for i := 0; i < n; i++ {
		idx := (start + i) % n
		if t, ok := p.failedAt[idx]; ok && now.Sub(t) < failBackoff {
			failed = append(failed, idx)
			continue
		}
		healthy = append(healthy, idx)
	}
	p.mu.Unlock()
	return append(healthy, failed...)
}

// markFailed records a failed dial of upstream idx at now.
func (p *upstreamPool) markFailed(idx int, now time.Time) {
	p.mu.Lock()
	p.failedAt[idx] = now
	p.mu.Unlock()
}

// markHealthy clears a failure record after a successful dial.
func (p *upstreamPool) markHealthy(idx int) {
	p.mu.Lock()
	delete(p.failedAt, idx)
	p.mu.Unlock()
}
