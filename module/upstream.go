package wsrelay

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/cespare/xxhash/v2"
	"golang.org/x/net/http/httpguts"

	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
	"github.com/websocket-relay/websocket_relay/module/upgrade"
)

// upstreamPool orders the upstreams of each upgrade by the handler's
// lb_policy and puts last those whose dial or upgrade failed within the last
// fail_duration (max_fails times). It counts the connections each upstream holds, for
// least_conn and the upstream_connections gauge.
type upstreamPool struct {
	list   []relayconfig.Upstream
	policy *relayconfig.LBPolicy // nil: round_robin
	// keys name the upstreams as reverse_proxy's Dial does ("host:port",
	// "unix/<path>"): the hash policies hash them with the request's
	// key, as reverse_proxy does, so both pick the same backend.
	keys []string
	// conns are the upstreams' connection counts, shared by every pool
	// with the same upstream (connCount).
	conns []*atomic.Int64
	next  atomic.Uint64 // round_robin's and weighted_round_robin's count
	// cookies are, for each cookie policy of the chain, the cookie value
	// that names each upstream (cookieValue of its key).
	cookies map[*relayconfig.LBPolicy][]string

	mu sync.Mutex
	// failures are, for each upstream, the times of its recent failed
	// dials or upgrades (at most maxFails, none older than failFor).
	failures map[int][]time.Time
	failFor  time.Duration // fail_duration; negative: none remembered
	maxFails int
	// limit caps each upstream's connection count (0: no cap).
	limit int64
	// unhealthy marks the upstreams that the active health checks found
	// unhealthy (all false without them).
	unhealthy []atomic.Bool
}

// failBackoff is how long an upstream whose dial or upgrade failed is skipped while
// another one is available, unless fail_duration says otherwise.
const failBackoff = relayconfig.DefaultFailDuration

func newUpstreamPool(list []relayconfig.Upstream, policy *relayconfig.LBPolicy) *upstreamPool {
	p := &upstreamPool{list: list, policy: policy, failures: make(map[int][]time.Time),
		failFor: failBackoff, maxFails: 1, unhealthy: make([]atomic.Bool, len(list))}
	for _, u := range list {
		key := u.Dial()
		p.keys = append(p.keys, key)
		p.conns = append(p.conns, connCount(key))
	}
	for c := policy; c != nil; c = c.Fallback {
		if c.Policy == "cookie" {
			if p.cookies == nil {
				p.cookies = make(map[*relayconfig.LBPolicy][]string)
			}
			for _, key := range p.keys {
				p.cookies[c] = append(p.cookies[c], cookieValue(c.Secret, key))
			}
		}
	}
	return p
}

// cookieValue is the cookie policy's value naming the upstream dialed
// as key: reverse_proxy's, the hex HMAC-SHA256 of its Dial address.
func cookieValue(secret, key string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(key))
	return hex.EncodeToString(m.Sum(nil))
}

// connCounts holds one connection count per upstream address, for every
// handler and configuration of the process, as reverse_proxy counts per
// host: least_conn sees what another directive, or a configuration still
// draining after a reload, holds on the same backend. An entry stays
// when no configuration names its address any more (a few bytes for each
// address ever configured).
var connCounts sync.Map // key -> *atomic.Int64

func connCount(key string) *atomic.Int64 {
	if c, ok := connCounts.Load(key); ok {
		return c.(*atomic.Int64)
	}
	c, _ := connCounts.LoadOrStore(key, new(atomic.Int64))
	return c.(*atomic.Int64)
}

// order returns the indexes of the upstreams to try for r: the policy's
// choice first, then the rest in the policy's order; upstreams whose
// dial or upgrade failed recently go after the others, and those the health checks
// found unhealthy last, so they are tried only when all others fail too.
func (p *upstreamPool) order(r *http.Request, now time.Time) []int {
	unhealthy := make([]bool, len(p.list))
	down := make([]bool, len(p.list)) // unhealthy, or its dial or upgrade failed recently
	p.mu.Lock()
	for i := range p.list {
		unhealthy[i] = p.unhealthy[i].Load()
		down[i] = unhealthy[i] || p.failedLocked(i, now)
	}
	p.mu.Unlock()
	ranked := p.rank(p.policy, r, false, down)
	up := ranked[:0:0]
	var failed, sick []int
	for _, idx := range ranked {
		switch {
		case unhealthy[idx]:
			sick = append(sick, idx)
		case down[idx]:
			failed = append(failed, idx)
		default:
			up = append(up, idx)
		}
	}
	return append(append(up, failed...), sick...)
}

