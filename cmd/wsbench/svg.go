package main

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// The chart is plain SVG written by hand: one line chart (idle memory per
// connection against the number of connections) over two bar charts
// (throughput and round trips, relative to the direct connection).

const (
	chartW = 960
	chartH = 780
)

// seriesColors are the targets' colours, colour-blind safe (Okabe-Ito).
var seriesColors = map[string]string{
	keyRelay:  "#009E73",
	keyStock:  "#E69F00",
	keyNginx:  "#0072B2",
	keyDirect: "#999999",
}

// box is a plot area in chart coordinates.
type box struct{ x, y, w, h float64 }

var svgEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;")

func esc(s string) string { return svgEscaper.Replace(s) }

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (1 for v <= 0
// or NaN), so axes end on a round number.
func niceCeil(v float64) float64 {
	if !(v > 0) || math.IsInf(v, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p*(1+1e-9) {
			return m * p
		}
	}
	return 10 * p
}

// fmtTick prints an axis value without trailing zeros.
func fmtTick(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}

// writeChart writes the whole SVG document.
func writeChart(w io.Writer, r *Results) {
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		chartW, chartH, chartW, chartH)
	fmt.Fprintf(w, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", chartW, chartH)
	title := fmt.Sprintf("WebSocket proxies side by side: Caddy %s, %s, %d CPUs, %s (median of %d round(s))",
		r.Meta.CaddyVersion, r.Meta.NginxVersion, r.Meta.Machine.NProc, r.Meta.Date.UTC().Format("2006-01-02"), r.Meta.Rounds)
	text(w, chartW/2, 24, "middle", 15, "bold", title)
	memoryChart(w, r, box{x: 80, y: 70, w: 560, h: 270})
	legend(w, r, 790, 90)
	tpBars, tpGroups := throughputBars(r)
	barChart(w, "Throughput relative to direct ws (higher is better)", tpGroups, tpBars, r.proxies(),
		box{x: 80, y: 440, w: 520, h: 260})
	text(w, 340, 756, "middle", 11, "normal",
		fmt.Sprintf("%d conns, %d messages in flight each; wss: TLS on the client leg, compared with direct ws (direct has no TLS)",
			r.Meta.TPConns, r.Meta.TPWindow))
	rtBars := map[string][]float64{}
	direct := r.rtField(keyDirect, func(x RTRound) float64 { return x.PerSec }).Median
	for _, k := range r.proxies() {
		rtBars[k] = []float64{Ratio(r.rtField(k, func(x RTRound) float64 { return x.PerSec }).Median, direct)}
	}
	barChart(w, "Round trips/s relative to direct", []string{fmt.Sprintf("%d B, %d conns", r.Meta.RTSize, r.Meta.RTConns)},
		rtBars, r.proxies(), box{x: 680, y: 440, w: 240, h: 260})
	fmt.Fprintln(w, "</svg>")
}

func text(w io.Writer, x, y float64, anchor string, size int, weight, s string) {
	fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="%s" font-size="%d" font-weight="%s">%s</text>`+"\n",
		x, y, anchor, size, weight, esc(s))
}

func line(w io.Writer, x1, y1, x2, y2 float64, stroke, extra string) {
	fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"%s/>`+"\n", x1, y1, x2, y2, stroke, extra)
}

