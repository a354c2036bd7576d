package main

import (
	"math"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name string
		in   []float64
		want Summary
	}{
		{"one", []float64{4}, Summary{Median: 4, Min: 4, Max: 4, N: 1}},
		{"odd count", []float64{3, 1, 2}, Summary{Median: 2, Min: 1, Max: 3, N: 3}},
		{"even count takes the mean of the middle two", []float64{4, 1, 3, 2}, Summary{Median: 2.5, Min: 1, Max: 4, N: 4}},
		{"NaN rounds are left out", []float64{nan, 5, 1, nan, 3}, Summary{Median: 3, Min: 1, Max: 5, N: 3}},
		{"duplicates", []float64{7, 7, 7}, Summary{Median: 7, Min: 7, Max: 7, N: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Summarize(tt.in); got != tt.want {
				t.Errorf("Summarize(%v) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestSummarizeEmpty(t *testing.T) {
	for name, in := range map[string][]float64{"nil": nil, "all NaN": {math.NaN(), math.NaN()}} {
		t.Run(name, func(t *testing.T) {
			s := Summarize(in)
			if s.N != 0 || !math.IsNaN(s.Median) || !math.IsNaN(s.Min) || !math.IsNaN(s.Max) {
				t.Errorf("Summarize(%v) = %+v, want N 0 and NaN figures", in, s)
			}
		})
	}
}

func TestSummarizeDoesNotReorderInput(t *testing.T) {
	in := []float64{3, 1, 2}
	Median(in)
	if in[0] != 3 || in[1] != 1 || in[2] != 2 {
		t.Errorf("input reordered to %v", in)
	}
}

func TestPercentile(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = ms(i + 1) // 1..100 ms
	}
	thousand := make([]time.Duration, 1000)
	for i := range thousand {
		thousand[i] = time.Duration(i+1) * time.Microsecond
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"single", []time.Duration{ms(7)}, 99.9, ms(7)},
		{"p50 of 1..100", hundred, 50, ms(50)},
		{"p99 of 1..100", hundred, 99, ms(99)},
		{"p99.9 of 1..100 is the maximum", hundred, 99.9, ms(100)},
		{"p100 is the maximum", hundred, 100, ms(100)},
		{"tiny p is the minimum", hundred, 0.001, ms(1)},
		{"p99.9 of 1..1000", thousand, 99.9, 999 * time.Microsecond},
		{"p50 of two", []time.Duration{ms(1), ms(9)}, 50, ms(1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("Percentile(p=%v) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
}

func TestRatio(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name string
		a, b float64
		want float64 // NaN means NaN
	}{
		{"plain", 3, 4, 0.75},
		{"zero denominator", 3, 0, nan},
		{"NaN numerator", nan, 4, nan},
		{"NaN denominator", 3, nan, nan},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Ratio(tt.a, tt.b)
			if math.IsNaN(tt.want) != math.IsNaN(got) || (!math.IsNaN(got) && got != tt.want) {
				t.Errorf("Ratio(%v, %v) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
		})
	}
}
