package main

import (
	"math"
	"testing"
)

// TestParseCPUTimes: a process's CPU time from /proc/<pid>/stat and the
// machine's busy time from /proc/stat, in seconds.
func TestParseCPUTimes(t *testing.T) {
	tests := []struct {
		name  string
		parse func([]byte) (float64, error)
		stat  string
		want  float64
		ok    bool
	}{
		{"pid: plain", parseStatCPU, "1234 (caddy) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 9 0 100 0 0", 4, true},
		{"pid: name with spaces and parentheses", parseStatCPU, "99 (a b) c)) R 1 2 3 4 5 6 7 8 9 10 7 3 0 0", 0.1, true},
		{"pid: no closing parenthesis", parseStatCPU, "99 (caddy S 1", 0, false},
		{"pid: too short", parseStatCPU, "99 (caddy) S 1 2 3", 0, false},
		{"pid: not a number", parseStatCPU, "1 (x) S 1 1 1 0 -1 0 0 0 0 0 abc 3 0", 0, false},
		// user nice system idle iowait irq softirq steal guest guest_nice:
		// busy is 100+5+50+3+7+2 ticks.
		{"machine: plain", parseProcStatBusy, "cpu  100 5 50 9000 40 3 7 2 0 0\ncpu0 50 2 25 4500 20 1 3 1 0 0\nintr 1 2 3\n", 1.67, true},
		{"machine: no cpu line first", parseProcStatBusy, "intr 1 2 3\ncpu 1 2 3 4 5 6 7 8\n", 0, false},
		{"machine: too short", parseProcStatBusy, "cpu 1 2 3 4\n", 0, false},
		{"machine: not a number", parseProcStatBusy, "cpu 1 2 x 4 5 6 7 8\n", 0, false},
		{"machine: empty", parseProcStatBusy, "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.parse([]byte(tt.stat))
			if (err == nil) != tt.ok {
				t.Fatalf("error = %v, want ok %v", err, tt.ok)
			}
			if tt.ok && !sameFloat(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseGoroutineTotal(t *testing.T) {
	if n, err := parseGoroutineTotal("goroutine profile: total 20123\n"); err != nil || n != 20123 {
		t.Errorf("got %v, %v; want 20123", n, err)
	}
	for _, bad := range []string{"<html>", "goroutine profile: total NaN\n", "goroutine profile: total -1\n"} {
		if _, err := parseGoroutineTotal(bad); err == nil {
			t.Errorf("parseGoroutineTotal(%q): no error", bad)
		}
	}
}

// FuzzProcParsers: the /proc and pprof parsers take any input without
// panicking, and what they accept is a finite count, never negative.
func FuzzProcParsers(f *testing.F) {
	f.Add([]byte("1234 (caddy) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 9 0 100 0 0"))
	f.Add([]byte("cpu  100 5 50 9000 40 3 7 2 0 0\ncpu0 50 2 25 4500 20 1 3 1 0 0\n"))
	f.Add([]byte("goroutine profile: total 20123\n"))
	f.Add([]byte("99 (a b) c)) R 1 2 3 4 5 6 7 8 9 10 7 3 0 0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for name, parse := range map[string]func([]byte) (float64, error){
			"parseStatCPU":      parseStatCPU,
			"parseProcStatBusy": parseProcStatBusy,
		} {
			if v, err := parse(b); err == nil && (math.IsNaN(v) || math.IsInf(v, 0) || v < 0) {
				t.Errorf("%s(%q) = %v", name, b, v)
			}
		}
		if n, err := parseGoroutineTotal(string(b)); err == nil && (math.IsNaN(n) || math.IsInf(n, 0) || n < 0) {
			t.Errorf("parseGoroutineTotal(%q) = %v", b, n)
		}
	})
}

// TestReadMachineBusy reads this machine's /proc/stat: some busy time,
// and never less on a second read.
func TestReadMachineBusy(t *testing.T) {
	a, err := readMachineBusy()
	if err != nil {
		t.Fatal(err)
	}
	b, err := readMachineBusy()
	if err != nil {
		t.Fatal(err)
	}
	if a <= 0 || b < a {
		t.Errorf("busy CPU seconds %v then %v, want > 0 and not falling", a, b)
	}
}
