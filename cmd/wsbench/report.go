package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// sizeName prints a message size the way the report names it.
func sizeName(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

func tpName(k TPKey) string {
	leg := "ws"
	if k.TLS {
		leg = "wss"
	}
	return k.Target + " " + sizeName(k.Size) + " " + leg
}

// fmtNum prints x with the given number of decimals, "n/a" for NaN.
func fmtNum(x float64, decimals int) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "n/a"
	}
	s := fmt.Sprintf("%.*f", decimals, x)
	if strings.Trim(s, "-0.") == "" {
		s = strings.TrimPrefix(s, "-") // a tiny negative growth prints as 0
	}
	return s
}

// fmtSummary prints "median [min–max]", or just the median for one round.
func fmtSummary(s Summary, decimals int) string {
	if s.N == 0 {
		return "n/a"
	}
	med := fmtNum(s.Median, decimals)
	if s.N == 1 {
		return med
	}
	return fmt.Sprintf("%s [%s–%s]", med, fmtNum(s.Min, decimals), fmtNum(s.Max, decimals))
}

// fmtRatio prints a ratio to direct as "0.85x".
func fmtRatio(r float64) string {
	if math.IsNaN(r) {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", r)
}

// fmtDur prints a latency over the rounds, the median with [min–max] as
// fmtSummary does, in microseconds or (from 1 ms) milliseconds, the
// median's unit for all three.
func fmtDur(s Summary) string {
	if s.N == 0 {
		return "n/a"
	}
	unit, per, decimals := "ms", float64(time.Millisecond), 2
	if time.Duration(s.Median) < time.Millisecond {
		unit, per, decimals = "µs", float64(time.Microsecond), 0
	}
	med := fmtNum(s.Median/per, decimals) + " " + unit
	if s.N == 1 {
		return med
	}
	return fmt.Sprintf("%s [%s–%s]", med, fmtNum(s.Min/per, decimals), fmtNum(s.Max/per, decimals))
}

// label is a target's display name.
func label(key string) string {
	if l, ok := targetLabels[key]; ok {
		return l
	}
	return key
}

// table writes a markdown table.
func table(w io.Writer, head []string, rows [][]string) {
	fmt.Fprintf(w, "| %s |\n", strings.Join(head, " | "))
	seps := make([]string, len(head))
	for i := range seps {
		seps[i] = "---"
		if i > 0 {
			seps[i] = "---:"
		}
	}
	fmt.Fprintf(w, "|%s|\n", strings.Join(seps, "|"))
	for _, r := range rows {
		fmt.Fprintf(w, "| %s |\n", strings.Join(r, " | "))
	}
	fmt.Fprintln(w)
}

// writeReport writes the whole markdown report.
func writeReport(w io.Writer, r *Results) {
	m := r.Meta
	fmt.Fprintf(w, "# WebSocket proxies side by side\n\n")
	fmt.Fprintf(w, "- Date: %s\n", m.Date.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "- Machine: %d × %s, %.0f GiB RAM, Linux %s, loopback only\n",
		m.Machine.NProc, m.Machine.CPUModel, m.Machine.MemGiB, m.Machine.Kernel)
	fmt.Fprintf(w, "- Caddy %s built with Go %s (the relay and stock `reverse_proxy` are the same binary); nginx: %s\n",
		m.CaddyVersion, m.GoVersion, m.NginxVersion)
	fmt.Fprintf(w, "- Command: `%s`\n", m.Command)
	fmt.Fprintf(w, "- %d round(s); every round starts fresh proxies and measures each target in turn, "+
		"in an order rotated by round. Figures are the median over rounds with [min–max]; "+
		"ratios are medians divided by the direct connection's median (\"x stock\": by stock `reverse_proxy`'s).\n\n", m.Rounds)
	writeSummary(w, r)
	writeThroughput(w, r)
	writeRoundTrips(w, r)
	writeIdle(w, r)
	writePing(w, r)
	writeMethod(w, r)
}

func writeSummary(w io.Writer, r *Results) {
	fmt.Fprintf(w, "## Summary\n\n")
	small := sizes[0]
	direct64 := r.tpSummary(TPKey{Target: keyDirect, Size: small}).Median
	directRT := r.rtField(keyDirect, func(x RTRound) float64 { return x.PerSec }).Median
	withTLS := r.Meta.IdleConnsTLS > 0
	var rows [][]string
	for _, k := range r.proxies() {
		row := []string{label(k), idleMemCell(r, k, false)}
		g := idleGorCell(r, k, false)
		if withTLS {
			row = append(row, idleMemCell(r, k, true))
			if gt := idleGorCell(r, k, true); g != "-" || gt != "-" {
				g += " / " + gt
			}
		}
		tp := Ratio(r.tpSummary(TPKey{Target: k, Size: small}).Median, direct64)
		rt := Ratio(r.rtField(k, func(x RTRound) float64 { return x.PerSec }).Median, directRT)
		tpCPU := r.tpCPUCells(TPKey{Target: k, Size: small})[1]
		rtCPU := r.rtCPUCells(k)[1]
		rows = append(rows, append(row, g, fmtRatio(tp)+" direct", fmtRatio(rt)+" direct", tpCPU+" / "+rtCPU))
	}
	head := []string{"", fmt.Sprintf("idle memory per connection, ws (%d conns)", r.Meta.IdleConns)}
	gorHead := "goroutines per conn (after a message)"
	if withTLS {
		head = append(head, fmt.Sprintf("idle memory per connection, wss (%d conns)", r.Meta.IdleConnsTLS))
		gorHead += ", ws / wss"
	}
	table(w, append(head, gorHead, fmt.Sprintf("throughput, %s messages, ws", sizeName(small)),
		fmt.Sprintf("round trips/s, %d B, %d conns", r.Meta.RTSize, r.Meta.RTConns),
		fmt.Sprintf("proxy CPU x stock, %s ws / round trips", sizeName(small))), rows)
}

// idleMemCell is a proxy's idle memory per connection at the largest
// count over ws or (secure) wss, and after a message, for the summary.
func idleMemCell(r *Results, k string, secure bool) string {
	kib := r.idleField(k, secure, lastOf(func(x IdleRound) []float64 { return x.KiB }))
	kibMsg := r.idleField(k, secure, func(x IdleRound) float64 { return x.AfterMsgKiB })
	return fmt.Sprintf("%s KiB (%s after a message)", fmtNum(kib.Median, 1), fmtNum(kibMsg.Median, 1))
}

// idleGorCell is a proxy's goroutines per idle connection and after a
// message, over ws or (secure) wss, for the summary; "-" without figures
// (nginx).
func idleGorCell(r *Results, k string, secure bool) string {
	gor := r.idleField(k, secure, lastOf(func(x IdleRound) []float64 { return x.Goroutines }))
	gorMsg := r.idleField(k, secure, func(x IdleRound) float64 { return x.AfterMsgGoroutines })
	if gor.N == 0 {
		return "-"
	}
	return fmt.Sprintf("%s (%s)", fmtNum(gor.Median, 2), fmtNum(gorMsg.Median, 2))
}

// lastOf turns a per-count field into its value at the largest count.
func lastOf(f func(IdleRound) []float64) func(IdleRound) float64 {
	return func(x IdleRound) float64 {
		v := f(x)
		if len(v) == 0 {
			return math.NaN()
		}
		return v[len(v)-1]
	}
}

func writeThroughput(w io.Writer, r *Results) {
	m := r.Meta
	fmt.Fprintf(w, "## Throughput\n\n")
	fmt.Fprintf(w, "MiB/s of echoed payload: %d connections, %d messages in flight per connection, "+
		"every echo checked byte for byte; %s measured after %s of warm-up. Every byte crosses the proxy twice "+
		"(to the backend and back). `wss` is TLS on the client leg only (the proxy reaches the backend in plain ws); "+
		"the direct connection has no TLS, so `wss` rows are compared with direct `ws`.\n\n",
		m.TPConns, m.TPWindow, m.TPDuration, m.Warmup)
	fmt.Fprintf(w, "Proxy CPU: the proxy process's user+system CPU time (utime+stime of /proc/<pid>/stat; nginx: its "+
		"one worker) read at the start and the end of the same measured window, in CPU seconds per GiB (2^30 bytes) of "+
		"echoed payload, the bytes the MiB/s figure counts: each crossed the proxy twice (to the backend and back), so "+
		"per GiB forwarded in one direction it is half. The client's and the backend's CPU time is not in it, but "+
		"the effects of sharing the CPUs with them (caches, scheduling) can be. "+
		"/proc counts in 10 ms ticks, %s of one core over the %s window. \"x stock\" divides the median by "+
		"stock `reverse_proxy`'s median for the same size and leg; direct has no proxy (\"-\").\n\n",
		tickShare(m.TPDuration), m.TPDuration)
	head := []string{"target", "leg"}
	for _, s := range sizes {
		head = append(head, sizeName(s)+": MiB/s", "x direct ws", "proxy CPU s/GiB", "x stock")
	}
	table(w, head, r.tpRows(func(k TPKey) []string {
		v := r.tpSummary(k)
		d := r.tpSummary(TPKey{Target: keyDirect, Size: k.Size}).Median
		return append([]string{fmtSummary(v, 0), fmtRatio(Ratio(v.Median, d))}, r.tpCPUCells(k)...)
	}))
	fmt.Fprintf(w, "Machine CPU in the same windows: the busy time of all %d CPUs together (/proc/stat: all but idle "+
		"and iowait), in CPU seconds per GiB of echoed payload: client, proxy, backend and kernel, everything the "+
		"machine did; \"busy\" is that time as a share of the window times the CPUs. When the machine is close to "+
		"fully busy, the throughput is about the CPUs divided by the machine CPU per GiB.\n\n", m.Machine.NProc)
	head = []string{"target", "leg"}
	for _, s := range sizes {
		head = append(head, sizeName(s)+": machine CPU s/GiB", "busy, %")
	}
	table(w, head, r.tpRows(func(k TPKey) []string {
		return []string{
			fmtSummary(r.tpField(k, func(x TPRound) float64 { return x.MachinePerGiB() }), 2),
			fmtSummary(r.tpField(k, func(x TPRound) float64 { return x.Busy(m.Machine.NProc) }), 0),
		}
	}))
}

// tpRows are the throughput tables' rows: a target and leg, then cells's
// cells for each message size, for every target and leg measured.
func (r *Results) tpRows(cells func(TPKey) []string) [][]string {
	var rows [][]string
	for _, k := range r.Targets {
		for _, secure := range []bool{false, true} {
			if _, ok := r.Throughput[TPKey{Target: k, Size: sizes[0], TLS: secure}]; !ok {
				continue
			}
			leg := "ws"
			if secure {
				leg = "wss"
			}
			row := []string{label(k), leg}
			for _, s := range sizes {
				row = append(row, cells(TPKey{Target: k, Size: s, TLS: secure})...)
			}
			rows = append(rows, row)
		}
	}
	return rows
}

func writeRoundTrips(w io.Writer, r *Results) {
	m := r.Meta
	fmt.Fprintf(w, "## Round trips\n\n")
	fmt.Fprintf(w, "%d connections, each sending a %d B binary message and waiting for its echo in a loop "+
		"for %s after %s of warm-up; latency percentiles over all round trips of a round (median over rounds, [min–max]; \"p99 x stock\" divides the p99 median by stock's). "+
		"Proxy CPU: the proxy's utime+stime over the same window, read as in the throughput runs, in CPU µs per "+
		"round trip counted (a message to the backend and its echo back); one 10 ms tick is %s of one core over "+
		"the %s window. \"x stock\" divides the median by stock `reverse_proxy`'s. "+
		"Machine CPU: the busy time of all %d CPUs together (/proc/stat: all but idle and iowait) over the same window, "+
		"per round trip: client, proxy, backend and kernel, everything the machine did; \"busy\" is that time "+
		"as a share of the window times the CPUs. When the machine is close to fully busy, the rate is about "+
		"the CPUs divided by the machine CPU per round trip, so a proxy can raise it only by what it saves there.\n\n",
		m.RTConns, m.RTSize, m.RTDuration, m.Warmup, tickShare(m.RTDuration), m.RTDuration, m.Machine.NProc)
	directRT := r.rtField(keyDirect, func(x RTRound) float64 { return x.PerSec }).Median
	var rows [][]string
	for _, k := range r.Targets {
		if len(r.RoundTrips[k]) == 0 {
			continue
		}
		rt := r.rtField(k, func(x RTRound) float64 { return x.PerSec })
		row := append([]string{label(k), fmtSummary(rt, 0), fmtRatio(Ratio(rt.Median, directRT))}, r.rtCPUCells(k)...)
		row = append(row,
			fmtSummary(r.rtField(k, func(x RTRound) float64 { return x.MachinePerTrip() }), 1),
			fmtSummary(r.rtField(k, func(x RTRound) float64 { return x.Busy(m.Machine.NProc) }), 0))
		p99 := r.rtField(k, func(x RTRound) float64 { return float64(x.P99) })
		p99Stock := "-"
		if k != keyDirect {
			p99Stock = fmtRatio(Ratio(p99.Median, r.rtField(keyStock, func(x RTRound) float64 { return float64(x.P99) }).Median))
		}
		rows = append(rows, append(row,
			fmtDur(r.rtField(k, func(x RTRound) float64 { return float64(x.P50) })),
			fmtDur(p99), p99Stock,
			fmtDur(r.rtField(k, func(x RTRound) float64 { return float64(x.P999) })),
		))
	}
	table(w, []string{"target", "round trips/s", "x direct", "proxy CPU µs/round trip", "x stock",
		"machine CPU µs/round trip", "machine busy, %", "p50", "p99", "p99 x stock", "p99.9"}, rows)
}

func writeIdle(w io.Writer, r *Results) {
	m := r.Meta
	fmt.Fprintf(w, "## Idle connections\n\n")
	fmt.Fprintf(w, "Growth of the proxy's resident memory (VmRSS; nginx: its one worker) and goroutines over "+
		"its baseline before the first connection, divided by the number of open connections, read %s after "+
		"each step. \"After a message\" is the same at the largest count after one message echoed on every "+
		"connection. \"Alive\" counts the connections that still echoed a message at the end. The relay pings "+
		"at its default interval (25s); the client answers pings. The ws and the wss measurements each start "+
		"on freshly started proxies.\n\n", m.Settle)
	fmt.Fprintf(w, "Client leg ws, %d connections per proxy:\n\n", m.IdleConns)
	idleTable(w, r, false)
	if m.IdleConnsTLS <= 0 {
		fmt.Fprintf(w, "Client leg wss: not measured.\n\n")
		return
	}
	fmt.Fprintf(w, "Client leg wss (TLS on the client leg only, as in the throughput runs; the proxy reaches the backend "+
		"in plain ws), %d connections per proxy", m.IdleConnsTLS)
	if m.IdleConnsTLS < m.IdleConns {
		fmt.Fprintf(w, " (fewer than over ws to keep the run short: every connection costs a TLS handshake on "+
			"the shared CPUs). Its steps are those of ws up to that count: compare a figure with the ws figure "+
			"at the same count, since a proxy's fixed costs weigh more per connection at a smaller count")
	}
	fmt.Fprintf(w, ":\n\n")
	idleTable(w, r, true)
}

// idleTable writes the idle table of the ws or (secure) wss client leg.
func idleTable(w io.Writer, r *Results, secure bool) {
	counts := idleCountsOf(r, secure)
	head := []string{"proxy"}
	for _, c := range counts {
		head = append(head, fmt.Sprintf("KiB/conn at %d", c))
	}
	head = append(head, "KiB/conn after a message", "goroutines/conn", "goroutines/conn after a message", "alive")
	var rows [][]string
	for _, k := range r.proxies() {
		rounds := r.idleRounds(k, secure)
		if len(rounds) == 0 {
			continue
		}
		row := []string{label(k)}
		for i := range counts {
			row = append(row, fmtSummary(r.idleField(k, secure, at(i, func(x IdleRound) []float64 { return x.KiB })), 1))
		}
		gor := fmtSummary(r.idleField(k, secure, lastOf(func(x IdleRound) []float64 { return x.Goroutines })), 2)
		gorMsg := fmtSummary(r.idleField(k, secure, func(x IdleRound) float64 { return x.AfterMsgGoroutines }), 2)
		if k == keyNginx {
			gor, gorMsg = "-", "-"
		}
		alive, opened := 0, 0
		for _, x := range rounds {
			alive += x.Alive
			opened += x.Opened
		}
		row = append(row, fmtSummary(r.idleField(k, secure, func(x IdleRound) float64 { return x.AfterMsgKiB }), 1),
			gor, gorMsg, fmt.Sprintf("%d/%d", alive, opened))
		rows = append(rows, row)
	}
	table(w, head, rows)
}

// idleCountsOf returns the connection counts of the first idle round over
// ws or (secure) wss.
func idleCountsOf(r *Results, secure bool) []int {
	for _, k := range r.proxies() {
		if rounds := r.idleRounds(k, secure); len(rounds) > 0 {
			return rounds[0].Counts
		}
	}
	return nil
}

// at picks the i-th value of a per-count field, NaN if absent.
func at(i int, f func(IdleRound) []float64) func(IdleRound) float64 {
	return func(x IdleRound) float64 {
		v := f(x)
		if i >= len(v) {
			return math.NaN()
		}
		return v[i]
	}
}

func writePing(w io.Writer, r *Results) {
	fmt.Fprintf(w, "## Ping cost\n\n")
	if len(r.Ping) == 0 {
		fmt.Fprintf(w, "Not measured.\n\n")
		return
	}
	var per, rate, cpu []float64
	conns, alive := 0, 0
	for _, p := range r.Ping {
		per = append(per, p.PerThousand())
		rate = append(rate, float64(p.Exchanges)/p.Window)
		cpu = append(cpu, p.CPU/p.Window*100)
		conns += p.Conns
		alive += p.Alive
	}
	fmt.Fprintf(w, "The relay with `ping_interval 1s` and %d idle connections whose client answers every ping; "+
		"the relay's CPU time (utime+stime, 10 ms resolution) over a %s window, divided by the ping/pong "+
		"exchanges the client saw in it; the client answering the pings shares the CPUs. "+
		"Stock `reverse_proxy` and nginx cannot ping.\n\n", r.Meta.IdleConns, r.Meta.PingWindow)
	table(w, []string{"", "exchanges/s", "relay CPU, % of one core", "CPU s per 1,000 exchanges", "alive"},
		[][]string{{label(keyRelay), fmtSummary(Summarize(rate), 0), fmtSummary(Summarize(cpu), 1),
			fmtSummary(Summarize(per), 4), fmt.Sprintf("%d/%d", alive, conns)}})
}

func writeMethod(w io.Writer, r *Results) {
	fmt.Fprintf(w, "## Setup and notes\n\n")
	fmt.Fprintf(w, "- One echo backend (gobwas/ws, its own process) echoes each frame as it arrives. "+
		"The client (gobwas/ws, one more process) spreads its connections over source addresses 127.0.0.2-127.0.0.5. "+
		"Client, proxy and backend share the machine's %d CPUs, so the client's and the backend's work is in every figure, "+
		"direct included.\n", r.Meta.Machine.NProc)
	fmt.Fprintf(w, "- Caddy sites: `websocket_relay 127.0.0.1:<port>` and `reverse_proxy 127.0.0.1:<port>`, default options; "+
		"`wss` sites use `tls internal`. nginx: one worker, `proxy_http_version 1.1` with the Upgrade and Connection headers, "+
		"`wss` with a self-signed ECDSA P-256 certificate.\n")
	if slices.Contains(r.Targets, keyNginx) {
		writeNginxNote(w, r)
	}

	fmt.Fprintf(w, "- Open files limit: %d (raised to the hard limit; the proxies inherit it). A proxy holds two descriptors per connection.\n", r.Meta.FileLimit)
	for _, k := range r.Targets {
		if info, ok := r.TLSInfo[k]; ok {
			fmt.Fprintf(w, "- TLS negotiated with %s: %s\n", label(k), info)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
	fmt.Fprintln(w)
}

// writeNginxNote says what nginx's growth per connection leaves out.
func writeNginxNote(w io.Writer, r *Results) {
	fmt.Fprintf(w, "- nginx preallocates its %d connection slots (`worker_connections`) when it starts, so their memory "+
		"is in its baseline, not in its growth per connection: about 0.4 KiB a slot and two slots per proxied "+
		"connection (nginx 1.22.1 here: worker RSS 4.3 MiB with 1,024 slots, 16.3 MiB with 30,000), so add about "+
		"0.8 KiB to its figures. It needs more than two slots per proxied connection: with 20,000 it refused "+
		"connections at about 9,380.\n", nginxSlots(r.Meta.FileLimit))
}
