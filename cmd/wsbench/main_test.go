package main

import (
	"slices"
	"testing"
)

func TestIdleCounts(t *testing.T) {
	tests := []struct {
		n    int
		want []int
	}{
		{9900, []int{990, 2970, 9900}},
		{1000, []int{100, 300, 1000}},
		{5, []int{1, 5}},
		{1, []int{1}},
	}
	for _, tt := range tests {
		got := idleCounts(tt.n)
		if len(got) != len(tt.want) {
			t.Errorf("idleCounts(%d) = %v, want %v", tt.n, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("idleCounts(%d) = %v, want %v", tt.n, got, tt.want)
				break
			}
		}
	}
}

func TestIdleCountsTLS(t *testing.T) {
	tests := []struct {
		nWS, n int
		want   []int
	}{
		{9900, 9900, []int{990, 2970, 9900}}, // the default: the ws steps
		{9900, 2970, []int{990, 2970}},       // fewer: lines up with two ws steps
		{1000, 1000, []int{100, 300, 1000}},  // -quick: the ws steps
		{9900, 3000, []int{990, 2970, 3000}},
		{9900, 500, []int{500}},
		{1000, 5000, []int{100, 300, 1000, 5000}},
	}
	for _, tt := range tests {
		if got := idleCountsTLS(tt.nWS, tt.n); !slices.Equal(got, tt.want) {
			t.Errorf("idleCountsTLS(%d, %d) = %v, want %v", tt.nWS, tt.n, got, tt.want)
		}
	}
}

func TestRotate(t *testing.T) {
	in := []string{"a", "b", "c"}
	for r, want := range []string{"abc", "bca", "cab", "abc"} {
		got := ""
		for _, s := range rotate(in, r) {
			got += s
		}
		if got != want {
			t.Errorf("rotate(abc, %d) = %s, want %s", r, got, want)
		}
	}
	if in[0] != "a" {
		t.Error("rotate modified its input")
	}
}

func TestParseFlagsQuick(t *testing.T) {
	c, err := parseFlags([]string{"-quick", "-rounds", "2"})
	if err != nil {
		t.Fatal(err)
	}
	if c.idleConns != 1000 || c.idleConnsTLS != 1000 || c.rounds != 2 {
		t.Errorf("quick: idle conns %d (wss %d) rounds %d, want 1000 (1000) and the explicit 2", c.idleConns, c.idleConnsTLS, c.rounds)
	}
	if c, err := parseFlags(nil); err != nil || c.idleConns != 9900 || c.idleConnsTLS != 9900 {
		t.Errorf("defaults: idle conns %d, wss %d (%v); want 9900 and 9900", c.idleConns, c.idleConnsTLS, err)
	}
	if c, err := parseFlags([]string{"-quick", "-idle-conns-wss", "0"}); err != nil || c.idleConnsTLS != 0 {
		t.Errorf("-idle-conns-wss 0 should skip wss idle, even with -quick: got %d, %v", c.idleConnsTLS, err)
	}
	if _, err := parseFlags([]string{"-idle-conns-wss", "-1"}); err == nil {
		t.Error("a negative wss idle count should be refused")
	}
	if _, err := parseFlags([]string{"-settle", "1s"}); err == nil {
		t.Error("a settle shorter than the 1s ping interval should be refused")
	}
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		name string
		args []string
		via  string
		want string
	}{
		{"by hand", []string{"bin/wsbench", "-quick"}, "", "bin/wsbench -quick"},
		{"by make", []string{"./bin/wsbench", "-quick", "-via", "make bench-quick", "-out", "x"}, "make bench-quick",
			"make bench-quick (./bin/wsbench -quick -out x)"},
		{"via with =", []string{"bin/wsbench", "-via=make bench"}, "make bench", "make bench (bin/wsbench)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := commandLine(tt.args, tt.via); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