// rank orders every upstream by policy for r. The upstreams marked down
// are put last by order; the policies whose choice depends on which are
// up (round_robin, weighted_round_robin, random_choose, and cookie) make
// it as reverse_proxy's do, from those up. With peek, round_robin and
// weighted_round_robin do not move their count on: the order is for
// failing over from a choice that another policy made (a cookie's
// upstream), and reverse_proxy only asks its fallback when the cookie
// names no available upstream.
func (p *upstreamPool) rank(policy *relayconfig.LBPolicy, r *http.Request, peek bool, down []bool) []int {
	n := len(p.list)
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	name := "round_robin"
	if policy != nil {
		name = policy.Policy
	}
	switch name {
	case "first":
		return idx
	case "random":
		rand.Shuffle(n, func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		return idx
	case "least_conn", "random_choose":
		// Ties in random order, as reverse_proxy breaks them.
		rand.Shuffle(n, func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		counts := make([]int64, n)
		for i := range counts {
			counts[i] = p.conns[i].Load()
		}
		byCount := func(a, b int) int { return cmp.Compare(counts[a], counts[b]) }
		if name == "random_choose" {
			// The least loaded of k drawn at random from those up
			// (from all when none is), then the others drawn, then
			// the rest at random.
			slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(b2i(down[a]), b2i(down[b])) })
			// Those up come first; none down (-1) or all: draw from all.
			up := slices.IndexFunc(idx, func(i int) bool { return down[i] })
			if up <= 0 {
				up = n
			}
			k := min(policy.ChooseCount(), up)
			slices.SortStableFunc(idx[:k], byCount)
			return idx
		}
		slices.SortStableFunc(idx, byCount)
		return idx
	case "weighted_round_robin":
		return p.weighted(policy.Weights, peek, down)
	case "cookie":
		fallback := policy.Fallback
		if fallback == nil {
			fallback = &relayconfig.LBPolicy{Policy: "random"}
		}
		m := p.cookieMatch(policy, r)
		if m >= 0 && down[m] && slices.Contains(down, false) {
			// As reverse_proxy, which asks its fallback then. When all
			// are down, the client's own is as good as any, and its
			// cookie stays.
			m = -1
		}
		ranked := p.rank(fallback, r, peek || m >= 0, down)
		if m < 0 {
			return ranked
		}
		// The cookie's upstream first, as reverse_proxy takes it
		// whatever the fallback (a weight of 0 included).
		if i := slices.Index(ranked, m); i >= 0 {
			copy(ranked[1:i+1], ranked[:i])
			ranked[0] = m
			return ranked
		}
		return append([]int{m}, ranked...)
	case "ip_hash":
		ip, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			ip = r.RemoteAddr
		}
		return p.byHash(idx, ip)
	case "client_ip_hash":
		addr, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
		ip, _, err := net.SplitHostPort(addr)
		if err != nil {
			ip = addr
		}
		return p.byHash(idx, ip)
	case "uri_hash":
		return p.byHash(idx, r.RequestURI)
	case "header", "query":
		if key := hashKey(policy, r); key != "" {
			return p.byHash(idx, key)
		}
		fallback := policy.Fallback
		if fallback == nil {
			fallback = &relayconfig.LBPolicy{Policy: "random"}
		}
		return p.rank(fallback, r, peek, down)
	}
	start := p.robin(n, peek, down)
	for i := range idx {
		idx[i] = (start + i) % n
	}
	return idx
}

// hashKey is what the header or query policy hashes for r: empty when
// it takes its fallback.
func hashKey(policy *relayconfig.LBPolicy, r *http.Request) string {
	if policy.Policy == "query" {
		return strings.Join(r.URL.Query()[policy.Key], ",")
	}
	return selectionHeader(r, policy.Field)
}

