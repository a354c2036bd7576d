package main

import (
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

func TestCPUPerGiB(t *testing.T) {
	tests := []struct {
		name string
		in   TPRound
		want float64
	}{
		{"1.5 CPU s over 3 GiB", TPRound{MiBps: 1536, CPU: 1.5, Bytes: 3 << 30}, 0.5},
		{"one 10 ms tick over 512 MiB", TPRound{CPU: 0.01, Bytes: 512 << 20}, 0.02},
		{"direct: no proxy", TPRound{MiBps: 1000, CPU: math.NaN(), Bytes: 1 << 30}, math.NaN()},
		{"failed round", TPRound{MiBps: math.NaN(), CPU: math.NaN()}, math.NaN()},
		{"no payload", TPRound{CPU: 0.2}, math.NaN()},
	}
	for _, tt := range tests {
		if got := tt.in.CPUPerGiB(); !sameFloat(got, tt.want) {
			t.Errorf("%s: CPUPerGiB = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestCPUPerTrip(t *testing.T) {
	tests := []struct {
		name string
		in   RTRound
		want float64
	}{
		{"0.6 CPU s over 200,000 round trips", RTRound{PerSec: 100000, CPU: 0.6, Trips: 200000}, 3},
		{"direct: no proxy", RTRound{PerSec: 100000, CPU: math.NaN(), Trips: 200000}, math.NaN()},
		{"failed round", RTRound{PerSec: math.NaN(), CPU: math.NaN()}, math.NaN()},
	}
	for _, tt := range tests {
		if got := tt.in.CPUPerTrip(); !sameFloat(got, tt.want) {
			t.Errorf("%s: CPUPerTrip = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestMachineCPU: 3.6 busy CPU s over 2 s of 100,000 round trips/s on 2
// CPUs is 18 µs per round trip and 90% busy; over 2 s at 1,024 MiB/s it
// is 1.8 s per GiB.
func TestMachineCPU(t *testing.T) {
	tp := TPRound{MiBps: 1024, Machine: 3.6, Bytes: 2 << 30}
	if got := tp.MachinePerGiB(); !sameFloat(got, 1.8) {
		t.Errorf("MachinePerGiB = %v, want 1.8", got)
	}
	if got := tp.Busy(2); !sameFloat(got, 90) {
		t.Errorf("throughput Busy(2) = %v, want 90", got)
	}
	if got := (TPRound{MiBps: math.NaN(), Machine: math.NaN()}).Busy(2); !math.IsNaN(got) {
		t.Errorf("failed throughput round: Busy = %v, want NaN", got)
	}
	x := RTRound{PerSec: 100000, Machine: 3.6, Trips: 200000}
	if got := x.MachinePerTrip(); !sameFloat(got, 18) {
		t.Errorf("MachinePerTrip = %v, want 18", got)
	}
	if got := x.Busy(2); !sameFloat(got, 90) {
		t.Errorf("Busy(2) = %v, want 90", got)
	}
	failed := RTRound{PerSec: math.NaN(), Machine: math.NaN()}
	if got := failed.MachinePerTrip(); !math.IsNaN(got) {
		t.Errorf("failed round: MachinePerTrip = %v, want NaN", got)
	}
	if got := failed.Busy(2); !math.IsNaN(got) {
		t.Errorf("failed round: Busy = %v, want NaN", got)
	}
}

// sameFloat compares to a relative 1e-9, NaN equal to NaN.
func sameFloat(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b))
}

func TestTPField(t *testing.T) {
	r := fixtureResults()
	k := TPKey{Target: keyRelay, Size: sizes[0]}
	if s := r.tpSummary(k); s.N != 2 || s.Median != 495 {
		t.Errorf("MiB/s summary %+v, want median 495 of 2 rounds", s)
	}
	s := r.tpField(k, func(x TPRound) float64 { return x.CPUPerGiB() })
	if s.N != 2 || !sameFloat(s.Median, 0.75) {
		t.Errorf("CPU summary %+v, want median 0.75 of 2 rounds", s)
	}
	if s := r.tpField(TPKey{Target: keyDirect, Size: sizes[0]}, func(x TPRound) float64 { return x.CPUPerGiB() }); s.N != 0 {
		t.Errorf("direct has a CPU figure: %+v", s)
	}
}

func TestProxyCPU(t *testing.T) {
	b := &bench{res: newResults(), start: time.Now()}
	if c := b.proxyCPU(&target{key: keyDirect}); !math.IsNaN(c) {
		t.Errorf("direct CPU %v, want NaN", c)
	}
	if c := b.proxyCPU(&target{key: keyRelay, proc: &proc{pid: os.Getpid()}}); math.IsNaN(c) || c < 0 {
		t.Errorf("own CPU %v, want a number of seconds", c)
	}
	if len(b.res.Notes) != 0 {
		t.Errorf("notes %q, want none", b.res.Notes)
	}
	if c := b.proxyCPU(&target{key: keyNginx, proc: &proc{pid: -1}}); !math.IsNaN(c) {
		t.Errorf("CPU of a missing process %v, want NaN", c)
	}
	if len(b.res.Notes) != 1 || !strings.Contains(b.res.Notes[0], "CPU time of nginx") {
		t.Errorf("notes %q, want one about nginx's CPU time", b.res.Notes)
	}
}
