package main

import "testing"

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name string
		stat string
		want float64
		ok   bool
	}{
		{"plain", "1234 (caddy) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 9 0 100 0 0", 4, true},
		{"name with spaces and parentheses", "99 (a b) c)) R 1 2 3 4 5 6 7 8 9 10 7 3 0 0", 0.1, true},
		{"no closing parenthesis", "99 (caddy S 1", 0, false},
		{"too short", "99 (caddy) S 1 2 3", 0, false},
		{"not a number", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 abc 3 0", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatCPU([]byte(tt.stat))
			if (err == nil) != tt.ok {
				t.Fatalf("parseStatCPU error = %v, want ok %v", err, tt.ok)
			}
			if tt.ok && got != tt.want {
				t.Errorf("parseStatCPU = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseGoroutineTotal(t *testing.T) {
	if n, err := parseGoroutineTotal("goroutine profile: total 20123\n"); err != nil || n != 20123 {
		t.Errorf("got %v, %v; want 20123", n, err)
	}
	if _, err := parseGoroutineTotal("<html>"); err == nil {
		t.Error("an unexpected first line should be an error")
	}
}
