package main

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSizeName(t *testing.T) {
	for n, want := range map[int]string{128: "128 B", 64 << 10: "64 KiB", 1 << 20: "1 MiB", 1500: "1500 B", 3 << 20: "3 MiB"} {
		if got := sizeName(n); got != want {
			t.Errorf("sizeName(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestFmtSummary(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want string
	}{
		{"one round: the value alone", []float64{12.34}, "12.3"},
		{"several rounds: median and range", []float64{3, 1, 2}, "2.0 [1.0–3.0]"},
		{"no round", nil, "n/a"},
		{"only failed rounds", []float64{math.NaN()}, "n/a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fmtSummary(Summarize(tt.in), 1); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func report(r *Results) string {
	var b strings.Builder
	writeReport(&b, r)
	return b.String()
}

func TestReportHeaderAndSections(t *testing.T) {
	out := report(fixtureResults())
	for _, want := range []string{
		"2026-11-26 05:00 UTC",
		"2 × Test CPU @ 2.0GHz",
		"Caddy v2.11.9 built with Go go1.26.8",
		"nginx/1.22.1",
		"`make bench (bin/wsbench -caddy bin/caddy -out docs/perf)`",
		"## Summary", "## Throughput", "## Round trips", "## Idle connections", "## Ping cost",
		"compared with direct `ws`",
		"TLS negotiated with websocket_relay: TLS 1.3 TLS_AES_128_GCM_SHA256",
		"- throughput relay 64 KiB ws: echo 3 differs from message 3",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

// row returns the table row of the report that starts with prefix.
func row(t *testing.T, out, prefix string) string {
	t.Helper()
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, prefix) {
			return strings.TrimSpace(line)
		}
	}
	t.Fatalf("no row starting with %q in:\n%s", prefix, out)
	return ""
}

func TestReportFigures(t *testing.T) {
	out := report(fixtureResults())
	tests := []struct{ prefix, want string }{
		// Relay 64 KiB ws rounds are 490, 500 and NaN: median 495 of 1000 direct;
		// its CPU 0.70, 0.80 and NaN s/GiB: median 0.75 of stock's 1.00.
		// Summary: ws idle at 9900, wss idle at 3300, goroutines ws / wss,
		// proxy CPU x stock at 64 KiB ws / in round trips (8.5 of 10.5 µs).
		{"| websocket_relay | 10.0 KiB", "| websocket_relay | 10.0 KiB (12.0 after a message) | 15.0 KiB (19.0 after a message) | 2.00 (2.00) / 3.00 (2.00) | 0.49x direct | 0.60x direct | 0.75x / 0.81x |"},
		{"| caddy reverse_proxy | 90.0 KiB", "| caddy reverse_proxy | 90.0 KiB (92.0 after a message) | 121.0 KiB (125.0 after a message) | 4.00 (4.00) / 4.00 (3.00) | 0.70x direct | 0.50x direct | 1.00x / 1.00x |"},
		{"| nginx | 18.0 KiB", "| nginx | 18.0 KiB (20.0 after a message) | 41.0 KiB (45.0 after a message) | - | 0.45x direct | 0.56x direct | 0.60x / 0.62x |"},
		{"| websocket_relay | ws |", "| websocket_relay | ws | 495 [490–500] | 0.49x | 0.75 [0.70–0.80] | 0.75x | 400 [390–410] | 0.50x | 1.20 [1.10–1.30] | 0.80x |"},
		// wss CPU is compared with stock's wss, not its ws.
		{"| websocket_relay | wss |", "| websocket_relay | wss | 250 [250–250] | 0.25x | 1.60 [1.50–1.70] | 0.80x | 200 [200–200] | 0.25x | 2.40 [2.30–2.50] | 0.80x |"},
		{"| caddy reverse_proxy | wss |", "| caddy reverse_proxy | wss | 350 [350–350] | 0.35x | 2.00 [1.90–2.10] | 1.00x | 300 [300–300] | 0.38x | 3.00 [2.90–3.10] | 1.00x |"},
		{"| nginx | ws |", "| nginx | ws | 450 [440–460] | 0.45x | 0.60 [0.50–0.70] | 0.60x | 300 [290–310] | 0.38x | 0.50 [0.40–0.60] | 0.33x |"},
		{"| direct (no proxy) | ws |", "| direct (no proxy) | ws | 1000 [990–1010] | 1.00x | - | - | 800 [790–810] | 1.00x | - | - |"},
		// The machine's CPU in the same windows: 3.6 busy s over each 2 s
		// window, per GiB echoed (1843.2 / MiB/s); the failed round left out.
		{"| websocket_relay | ws | 3.72", "| websocket_relay | ws | 3.72 [3.69–3.76] | 90 [90–90] | 4.61 [4.50–4.73] | 90 [90–90] |"},
		{"| direct (no proxy) | ws | 1.84", "| direct (no proxy) | ws | 1.84 [1.82–1.86] | 90 [90–90] | 2.30 [2.28–2.33] | 90 [90–90] |"},
		{"| websocket_relay | 30001", "| websocket_relay | 30001 [30000–30002] | 0.60x | 8.5 [8.0–9.0] | 0.81x | 62.0 [60.0–64.0] | 93 [90–96] | 1.50 ms [1.50–1.50] | 4.60 ms [4.50–4.70] | 0.90x | 12.00 ms [12.00–12.00] |"},
		{"| caddy reverse_proxy | 25001", "| caddy reverse_proxy | 25001 [25000–25002] | 0.50x | 10.5 [10.0–11.0] | 1.00x | 74.0 [72.0–76.0] | 93 [90–95] | 1.50 ms [1.50–1.50] | 5.10 ms [5.00–5.20] | 1.00x | 12.00 ms [12.00–12.00] |"},
		{"| nginx | 28001", "| nginx | 28001 [28000–28002] | 0.56x | 6.5 [6.0–7.0] | 0.62x | 66.0 [64.0–68.0] | 92 [90–95] | 970 µs [950–990] | 4.10 ms [4.00–4.20] | 0.80x | 12.00 ms [12.00–12.00] |"},
		{"| direct (no proxy) | 50001", "| direct (no proxy) | 50001 [50000–50002] | 1.00x | - | - | 37.0 [35.0–39.0] | 93 [88–98] | 1.50 ms [1.50–1.50] | 6.10 ms [6.00–6.20] | - | 12.00 ms [12.00–12.00] |"},
		{"| caddy reverse_proxy | 94.0", "| caddy reverse_proxy | 94.0 [94.0–94.0] | 91.0 [91.0–91.0] | 90.0 [90.0–90.0] | 92.0 [92.0–92.0] | 4.00 [4.00–4.00] | 4.00 [4.00–4.00] | 29700/29700 |"},
		{"| nginx | 22.0", "| nginx | 22.0 [22.0–22.0] | 19.0 [19.0–19.0] | 18.0 [18.0–18.0] | 20.0 [20.0–20.0] | - | - | 29700/29700 |"},
		// Idle over wss: its own counts; one connection fewer alive each round.
		{"| websocket_relay | 17.0", "| websocket_relay | 17.0 [17.0–17.0] | 15.0 [14.0–16.0] | 19.0 [19.0–19.0] | 3.00 [3.00–3.00] | 2.00 [2.00–2.00] | 8907/8910 |"},
		{"| nginx | 43.0", "| nginx | 43.0 [43.0–43.0] | 41.0 [40.0–42.0] | 45.0 [45.0–45.0] | - | - | 8907/8910 |"},
		{"| websocket_relay | 9900", "| websocket_relay | 9900 [9900–9900] | 6.0 [5.0–7.0] | 0.0061 [0.0051–0.0071] | 29700/29700 |"},
	}
	for _, tt := range tests {
		if got := row(t, out, tt.prefix); got != tt.want {
			t.Errorf("row\n got %s\nwant %s", got, tt.want)
		}
	}
}

// TestReportTablesAreRectangular checks that every row of every table has
// as many cells as its header.
func TestReportTablesAreRectangular(t *testing.T) {
	for name, r := range map[string]*Results{"full": fixtureResults(), "empty": emptyResults()} {
		t.Run(name, func(t *testing.T) {
			cols := -1
			for line := range strings.Lines(report(r)) {
				if !strings.HasPrefix(line, "|") {
					cols = -1
					continue
				}
				n := strings.Count(line, "|")
				if cols == -1 {
					cols = n
				} else if n != cols {
					t.Errorf("row has %d separators, header %d: %s", n, cols, line)
				}
			}
		})
	}
}

// emptyResults is a run in which nginx was absent and every measurement failed.
func emptyResults() *Results {
	r := newResults()
	r.Meta = fixtureResults().Meta
	r.Meta.NginxVersion = "absent"
	r.Targets = []string{keyRelay, keyStock, keyDirect}
	r.Throughput[TPKey{Target: keyRelay, Size: sizes[0]}] = []TPRound{{MiBps: math.NaN(), CPU: math.NaN()}}
	r.RoundTrips[keyDirect] = []RTRound{{PerSec: math.NaN()}}
	r.Notes = []string{"nginx not found: its rows are left out"}
	return r
}

func TestReportWithoutData(t *testing.T) {
	out := report(emptyResults())
	if strings.Contains(out, "| nginx") {
		t.Error("nginx rows in a run without nginx")
	}
	if strings.Contains(out, "NaN") {
		t.Error("report prints NaN; want n/a")
	}
	if !strings.Contains(out, "Not measured.") {
		t.Error("ping section should say it was not measured")
	}
	if got := row(t, out, "| websocket_relay | n/a"); !strings.Contains(got, "n/a direct") {
		t.Errorf("summary row %q should give n/a ratios", got)
	}
}

func TestFmtNum(t *testing.T) {
	tests := []struct {
		x        float64
		decimals int
		want     string
	}{
		{1.256, 2, "1.26"},
		{-0.0003, 2, "0.00"}, // a baseline one goroutine higher is not "-0.00" per connection
		{-0.5, 1, "-0.5"},
		{math.NaN(), 1, "n/a"},
		{math.Inf(1), 1, "n/a"},
	}
	for _, tt := range tests {
		if got := fmtNum(tt.x, tt.decimals); got != tt.want {
			t.Errorf("fmtNum(%v, %d) = %q, want %q", tt.x, tt.decimals, got, tt.want)
		}
	}
}

func TestNginxNoteOnlyWithNginx(t *testing.T) {
	if !strings.Contains(report(fixtureResults()), "connection slots") {
		t.Error("the nginx note is missing from a run with nginx")
	}
	if strings.Contains(report(emptyResults()), "connection slots") {
		t.Error("the nginx note is in a run without nginx")
	}
}

func TestReportIdleOverWSS(t *testing.T) {
	out := report(fixtureResults())
	for _, want := range []string{
		"| idle memory per connection, ws (9900 conns) | idle memory per connection, wss (2970 conns) | goroutines per conn (after a message), ws / wss |",
		"Client leg ws, 9900 connections per proxy:",
		"Client leg wss (TLS on the client leg only",
		"2970 connections per proxy (fewer than over ws",
		"| proxy | KiB/conn at 990 | KiB/conn at 2970 | KiB/conn after a message |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if i, j := strings.Index(out, "Client leg ws,"), strings.Index(out, "Client leg wss"); i < 0 || j < i {
		t.Error("the ws idle table should come before the wss one")
	}
}

func TestReportIdleWSSSameCount(t *testing.T) {
	r := fixtureResults()
	r.Meta.IdleConnsTLS = r.Meta.IdleConns
	if out := report(r); strings.Contains(out, "fewer than over ws") {
		t.Error("the report says wss used fewer connections when it did not")
	}
}

func TestReportIdleWSSNotMeasured(t *testing.T) {
	r := fixtureResults()
	r.Meta.IdleConnsTLS = 0
	r.IdleTLS = map[string][]IdleRound{}
	out := report(r)
	if strings.Contains(out, "wss (") {
		t.Error("a wss idle column or table in a run that skipped it")
	}
	if !strings.Contains(out, "Client leg wss: not measured.") {
		t.Error("the idle section should say wss was not measured")
	}
	want := "| websocket_relay | 10.0 KiB (12.0 after a message) | 2.00 (2.00) | 0.49x direct | 0.60x direct | 0.75x / 0.81x |"
	if got := row(t, out, "| websocket_relay | 10.0 KiB"); got != want {
		t.Errorf("summary row\n got %s\nwant %s", got, want)
	}
}

func TestIdleCountsOf(t *testing.T) {
	r := fixtureResults()
	if got := idleCountsOf(r, false); !slices.Equal(got, []int{990, 2970, 9900}) {
		t.Errorf("ws counts %v", got)
	}
	if got := idleCountsOf(r, true); !slices.Equal(got, []int{990, 2970}) {
		t.Errorf("wss counts %v", got)
	}
	if got := idleCountsOf(emptyResults(), true); got != nil {
		t.Errorf("counts %v without idle rounds, want none", got)
	}
}

func TestIdleCells(t *testing.T) {
	r := fixtureResults()
	tests := []struct {
		k        string
		secure   bool
		mem, gor string
	}{
		{keyRelay, false, "10.0 KiB (12.0 after a message)", "2.00 (2.00)"},
		{keyRelay, true, "15.0 KiB (19.0 after a message)", "3.00 (2.00)"},
		{keyNginx, true, "41.0 KiB (45.0 after a message)", "-"},
		{"absent", true, "n/a KiB (n/a after a message)", "-"},
	}
	for _, tt := range tests {
		if got := idleMemCell(r, tt.k, tt.secure); got != tt.mem {
			t.Errorf("idleMemCell(%s, %v) = %q, want %q", tt.k, tt.secure, got, tt.mem)
		}
		if got := idleGorCell(r, tt.k, tt.secure); got != tt.gor {
			t.Errorf("idleGorCell(%s, %v) = %q, want %q", tt.k, tt.secure, got, tt.gor)
		}
	}
}

func TestReportCPUColumns(t *testing.T) {
	out := report(fixtureResults())
	for _, want := range []string{
		"| proxy CPU x stock, 64 KiB ws / round trips |",
		"| target | leg | 64 KiB: MiB/s | x direct ws | proxy CPU s/GiB | x stock | 1 MiB: MiB/s | x direct ws | proxy CPU s/GiB | x stock |",
		"| target | round trips/s | x direct | proxy CPU µs/round trip | x stock | machine CPU µs/round trip | machine busy, % | p50 | p99 | p99 x stock | p99.9 |",
		"Machine CPU: the busy time of all 2 CPUs together (/proc/stat: all but idle and iowait)",
		"| target | leg | 64 KiB: machine CPU s/GiB | busy, % | 1 MiB: machine CPU s/GiB | busy, % |",
		"Machine CPU in the same windows: the busy time of all 2 CPUs together",
		"utime+stime of /proc/<pid>/stat; nginx: its one worker",
		"CPU seconds per GiB (2^30 bytes) of echoed payload, the bytes the MiB/s figure counts: each crossed the proxy twice",
		"/proc counts in 10 ms ticks, 0.5% of one core over the 2s window",
		"one 10 ms tick is 0.25% of one core over the 4s window",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

// TestReportCPUWithoutStock checks the CPU cells when a figure or stock's
// is missing: n/a, never NaN, and "-" only for direct.
func TestReportCPUWithoutStock(t *testing.T) {
	r := fixtureResults()
	for k := range r.Throughput {
		if k.Target == keyStock {
			delete(r.Throughput, k)
		}
	}
	delete(r.RoundTrips, keyStock)
	r.Throughput[TPKey{Target: keyNginx, Size: sizes[1]}] = []TPRound{{MiBps: math.NaN(), CPU: math.NaN()}}
	out := report(r)
	tests := []struct{ prefix, want string }{
		{"| websocket_relay | ws |", "| websocket_relay | ws | 495 [490–500] | 0.49x | 0.75 [0.70–0.80] | n/a | 400 [390–410] | 0.50x | 1.20 [1.10–1.30] | n/a |"},
		{"| nginx | ws |", "| nginx | ws | 450 [440–460] | 0.45x | 0.60 [0.50–0.70] | n/a | n/a | n/a | n/a | n/a |"},
		{"| websocket_relay | 30001", "| websocket_relay | 30001 [30000–30002] | 0.60x | 8.5 [8.0–9.0] | n/a | 62.0 [60.0–64.0] | 93 [90–96] | 1.50 ms [1.50–1.50] | 4.60 ms [4.50–4.70] | n/a | 12.00 ms [12.00–12.00] |"},
	}
	for _, tt := range tests {
		if got := row(t, out, tt.prefix); got != tt.want {
			t.Errorf("row\n got %s\nwant %s", got, tt.want)
		}
	}
}

func TestTickShare(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Second: "1%", 2 * time.Second: "0.5%", 3 * time.Second: "0.33%", 0: "n/a",
	} {
		if got := tickShare(d); got != want {
			t.Errorf("tickShare(%s) = %q, want %q", d, got, want)
		}
	}
}
