package main

import (
	"math"
	"slices"
	"time"
)

// Summary is the median and the range of one figure over the rounds of a run.
type Summary struct {
	Median, Min, Max float64
	// N is how many rounds produced a value; NaN values are left out.
	N int
}

// Summarize returns the median, minimum and maximum of xs, leaving out NaN
// values (a round that failed). With no value left it returns N == 0 and NaN
// figures.
func Summarize(xs []float64) Summary {
	vals := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			vals = append(vals, x)
		}
	}
	if len(vals) == 0 {
		return Summary{Median: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	}
	slices.Sort(vals)
	return Summary{Median: median(vals), Min: vals[0], Max: vals[len(vals)-1], N: len(vals)}
}

// Median returns the median of xs (the mean of the two middle values for an
// even count), NaN for an empty slice. xs is not modified.
func Median(xs []float64) float64 {
	return Summarize(xs).Median
}

// median of a sorted, non-empty slice.
func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// Percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted durations: the smallest value that at least p% of the samples do
// not exceed. It returns 0 for no samples.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	// The epsilon keeps float error (99.9/100*1000 = 999.0000000000001)
	// from moving the rank up by one.
	rank := int(math.Ceil(p/100*float64(n) - 1e-9))
	rank = max(1, min(n, rank))
	return sorted[rank-1]
}

// Ratio returns a/b, or NaN when either is NaN or b is not positive.
func Ratio(a, b float64) float64 {
	if math.IsNaN(a) || math.IsNaN(b) || b <= 0 {
		return math.NaN()
	}
	return a / b
}
