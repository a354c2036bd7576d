package main

import (
	"math"
	"time"
)

// Target keys, in the order the report lists them.
const (
	keyRelay  = "relay"
	keyStock  = "stock"
	keyNginx  = "nginx"
	keyDirect = "direct"
)

// targetLabels are the names the report and the chart print.
var targetLabels = map[string]string{
	keyRelay:  "websocket_relay",
	keyStock:  "caddy reverse_proxy",
	keyNginx:  "nginx",
	keyDirect: "direct (no proxy)",
}

// target is one way to reach the backend.
type target struct {
	key  string
	ws   string // ws:// URL
	wss  string // wss:// URL, "" without TLS
	ping string // ws:// URL of the relay's ping_interval 1s site, relay only
	root string // certificate the client trusts for wss
	proc *proc  // nil for direct
}

// Meta says where, when and how the results were produced.
type Meta struct {
	Date         time.Time
	Machine      machine
	GoVersion    string
	CaddyVersion string
	NginxVersion string
	Command      string
	Rounds       int
	IdleConns    int
	IdleConnsTLS int // over wss; 0: not measured
	Settle       time.Duration
	Warmup       time.Duration
	TPDuration   time.Duration
	RTDuration   time.Duration
	PingWindow   time.Duration
	TPConns      int
	TPWindow     int
	RTConns      int
	RTSize       int
	Sizes        []int
	FileLimit    uint64
}

// TPKey names one throughput series.
type TPKey struct {
	Target string
	Size   int
	TLS    bool
}

// IdleRound is one round of the idle measurement on one proxy.
type IdleRound struct {
	Counts []int
	// KiB and Goroutines are per connection, at each count: RSS growth
	// over the process's baseline, and goroutine growth (NaN for nginx).
	KiB        []float64
	Goroutines []float64
	// AfterMsg* are the same at the last count after one message on each
	// connection.
	AfterMsgKiB        float64
	AfterMsgGoroutines float64
	Alive              int
	Opened             int
}

// RTRound is one round of the round-trip measurement on one target.
type RTRound struct {
	PerSec float64
	P50    time.Duration
	P99    time.Duration
	P999   time.Duration
}

// PingRound is one round of the ping-cost measurement on the relay.
type PingRound struct {
	Conns     int
	CPU       float64
	Exchanges int64
	Window    float64
	Alive     int
}

// PerThousand is the relay's CPU seconds per 1,000 ping/pong exchanges.
func (p PingRound) PerThousand() float64 {
	if p.Exchanges <= 0 {
		return math.NaN()
	}
	return p.CPU / float64(p.Exchanges) * 1000
}

// Results is everything a run measured, one value per round per series.
type Results struct {
	Meta Meta
	// Targets lists the measured targets in report order (nginx may be
	// missing).
	Targets    []string
	Throughput map[TPKey][]float64 // MiB/s of echoed payload
	RoundTrips map[string][]RTRound
	Idle       map[string][]IdleRound // client leg ws
	IdleTLS    map[string][]IdleRound // client leg wss, proxy to backend ws
	Ping       []PingRound
	// TLSInfo records the negotiated TLS version and cipher per target.
	TLSInfo map[string]string
	Notes   []string
}

func newResults() *Results {
	return &Results{
		Throughput: map[TPKey][]float64{},
		RoundTrips: map[string][]RTRound{},
		Idle:       map[string][]IdleRound{},
		IdleTLS:    map[string][]IdleRound{},
		TLSInfo:    map[string]string{},
	}
}

// proxies returns the measured targets other than direct.
func (r *Results) proxies() []string {
	var out []string
	for _, k := range r.Targets {
		if k != keyDirect {
			out = append(out, k)
		}
	}
	return out
}

// tpSummary summarises the throughput series k.
func (r *Results) tpSummary(k TPKey) Summary { return Summarize(r.Throughput[k]) }

// rtField summarises one field of a target's round-trip rounds.
func (r *Results) rtField(target string, f func(RTRound) float64) Summary {
	var xs []float64
	for _, x := range r.RoundTrips[target] {
		if !math.IsNaN(x.PerSec) { // a failed round has no latencies
			xs = append(xs, f(x))
		}
	}
	return Summarize(xs)
}

// idleRounds returns a proxy's idle rounds with a ws or (secure) a wss
// client leg.
func (r *Results) idleRounds(target string, secure bool) []IdleRound {
	if secure {
		return r.IdleTLS[target]
	}
	return r.Idle[target]
}

// idleField summarises one field of a proxy's idle rounds over ws or
// (secure) wss.
func (r *Results) idleField(target string, secure bool, f func(IdleRound) float64) Summary {
	var xs []float64
	for _, x := range r.idleRounds(target, secure) {
		xs = append(xs, f(x))
	}
	return Summarize(xs)
}
