package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// round measures every target once, each measurement going through the
// targets in an order rotated by round. It starts the proxies twice: idle
// memory over ws is measured on the first, fresh set, idle memory over wss
// on the second, again fresh (a process keeps memory it has freed, and the
// connections of a later measurement would reuse it unseen), and the other
// measurements follow on the second set.
func (b *bench) round(r int, nginx string) error {
	b.logf("round %d of %d", r+1, b.cfg.rounds)
	err := b.withProxies(r, nginx, func(proxies, _ []*target) {
		for _, t := range proxies {
			b.idle(t, false)
		}
	})
	if err != nil {
		return err
	}
	return b.withProxies(r, nginx, func(proxies, all []*target) {
		if b.cfg.idleConnsTLS > 0 {
			for _, t := range proxies {
				b.idle(t, true)
			}
		}
		b.ping(proxies)
		for _, size := range sizes {
			for _, secure := range []bool{false, true} {
				for _, t := range all {
					b.throughput(t, size, secure)
				}
			}
		}
		for _, t := range all {
			b.roundTrips(t)
		}
	})
}

// withProxies starts the proxies, trusts their certificates and calls
// measure with the proxies and with all targets (direct last before
// rotation), each in round r's order; then it stops the proxies.
func (b *bench) withProxies(r int, nginx string, measure func(proxies, all []*target)) error {
	proxies, err := b.startProxies(nginx)
	defer func() {
		for _, t := range proxies {
			t.proc.stop()
		}
	}()
	if err != nil {
		return err
	}
	if b.res.Targets == nil {
		b.res.Targets = append(keysOf(proxies), keyDirect)
	}
	if err := b.trust(proxies); err != nil {
		return err
	}
	direct := &target{key: keyDirect, ws: "ws://" + b.backend + "/"}
	measure(rotate(proxies, r), rotate(append(slices.Clone(proxies), direct), r))
	return nil
}

// startProxies starts the relay, the stock reverse_proxy and nginx.
func (b *bench) startProxies(nginx string) ([]*target, error) {
	var out []*target
	for _, spec := range []caddySpec{
		{name: keyRelay, handler: "websocket_relay", pingSite: true},
		{name: keyStock, handler: "reverse_proxy"},
	} {
		t, err := b.retry(spec.name, func() (*target, error) {
			return startCaddy(b.cfg.caddyBin, b.dir, spec, b.backend)
		})
		if err != nil {
			return out, err
		}
		out = append(out, t)
	}
	if nginx != "" {
		cert, key, err := selfSignedCert(b.dir)
		if err != nil {
			return out, err
		}
		t, err := b.retry(keyNginx, func() (*target, error) {
			return startNginx(nginx, b.dir, b.backend, cert, key, b.res.Meta.FileLimit)
		})
		if err != nil {
			return out, err
		}
		out = append(out, t)
	}
	return out, nil
}

// retry tries to start a proxy three times: a port picked free may have
// been taken by another program before the proxy bound it.
func (b *bench) retry(name string, start func() (*target, error)) (t *target, err error) {
	for attempt := 1; attempt <= 3; attempt++ {
		if t, err = start(); err == nil {
			return t, nil
		}
		b.logf("starting %s (attempt %d of 3): %v", name, attempt, err)
	}
	return nil, err
}

// trust sets the client's trust to the roots of this round's proxies:
// the caddy CAs persist in their storage, nginx gets a new certificate.
func (b *bench) trust(proxies []*target) error {
	tlsConf, err := rootPool(proxies)
	if err != nil {
		return err
	}
	b.dialer = &dialer{tls: tlsConf, timeout: 10 * time.Second}
	return nil
}

func keysOf(ts []*target) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.key)
	}
	return out
}

// rotate returns ts rotated left by r.
func rotate[T any](ts []T, r int) []T {
	if len(ts) == 0 {
		return ts
	}
	r %= len(ts)
	return append(append([]T(nil), ts[r:]...), ts[:r]...)
}

// drain waits for the backend to have no connection left.
func (b *bench) drain() {
	if err := waitBackendIdle(b.backend, 30*time.Second); err != nil {
		b.notef("%v", err)
	}
}

