package wsrelay

import (
	"sync"
	"sync/atomic"
	"time"

	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
)

// upstreamPool hands out upstreams round-robin and skips one whose dial
// failed within the last failBackoff.
type upstreamPool struct {
	list []relayconfig.Upstream
	next atomic.Uint64

	mu       sync.Mutex
	failedAt map[int]time.Time
}

// failBackoff is how long an upstream whose dial failed is skipped while
// another one is available.
const failBackoff = 5 * time.Second

func newUpstreamPool(list []relayconfig.Upstream) *upstreamPool {
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
