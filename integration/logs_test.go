package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// relayLogger is the logger name of the websocket_relay handler.
const relayLogger = "http.handlers.websocket_relay"

// connLogFields are the fields of the one info line logged per connection.
var connLogFields = []string{
	"remote_addr", "upstream", "duration",
	"client_to_backend_bytes", "client_to_backend_frames",
	"backend_to_client_bytes", "backend_to_client_frames",
	"close_code", "close_reason", "closed_by", "cause",
}

// logEntry is one JSON log line of caddy.
type logEntry map[string]any

// Str returns field k as a string ("" when absent or not a string).
func (e logEntry) Str(k string) string {
	s, _ := e[k].(string)
	return s
}

// Num returns field k as a number and whether it is one.
func (e logEntry) Num(k string) (float64, bool) {
	n, ok := e[k].(float64)
	return n, ok
}

// isConnClosed reports whether e is the relay's per-connection line.
func (e logEntry) isConnClosed() bool {
	return e.Str("logger") == relayLogger && e.Str("msg") == "connection closed"
}

func (e logEntry) String() string {
	b, _ := json.Marshal(map[string]any(e))
	return string(b)
}

// logSink collects caddy's output, keeps its JSON lines parsed and wakes
// up waiters whenever a line arrives.
type logSink struct {
	mu      sync.Mutex
	raw     bytes.Buffer
	partial []byte
	entries []logEntry
	changed chan struct{}
	done    bool
}

func newLogSink() *logSink { return &logSink{changed: make(chan struct{})} }

// Write implements io.Writer for the process's stdout and stderr.
func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.raw.Write(p)
	s.partial = append(s.partial, p...)
	grew := false
	for {
		i := bytes.IndexByte(s.partial, '\n')
		if i < 0 {
			break
		}
		s.addLine(s.partial[:i])
		s.partial = s.partial[i+1:]
		grew = true
	}
	if grew {
		s.wake()
	}
	return len(p), nil
}

// addLine parses one line; lines that are not JSON stay in raw only.
func (s *logSink) addLine(line []byte) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return
	}
	var e logEntry
	if json.Unmarshal(line, &e) == nil {
		s.entries = append(s.entries, e)
	}
}

// wake tells every waiter that something changed; s.mu must be held.
func (s *logSink) wake() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// closeInput marks the end of the output (the process exited).
func (s *logSink) closeInput() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.partial) > 0 {
		s.addLine(s.partial)
		s.partial = nil
	}
	s.done = true
	s.wake()
}

// String returns everything the process wrote.
func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.raw.String()
}

// Entries returns the JSON lines so far that satisfy match.
func (s *logSink) Entries(match func(logEntry) bool) []logEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []logEntry
	for _, e := range s.entries {
		if match(e) {
			out = append(out, e)
		}
	}
	return out
}

// waitN waits until at least n lines satisfy match or timeout passes, and
// returns the matching lines either way.
func (s *logSink) waitN(n int, timeout time.Duration, match func(logEntry) bool) []logEntry {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		var out []logEntry
		for _, e := range s.entries {
			if match(e) {
				out = append(out, e)
			}
		}
		ch, done := s.changed, s.done
		s.mu.Unlock()
		if len(out) >= n || done {
			return out
		}
		select {
		case <-ch:
		case <-timer.C:
			return out
		}
	}
}

// Logs returns caddy's JSON lines that satisfy match.
func (c *caddyProc) Logs(match func(logEntry) bool) []logEntry { return c.logs.Entries(match) }

// ConnClosedLogs returns the relay's "connection closed" lines so far.
func (c *caddyProc) ConnClosedLogs() []logEntry {
	return c.logs.Entries(logEntry.isConnClosed)
}

// WaitConnClosed waits for n "connection closed" lines (10 s at most) and
// returns them, failing the test when fewer arrive.
func (c *caddyProc) WaitConnClosed(n int) []logEntry {
	c.t.Helper()
	got := c.logs.waitN(n, 10*time.Second, logEntry.isConnClosed)
	if len(got) < n {
		c.t.Fatalf("want %d %q lines from %s, got %d:\n%s", n, "connection closed", relayLogger, len(got), c.relayLines())
	}
	return got
}

