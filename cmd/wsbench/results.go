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

// TPRound is one round of a throughput run on one target.
type TPRound struct {
	MiBps float64 // echoed payload per second; NaN for a failed round
	// CPU is the proxy's CPU seconds (utime+stime) over the measured
	// window, NaN without a proxy (direct); Bytes is the payload echoed
	// in that window. Machine is the whole machine's busy CPU seconds
	// over the same window (as RTRound's).
	CPU     float64
	Machine float64
	Bytes   int64
}

// CPUPerGiB is the proxy's CPU seconds per GiB of echoed payload, NaN
// without a proxy or without payload.
func (x TPRound) CPUPerGiB() float64 { return cpuPer(x.CPU, x.Bytes, 1<<30) }

// MachinePerGiB is the whole machine's busy CPU seconds per GiB of echoed
// payload.
func (x TPRound) MachinePerGiB() float64 { return cpuPer(x.Machine, x.Bytes, 1<<30) }

// Busy is the machine's busy time as a percentage of the window (Bytes
// at MiBps) times its cpus CPUs.
func (x TPRound) Busy(cpus int) float64 {
	return busyPct(x.Machine, float64(x.Bytes)/(1<<20)/x.MiBps, cpus)
}

// RTRound is one round of the round-trip measurement on one target.
type RTRound struct {
	PerSec float64
	P50    time.Duration
	P99    time.Duration
	P999   time.Duration
	// CPU is the proxy's CPU seconds (utime+stime) over the measured
	// window, NaN without a proxy (direct); Trips is the round trips
	// counted in that window. Machine is the busy CPU seconds of the
	// whole machine (all CPUs: client, proxy, backend, kernel, anything
	// else) over the same window.
	CPU     float64
	Machine float64
	Trips   int64
}

// CPUPerTrip is the proxy's CPU microseconds per round trip, NaN without a
// proxy or without round trips.
func (x RTRound) CPUPerTrip() float64 { return cpuPer(x.CPU, x.Trips, 1e6) }

// MachinePerTrip is the whole machine's busy CPU microseconds per round
// trip.
func (x RTRound) MachinePerTrip() float64 { return cpuPer(x.Machine, x.Trips, 1e6) }

// Busy is the machine's busy time as a percentage of the window times its
// cpus CPUs (the window is Trips / PerSec).
func (x RTRound) Busy(cpus int) float64 {
	return busyPct(x.Machine, float64(x.Trips)/x.PerSec, cpus)
}

// busyPct is busy CPU seconds as a percentage of window seconds times cpus
// CPUs; NaN without a window.
func busyPct(busy, window float64, cpus int) float64 {
	if !(window > 0) || cpus <= 0 {
		return math.NaN()
	}
	return busy / window / float64(cpus) * 100
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
func (p PingRound) PerThousand() float64 { return cpuPer(p.CPU, p.Exchanges, 1000) }

// cpuPer is cpu per n events, times scale; NaN without events.
func cpuPer(cpu float64, n int64, scale float64) float64 {
	if n <= 0 {
		return math.NaN()
	}
	return cpu / float64(n) * scale
}

// Results is everything a run measured, one value per round per series.
type Results struct {
	Meta Meta
	// Targets lists the measured targets in report order (nginx may be
	// missing).
	Targets    []string
	Throughput map[TPKey][]TPRound
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
		Throughput: map[TPKey][]TPRound{},
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

// tpSummary summarises the MiB/s of the throughput series k.
func (r *Results) tpSummary(k TPKey) Summary {
	return r.tpField(k, func(x TPRound) float64 { return x.MiBps })
}

// tpField summarises one field of the throughput series k.
func (r *Results) tpField(k TPKey, f func(TPRound) float64) Summary {
	return summarizeField(r.Throughput[k], func(TPRound) bool { return true }, f)
}

// summarizeField summarises f over the rounds that keep accepts.
func summarizeField[T any](rounds []T, keep func(T) bool, f func(T) float64) Summary {
	var xs []float64
	for _, x := range rounds {
		if keep(x) {
			xs = append(xs, f(x))
		}
	}
	return Summarize(xs)
}

// rtField summarises one field of a target's round-trip rounds.
func (r *Results) rtField(target string, f func(RTRound) float64) Summary {
	// A failed round has no latencies.
	return summarizeField(r.RoundTrips[target], func(x RTRound) bool { return !math.IsNaN(x.PerSec) }, f)
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