// idle measures idle connections to t over a ws or (secure) a wss client
// leg; the proxy reaches the backend in plain ws either way.
func (b *bench) idle(t *target, secure bool) {
	leg, url, counts, into := "ws", t.ws, idleCounts(b.cfg.idleConns), b.res.Idle
	if secure {
		leg, url, counts, into = "wss", t.wss, idleCountsTLS(b.cfg.idleConns, b.cfg.idleConnsTLS), b.res.IdleTLS
	}
	if url == "" {
		return
	}
	name := t.key + " " + leg
	b.logf("idle %s: %d connections", name, counts[len(counts)-1])
	r, err := b.runIdle(t, name, url, counts)
	b.drain()
	if err != nil {
		b.notef("idle %s: %v", name, err)
		return
	}
	last := len(r.KiB) - 1
	b.logf("idle %s: %.1f KiB/conn, %.2f goroutines/conn at %d; after a message %.1f KiB, %.2f goroutines; %d/%d alive",
		name, r.KiB[last], r.Goroutines[last], r.Counts[last], r.AfterMsgKiB, r.AfterMsgGoroutines, r.Alive, r.Opened)
	into[t.key] = append(into[t.key], r)
}

func (b *bench) ping(proxies []*target) {
	for _, t := range proxies {
		if t.ping == "" {
			continue
		}
		b.logf("ping %s: %d connections, ping_interval 1s", t.key, b.cfg.idleConns)
		r, err := b.runPing(t)
		b.drain()
		if err != nil {
			b.notef("ping %s: %v", t.key, err)
			continue
		}
		b.logf("ping %s: %.3f CPU s per 1,000 exchanges (%d exchanges, %.2f CPU s in %.1fs), %d/%d alive",
			t.key, r.PerThousand(), r.Exchanges, r.CPU, r.Window, r.Alive, r.Conns)
		b.res.Ping = append(b.res.Ping, r)
	}
}

func (b *bench) throughput(t *target, size int, secure bool) {
	url := t.ws
	if secure {
		url = t.wss
	}
	if url == "" {
		return
	}
	k := TPKey{Target: t.key, Size: size, TLS: secure}
	var info string
	v, err := b.runThroughput(t, url, size, &info)
	b.drain()
	if err != nil {
		b.notef("throughput %s: %v", tpName(k), err)
		v = TPRound{MiBps: math.NaN(), CPU: math.NaN()}
	}
	if info != "" {
		b.res.TLSInfo[t.key] = info
	}
	b.logf("throughput %s: %.1f MiB/s%s", tpName(k), v.MiBps, cpuLog(t, v.CPUPerGiB(), "%.2f CPU s per GiB"))
	b.res.Throughput[k] = append(b.res.Throughput[k], v)
}

func (b *bench) roundTrips(t *target) {
	r, err := b.runRoundTrips(t)
	b.drain()
	if err != nil {
		b.notef("round trips %s: %v", t.key, err)
		r = RTRound{PerSec: math.NaN(), CPU: math.NaN()}
	}
	b.logf("round trips %s: %.0f/s, p50 %s p99 %s p99.9 %s%s",
		t.key, r.PerSec, r.P50, r.P99, r.P999, cpuLog(t, r.CPUPerTrip(), "%.1f CPU µs per round trip"))
	b.res.RoundTrips[t.key] = append(b.res.RoundTrips[t.key], r)
}

// cpuLog is ", proxy " and a proxy's CPU figure for the log, "" for direct.
func cpuLog(t *target, v float64, format string) string {
	if t.proc == nil {
		return ""
	}
	return ", proxy " + fmt.Sprintf(format, v)
}

// proxyCPU reads the CPU seconds t's proxy has used so far (utime+stime in
// 10 ms ticks; nginx: its worker): NaN for the direct connection or, with
// a note, when /proc cannot be read.
func (b *bench) proxyCPU(t *target) float64 {
	if t.proc == nil {
		return math.NaN()
	}
	c, err := readCPU(t.proc.pid)
	if err != nil {
		b.notef("reading the CPU time of %s: %v", t.key, err)
		return math.NaN()
	}
	return c
}

// machineBusy reads the machine's busy CPU seconds so far (see
// readMachineBusy): NaN, with a note, when /proc/stat cannot be read.
func (b *bench) machineBusy() float64 {
	c, err := readMachineBusy()
	if err != nil {
		b.notef("reading the machine's CPU time: %v", err)
		return math.NaN()
	}
	return c
}

// write saves the report and the chart and prints the report.
func (b *bench) write() error {
	if err := os.MkdirAll(b.cfg.out, 0o755); err != nil {
		return err
	}
	var md strings.Builder
	writeReport(&md, b.res)
	if err := os.WriteFile(filepath.Join(b.cfg.out, "results.md"), []byte(md.String()), 0o644); err != nil {
		return err
	}
	var svg strings.Builder
	writeChart(&svg, b.res)
	if err := os.WriteFile(filepath.Join(b.cfg.out, "chart.svg"), []byte(svg.String()), 0o644); err != nil {
		return err
	}
	fmt.Print(md.String())
	b.logf("wrote %s and %s", filepath.Join(b.cfg.out, "results.md"), filepath.Join(b.cfg.out, "chart.svg"))
	return nil
}