// legend lists the proxies with their colours.
func legend(w io.Writer, r *Results, x, y float64) {
	for i, k := range r.proxies() {
		yy := y + float64(i)*22
		fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="14" height="14" fill="%s"/>`+"\n", x, yy-11, seriesColors[k])
		text(w, x+20, yy, "start", 13, "normal", label(k))
	}
	yy := y + float64(len(r.proxies()))*22 + 10
	fmt.Fprintf(w, `<circle cx="%.1f" cy="%.1f" r="5" fill="#ffffff" stroke="#333333" stroke-width="2"/>`+"\n", x+7, yy-4)
	text(w, x+20, yy, "start", 12, "normal", "after one message")
	text(w, x+20, yy+16, "start", 12, "normal", "on every connection")
}

// memoryChart plots idle KiB per connection against connections over ws,
// one line per proxy, with the after-a-message value as a hollow marker.
func memoryChart(w io.Writer, r *Results, b box) {
	text(w, b.x+b.w/2, b.y-14, "middle", 14, "bold", "Idle memory per connection (RSS growth / connections, lower is better)")
	counts := idleCountsOf(r, false)
	maxX, maxY := 1.0, 0.0
	if len(counts) > 0 {
		maxX = float64(counts[len(counts)-1])
	}
	type pt struct{ x, y float64 }
	lines := map[string][]pt{}
	after := map[string]pt{}
	for _, k := range r.proxies() {
		for i, c := range counts {
			v := r.idleField(k, false, at(i, func(x IdleRound) []float64 { return x.KiB })).Median
			if !math.IsNaN(v) {
				lines[k] = append(lines[k], pt{float64(c), v})
				maxY = max(maxY, v)
			}
		}
		if v := r.idleField(k, false, func(x IdleRound) float64 { return x.AfterMsgKiB }).Median; !math.IsNaN(v) && len(counts) > 0 {
			after[k] = pt{maxX, v}
			maxY = max(maxY, v)
		}
	}
	maxY = niceCeil(maxY * 1.1)
	px := func(x float64) float64 { return b.x + x/maxX*b.w }
	py := func(y float64) float64 { return b.y + b.h - y/maxY*b.h }
	axes(w, b, maxY, "KiB per connection")
	for _, c := range counts {
		line(w, px(float64(c)), b.y+b.h, px(float64(c)), b.y+b.h+5, "#333333", "")
		text(w, px(float64(c)), b.y+b.h+18, "middle", 11, "normal", fmt.Sprintf("%d", c))
	}
	text(w, b.x+b.w/2, b.y+b.h+36, "middle", 12, "normal", "idle connections")
	var ends []endLabel
	for _, k := range r.proxies() {
		pts := lines[k]
		if len(pts) == 0 {
			continue
		}
		var d strings.Builder
		for i, p := range pts {
			cmd := "L"
			if i == 0 {
				cmd = "M"
			}
			fmt.Fprintf(&d, "%s%.1f %.1f ", cmd, px(p.x), py(p.y))
		}
		fmt.Fprintf(w, `<path d="%s" fill="none" stroke="%s" stroke-width="2.5"/>`+"\n", strings.TrimSpace(d.String()), seriesColors[k])
		for _, p := range pts {
			fmt.Fprintf(w, `<circle cx="%.1f" cy="%.1f" r="4" fill="%s"/>`+"\n", px(p.x), py(p.y), seriesColors[k])
		}
		ends = append(ends, endLabel{y: py(pts[len(pts)-1].y), text: fmtNum(pts[len(pts)-1].y, 1), color: seriesColors[k]})
		if a, ok := after[k]; ok {
			fmt.Fprintf(w, `<circle cx="%.1f" cy="%.1f" r="5" fill="#ffffff" stroke="%s" stroke-width="2"/>`+"\n", px(a.x), py(a.y), seriesColors[k])
			if last := &ends[len(ends)-1]; fmtNum(a.y, 1) != last.text {
				last.text += " → " + fmtNum(a.y, 1)
			}
		}
	}
	// Values at the largest count, right of the plot, moved apart so that
	// close lines do not print on top of each other.
	ys := make([]float64, len(ends))
	for i, e := range ends {
		ys[i] = e.y + 4
	}
	ys = spreadLabels(ys, 14)
	for i, e := range ends {
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" font-size="11" fill="%s">%s KiB</text>`+"\n", b.x+b.w+12, ys[i], e.color, esc(e.text))
	}
}

// endLabel is the value printed at the end of one line.
type endLabel struct {
	y           float64
	text, color string
}