// weighted orders the upstreams of positive weight as
// reverse_proxy's weighted_round_robin picks them: each upgrade moves
// the count on by one, and upstream i takes weights[i] of every sum of
// the weights in a row, the first pick being the count's 1. The others
// of positive weight follow in turn; those of weight 0 get none.
func (p *upstreamPool) weighted(weights []int, peek bool, down []bool) []int {
	var positive []int
	total := 0
	for i, w := range weights {
		if w > 0 && i < len(p.list) {
			positive = append(positive, i)
			total += w
		}
	}
	at := int(p.count(peek) % uint64(total))
	pick := 0
	for k, i := range positive {
		if at < weights[i] {
			pick = k
			break
		}
		at -= weights[i]
	}
	// As reverse_proxy: the pick's place among those of positive weight
	// that are up (when some are).
	var up []int
	for _, i := range positive {
		if !down[i] {
			up = append(up, i)
		}
	}
	if len(up) > 0 {
		pick = slices.Index(positive, up[pick%len(up)])
	}
	return append(positive[pick:], positive[:pick]...)
}

// robin is round_robin's pick of n upstreams: as reverse_proxy's, the
// count moves on by one for each upstream it passes that is down, so the
// ones after a down upstream do not take its turns; the first pick is
// the second upstream. When all are down they take turns.
func (p *upstreamPool) robin(n int, peek bool, down []bool) int {
	if !slices.Contains(down, false) {
		// All down: each upgrade takes the next in turn all the same.
		return int(p.count(peek) % uint64(n))
	}
	base := p.next.Load()
	for k := uint64(1); ; k++ {
		c := base + k
		if !peek {
			c = p.next.Add(1)
		}
		if i := int(c % uint64(n)); !down[i] || k >= uint64(n) {
			return i
		}
	}
}

// b2i is 1 for true.
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// count moves the round-robin count on and returns it, or with peek
// returns what it would be.
func (p *upstreamPool) count(peek bool) uint64 {
	if peek {
		return p.next.Load() + 1
	}
	return p.next.Add(1)
}

// cookieMatch is the upstream that r's cookie of the cookie policy
// names, or -1.
func (p *upstreamPool) cookieMatch(policy *relayconfig.LBPolicy, r *http.Request) int {
	c, err := r.Cookie(policy.CookieName())
	if err != nil {
		return -1
	}
	for i, v := range p.cookies[policy] {
		if hmac.Equal([]byte(v), []byte(c.Value)) {
			return i
		}
	}
	return -1
}

// stickyCookie is the cookie that the answer to r, relayed to upstream
// idx, sets for the cookie policy that chose it: nil when no cookie
// policy chose (another policy did, or a header or query policy found
// its key) or when r's cookie named idx already. It is reverse_proxy's
// cookie: Path=/, HttpOnly, SameSite=Lax, or Secure and SameSite=None
// when the client came over TLS (itself, or by a trusted proxy's
// X-Forwarded-Proto), and max_age's Max-Age.
func (p *upstreamPool) stickyCookie(r *http.Request, idx int) *http.Cookie {
	policy := p.policy
	for policy != nil && policy.Policy != "cookie" {
		if policy.Policy != "header" && policy.Policy != "query" || hashKey(policy, r) != "" {
			return nil
		}
		policy = policy.Fallback
	}
	if policy == nil || p.cookieMatch(policy, r) == idx {
		return nil
	}
	c := &http.Cookie{
		Name:     policy.CookieName(),
		Value:    p.cookies[policy][idx],
		Path:     "/",
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
		MaxAge:   int(time.Duration(policy.MaxAge).Seconds()),
	}
	tlsProxy := false
	if trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool); trusted {
		xfp := r.Header.Values("X-Forwarded-Proto")
		tlsProxy = len(xfp) > 0 && xfp[len(xfp)-1] == "https"
	}
	if r.TLS != nil || tlsProxy {
		c.Secure, c.SameSite = true, http.SameSiteNoneMode
	}
	return c
}

