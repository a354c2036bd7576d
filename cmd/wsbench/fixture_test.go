package main

import (
	"math"
	"time"
)

// fixtureResults is a made-up three-round run with every target, one
// failed relay throughput round (NaN), nginx without goroutines, and idle
// rounds over wss with fewer connections than over ws.
func fixtureResults() *Results {
	r := newResults()
	r.Meta = Meta{
		Date:         time.Date(2026, 11, 26, 5, 0, 0, 0, time.UTC),
		Machine:      machine{NProc: 2, CPUModel: "Test CPU @ 2.0GHz", Kernel: "6.1.0", MemGiB: 24},
		GoVersion:    "go1.26.8",
		CaddyVersion: "v2.11.9",
		NginxVersion: "nginx/1.22.1",
		Command:      "make bench (bin/wsbench -caddy bin/caddy -out docs/perf)",
		Rounds:       3, IdleConns: 9900, IdleConnsTLS: 2970, Settle: 3 * time.Second, Warmup: 500 * time.Millisecond,
		TPDuration: 2 * time.Second, RTDuration: 4 * time.Second, PingWindow: 10 * time.Second,
		TPConns: 4, TPWindow: 8, RTConns: 100, RTSize: 128, Sizes: sizes, FileLimit: 20000,
	}
	r.Targets = []string{keyRelay, keyStock, keyNginx, keyDirect}
	tp := map[string][2]float64{ // 64 KiB ws, 1 MiB ws
		keyRelay: {500, 400}, keyStock: {700, 600}, keyNginx: {450, 300}, keyDirect: {1000, 800},
	}
	// Proxy CPU s per GiB, 64 KiB ws and 1 MiB ws (wss: twice as much);
	// the rounds are 0.1 below, at and 0.1 above.
	tpCPU := map[string][2]float64{
		keyRelay: {0.8, 1.2}, keyStock: {1.0, 1.5}, keyNginx: {0.6, 0.5}, keyDirect: {math.NaN(), math.NaN()},
	}
	for k, v := range tp {
		for i, s := range sizes {
			c := tpCPU[k][i]
			r.Throughput[TPKey{Target: k, Size: s}] = []TPRound{
				tpRound(v[i]-10, c-0.1), tpRound(v[i], c), tpRound(v[i]+10, c+0.1),
			}
			if k != keyDirect {
				r.Throughput[TPKey{Target: k, Size: s, TLS: true}] = []TPRound{
					tpRound(v[i]/2, 2*c-0.1), tpRound(v[i]/2, 2*c), tpRound(v[i]/2, 2*c+0.1),
				}
			}
		}
	}
	r.Throughput[TPKey{Target: keyRelay, Size: sizes[0]}][2] = TPRound{MiBps: math.NaN(), CPU: math.NaN()}
	// Round trips/s, and proxy CPU µs per round trip: 0.5 up each round.
	rtCPU := map[string]float64{keyRelay: 8, keyStock: 10, keyNginx: 6, keyDirect: math.NaN()}
	// The whole machine's busy CPU µs per round trip: 2 up each round.
	rtMachine := map[string]float64{keyRelay: 60, keyStock: 72, keyNginx: 64, keyDirect: 35}
	// p99 in µs, 100 µs up each round; nginx's p50 under 1 ms, 20 µs up.
	rtP99 := map[string]time.Duration{keyRelay: 4500, keyStock: 5000, keyNginx: 4000, keyDirect: 6000}
	for k, rate := range map[string]float64{keyRelay: 30000, keyStock: 25000, keyNginx: 28000, keyDirect: 50000} {
		for i := range 3 {
			trips := int64(rate+float64(i)) * 4 // the 4 s window
			p50 := 1500 * time.Microsecond
			if k == keyNginx {
				p50 = (950 + 20*time.Duration(i)) * time.Microsecond
			}
			r.RoundTrips[k] = append(r.RoundTrips[k], RTRound{
				PerSec: rate + float64(i), P50: p50, P99: (rtP99[k] + 100*time.Duration(i)) * time.Microsecond, P999: 12 * time.Millisecond,
				CPU: (rtCPU[k] + 0.5*float64(i)) * float64(trips) / 1e6, Trips: trips,
				Machine: (rtMachine[k] + 2*float64(i)) * float64(trips) / 1e6,
			})
		}
	}
	idle := map[string][2]float64{keyRelay: {10, 2}, keyStock: {90, 4}, keyNginx: {18, math.NaN()}}
	for k, v := range idle {
		for range 3 {
			r.Idle[k] = append(r.Idle[k], IdleRound{
				Counts:      []int{990, 2970, 9900},
				KiB:         []float64{v[0] + 4, v[0] + 1, v[0]},
				Goroutines:  []float64{v[1], v[1], v[1]},
				AfterMsgKiB: v[0] + 2, AfterMsgGoroutines: v[1],
				Alive: 9900, Opened: 9900,
			})
		}
	}
	idleTLS := map[string][2]float64{keyRelay: {14, 3}, keyStock: {120, 4}, keyNginx: {40, math.NaN()}}
	for k, v := range idleTLS {
		for i := range 3 {
			r.IdleTLS[k] = append(r.IdleTLS[k], IdleRound{
				Counts:      []int{990, 2970},
				KiB:         []float64{v[0] + 3, v[0] + float64(i)},
				Goroutines:  []float64{v[1], v[1], v[1]},
				AfterMsgKiB: v[0] + 5, AfterMsgGoroutines: v[1] - 1,
				Alive: 2970 - i, Opened: 2970,
			})
		}
	}
	r.Ping = []PingRound{
		{Conns: 9900, CPU: 0.5, Exchanges: 99000, Window: 10, Alive: 9900},
		{Conns: 9900, CPU: 0.6, Exchanges: 99000, Window: 10, Alive: 9900},
		{Conns: 9900, CPU: 0.7, Exchanges: 99000, Window: 10, Alive: 9900},
	}
	r.TLSInfo[keyRelay] = "TLS 1.3 TLS_AES_128_GCM_SHA256"
	r.Notes = []string{"throughput relay 64 KiB ws: echo 3 differs from message 3"}
	return r
}

// tpRound is a throughput round of mibps over a 2 s window in which the
// proxy used perGiB CPU seconds per GiB echoed (NaN: no proxy).
func tpRound(mibps, perGiB float64) TPRound {
	bytes := mibps * 2 * (1 << 20)
	// The machine 90% busy on its 2 CPUs over the 2 s window.
	return TPRound{MiBps: mibps, CPU: perGiB * bytes / (1 << 30), Machine: 0.9 * 2 * 2, Bytes: int64(bytes)}
}