// spreadLabels moves label positions apart so that any two are at least
// gap apart, keeping their order: labels that would overlap form a cluster
// spaced gap apart and centred on the mean of their wanted positions, and
// clusters merge until none overlap. The result is in the order of ys.
func spreadLabels(ys []float64, gap float64) []float64 {
	idx := make([]int, len(ys))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(ys[a], ys[b]) })
	type cluster struct {
		first, n int     // a run of idx
		sum, top float64 // sum of wanted positions, position of the first
	}
	var cs []cluster
	for k, i := range idx {
		cs = append(cs, cluster{first: k, n: 1, sum: ys[i], top: ys[i]})
	}
	for merged := true; merged; {
		merged = false
		for k := 1; k < len(cs); k++ {
			a, b := cs[k-1], cs[k]
			if a.top+float64(a.n)*gap <= b.top {
				continue
			}
			m := cluster{first: a.first, n: a.n + b.n, sum: a.sum + b.sum}
			m.top = m.sum/float64(m.n) - float64(m.n-1)*gap/2
			cs = append(cs[:k-1], append([]cluster{m}, cs[k+1:]...)...)
			merged = true
			break
		}
	}
	out := make([]float64, len(ys))
	for _, c := range cs {
		for j := range c.n {
			out[idx[c.first+j]] = c.top + float64(j)*gap
		}
	}
	return out
}

// axes draws the frame, horizontal grid lines and y tick labels.
func axes(w io.Writer, b box, maxY float64, yLabel string) {
	for i := 0; i <= 5; i++ {
		v := maxY * float64(i) / 5
		y := b.y + b.h - b.h*float64(i)/5
		line(w, b.x, y, b.x+b.w, y, "#e0e0e0", "")
		text(w, b.x-6, y+4, "end", 11, "normal", fmtTick(v))
	}
	line(w, b.x, b.y, b.x, b.y+b.h, "#333333", "")
	line(w, b.x, b.y+b.h, b.x+b.w, b.y+b.h, "#333333", "")
	fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="12" transform="rotate(-90 %.1f %.1f)">%s</text>`+"\n",
		b.x-48, b.y+b.h/2, b.x-48, b.y+b.h/2, esc(yLabel))
}

// throughputBars returns each proxy's throughput ratios to direct ws, one
// per group (message size and leg), and the groups' names.
func throughputBars(r *Results) (map[string][]float64, []string) {
	bars := map[string][]float64{}
	var groups []string
	for _, s := range sizes {
		direct := r.tpSummary(TPKey{Target: keyDirect, Size: s}).Median
		for _, secure := range []bool{false, true} {
			leg := "ws"
			if secure {
				leg = "wss"
			}
			groups = append(groups, sizeName(s)+" "+leg)
			for _, k := range r.proxies() {
				bars[k] = append(bars[k], Ratio(r.tpSummary(TPKey{Target: k, Size: s, TLS: secure}).Median, direct))
			}
		}
	}
	return bars, groups
}

// barChart draws grouped bars (one bar per series in each group) of ratios
// to direct, with a dashed line at 1.0 for direct itself.
func barChart(w io.Writer, title string, groups []string, bars map[string][]float64, series []string, b box) {
	text(w, b.x+b.w/2, b.y-14, "middle", 14, "bold", title)
	maxY := 1.0
	for _, vs := range bars {
		for _, v := range vs {
			if !math.IsNaN(v) {
				maxY = max(maxY, v)
			}
		}
	}
	maxY = niceCeil(maxY * 1.1)
	axes(w, b, maxY, "x direct")
	py := func(y float64) float64 { return b.y + b.h - y/maxY*b.h }
	gw := b.w / float64(max(1, len(groups)))
	bw := gw * 0.8 / float64(max(1, len(series)))
	for g, name := range groups {
		gx := b.x + float64(g)*gw + gw*0.1
		text(w, b.x+float64(g)*gw+gw/2, b.y+b.h+18, "middle", 11, "normal", name)
		for i, k := range series {
			vs := bars[k]
			if g >= len(vs) || math.IsNaN(vs[g]) {
				continue
			}
			x := gx + float64(i)*bw
			fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n",
				x+1, py(vs[g]), bw-2, b.y+b.h-py(vs[g]), seriesColors[k])
			text(w, x+bw/2, py(vs[g])-4, "middle", 10, "normal", fmt.Sprintf("%.2f", vs[g]))
		}
	}
	line(w, b.x, py(1), b.x+b.w, py(1), "#555555", ` stroke-dasharray="6 4"`)
	text(w, b.x+b.w-2, py(1)-4, "end", 10, "normal", "direct = 1")
}