// WaitConnClosedFrom waits for the "connection closed" line of the client
// at remote address addr (10 s at most).
func (c *caddyProc) WaitConnClosedFrom(addr string) logEntry {
	c.t.Helper()
	got := c.logs.waitN(1, 10*time.Second, func(e logEntry) bool {
		return e.isConnClosed() && e.Str("remote_addr") == addr
	})
	if len(got) == 0 {
		c.t.Fatalf("no %q line for remote_addr %s:\n%s", "connection closed", addr, c.relayLines())
	}
	return got[0]
}

// relayLines renders every line of the relay's logger, for failures.
func (c *caddyProc) relayLines() string {
	var b strings.Builder
	for _, e := range c.logs.Entries(func(e logEntry) bool { return strings.HasPrefix(e.Str("logger"), relayLogger) }) {
		fmt.Fprintln(&b, e)
	}
	return b.String()
}

// connLogWant is what a test expects of one "connection closed" line;
// empty strings and negative numbers are not checked.
type connLogWant struct {
	ClosedBy  string
	Cause     string // checked as a case-insensitive substring
	CloseCode int
	Reason    string
	MinC2BMsg int // minimum client_to_backend_frames
	MinB2CMsg int // minimum backend_to_client_frames
	MinC2B    int // minimum client_to_backend_bytes
	MinB2C    int // minimum backend_to_client_bytes
	// MinPings and MinPongs are minimums for pings_sent and
	// pongs_received, fields the relay logs beyond the required ones;
	// they are checked only when logged.
	MinPings, MinPongs int
}

// checkConnLog asserts that e is a complete "connection closed" line that
// matches want.
func checkConnLog(t *testing.T, e logEntry, want connLogWant) {
	t.Helper()
	if lvl := e.Str("level"); lvl != "info" {
		t.Errorf("connection closed line has level %q, want info: %s", lvl, e)
	}
	for _, f := range connLogFields {
		if _, ok := e[f]; !ok {
			t.Errorf("connection closed line lacks field %q: %s", f, e)
		}
	}
	if want.ClosedBy != "" && e.Str("closed_by") != want.ClosedBy {
		t.Errorf("closed_by = %q, want %q: %s", e.Str("closed_by"), want.ClosedBy, e)
	}
	if want.Cause != "" && !strings.Contains(strings.ToLower(e.Str("cause")), strings.ToLower(want.Cause)) {
		t.Errorf("cause = %q, want it to contain %q: %s", e.Str("cause"), want.Cause, e)
	}
	if want.CloseCode != 0 {
		if n, _ := e.Num("close_code"); int(n) != want.CloseCode {
			t.Errorf("close_code = %v, want %d: %s", e["close_code"], want.CloseCode, e)
		}
	}
	if want.Reason != "" && e.Str("close_reason") != want.Reason {
		t.Errorf("close_reason = %q, want %q: %s", e.Str("close_reason"), want.Reason, e)
	}
	for _, m := range []struct {
		field string
		min   int
	}{
		{"client_to_backend_frames", want.MinC2BMsg},
		{"backend_to_client_frames", want.MinB2CMsg},
		{"client_to_backend_bytes", want.MinC2B},
		{"backend_to_client_bytes", want.MinB2C},
	} {
		n, ok := e.Num(m.field)
		if !ok {
			t.Errorf("%s = %v, want a number: %s", m.field, e[m.field], e)
			continue
		}
		if int(n) < m.min {
			t.Errorf("%s = %v, want at least %d: %s", m.field, n, m.min, e)
		}
	}
	for _, m := range []struct {
		field string
		min   int
	}{{"pings_sent", want.MinPings}, {"pongs_received", want.MinPongs}} {
		if n, ok := e.Num(m.field); ok && int(n) < m.min {
			t.Errorf("%s = %v, want at least %d: %s", m.field, n, m.min, e)
		}
	}
	if d, ok := e.Num("duration"); !ok || d < 0 {
		t.Errorf("duration = %v, want a non-negative number of seconds: %s", e["duration"], e)
	}
}
