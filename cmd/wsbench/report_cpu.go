package main

import (
	"strconv"
	"time"
)

// The proxy CPU columns of the throughput and round-trip tables: a proxy's
// own CPU time per unit of work, read from /proc over the measured window,
// and its ratio to stock reverse_proxy's in the same run.

// cpuCells are a proxy's CPU figure over the rounds and its median's ratio
// to stock reverse_proxy's median; "-" for the direct connection.
func cpuCells(k string, v, stock Summary, decimals int) []string {
	if k == keyDirect {
		return []string{"-", "-"}
	}
	return []string{fmtSummary(v, decimals), fmtRatio(Ratio(v.Median, stock.Median))}
}

// tpCPUCells are the proxy CPU s per GiB of the throughput series k and
// the ratio to stock's on the same size and leg.
func (r *Results) tpCPUCells(k TPKey) []string {
	stock := k
	stock.Target = keyStock
	f := func(x TPRound) float64 { return x.CPUPerGiB() }
	return cpuCells(k.Target, r.tpField(k, f), r.tpField(stock, f), 2)
}

// rtCPUCells are the proxy CPU µs per round trip of target k and the
// ratio to stock's.
func (r *Results) rtCPUCells(k string) []string {
	f := func(x RTRound) float64 { return x.CPUPerTrip() }
	return cpuCells(k, r.rtField(k, f), r.rtField(keyStock, f), 1)
}

// tickShare is one 10 ms /proc tick as a percentage of one core over d.
func tickShare(d time.Duration) string {
	if d <= 0 {
		return "n/a"
	}
	return strconv.FormatFloat(100*0.01/d.Seconds(), 'g', 2, 64) + "%"
}