// selectionHeader is the value of field that reverse_proxy's header
// policy hashes for r. reverse_proxy selects on its prepared request:
// hop-by-hop fields removed (Connection and Upgrade set again for an
// upgrade, TE kept as "trailers"), Early-Data, X-Forwarded-* and Via set
// as they go to its backend. Host is r.Host (net/http moves Host out of
// the header map) in any letter case, as documented; reverse_proxy takes
// it only when spelled "Host" (its `header host` uses the fallback).
func selectionHeader(r *http.Request, field string) string {
	if http.CanonicalHeaderKey(field) == "Host" && r.Host != "" {
		return r.Host
	}
	h := r.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	te := httpguts.HeaderValuesContainsToken(h["Te"], "trailers")
	var up string
	if httpguts.HeaderValuesContainsToken(h["Connection"], "Upgrade") && len(h["Upgrade"]) > 0 {
		up = strings.ToLower(h["Upgrade"][0])
	}
	if upgrade.IsExtendedConnect(r) {
		// reverse_proxy selects on the HTTP/1.1 upgrade it makes of an
		// extended CONNECT, with Connection and Upgrade set.
		up = "websocket"
	}
	upgrade.RemoveHopHeaders(h)
	if te {
		h["Te"] = []string{"trailers"}
	}
	if up != "" {
		h["Connection"] = []string{"Upgrade"}
		h["Upgrade"] = []string{up}
	}
	if r.TLS != nil && !r.TLS.HandshakeComplete {
		h["Early-Data"] = []string{"1"}
	}
	setForwarded(h, r)
	h["Via"] = append(h["Via"], strconv.Itoa(r.ProtoMajor)+"."+strconv.Itoa(r.ProtoMinor)+" Caddy")
	return h.Get(field)
}

// byHash orders idx by rendezvous (highest random weight) hashing of
// key: reverse_proxy's hash of each upstream's Dial address followed by
// key, highest first. The first is the one reverse_proxy's hash policy
// picks; an upstream added or removed moves only the keys it wins.
func (p *upstreamPool) byHash(idx []int, key string) []int {
	weights := make([]uint64, len(idx))
	for _, i := range idx {
		weights[i] = xxhash.Sum64String(p.keys[i] + key)
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(weights[b], weights[a]) })
	return idx
}

// name counts the pool's upstreams as named by one more configuration
// (by one less with -1), for their upstream_connections series.
func (p *upstreamPool) name(delta int) {
	for _, u := range p.list {
		useUpstreamSeries(u.Raw, delta, 0)
	}
}

// setPassive applies the passive health checks' fail_duration,
// max_fails and unhealthy_request_count.
func (p *upstreamPool) setPassive(c *relayconfig.PassiveHealthChecks) {
	if c == nil {
		return
	}
	p.failFor = time.Duration(c.FailDuration)
	p.maxFails = max(c.MaxFails, 1)
	p.limit = int64(c.UnhealthyRequestCount)
}

// failedLocked reports whether upstream i has maxFails failures within
// failFor before now. Call with p.mu held.
func (p *upstreamPool) failedLocked(i int, now time.Time) bool {
	n := 0
	for _, t := range p.failures[i] {
		if now.Sub(t) < p.failFor {
			n++
		}
	}
	return n >= p.maxFails
}

// markFailed records a failed dial or upgrade of upstream idx at now.
func (p *upstreamPool) markFailed(idx int, now time.Time) {
	if p.failFor < 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	kept := p.failures[idx][:0]
	for _, t := range p.failures[idx] {
		if now.Sub(t) < p.failFor {
			kept = append(kept, t)
		}
	}
	kept = append(kept, now)
	if len(kept) > p.maxFails {
		kept = kept[len(kept)-p.maxFails:]
	}
	p.failures[idx] = kept
}

// markHealthy clears the failures of upstream idx after a valid answer.
func (p *upstreamPool) markHealthy(idx int) {
	p.mu.Lock()
	delete(p.failures, idx)
	p.mu.Unlock()
}

// hold counts a connection to upstream idx until the lease's release.
func (p *upstreamPool) hold(idx int) *lease {
	p.conns[idx].Add(1)
	useUpstreamSeries(p.list[idx].Raw, 0, 1)
	return &lease{p: p, idx: idx}
}

// tryHold holds a connection to upstream idx as hold does, unless it is
// at its cap (unhealthy_request_count): then it returns nil.
func (p *upstreamPool) tryHold(idx int) *lease {
	if p.limit > 0 {
		for {
			c := p.conns[idx].Load()
			if c >= p.limit {
				return nil
			}
			if p.conns[idx].CompareAndSwap(c, c+1) {
				break
			}
		}
		useUpstreamSeries(p.list[idx].Raw, 0, 1)
		return &lease{p: p, idx: idx}
	}
	return p.hold(idx)
}

// lease is one connection counted against an upstream.
type lease struct {
	p    *upstreamPool
	idx  int
	done atomic.Bool
}

// release ends the count; only its first call counts.
func (l *lease) release() {
	if l.done.CompareAndSwap(false, true) {
		l.p.conns[l.idx].Add(-1)
		useUpstreamSeries(l.p.list[l.idx].Raw, 0, -1)
	}
}
