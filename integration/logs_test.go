package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	rt "github.com/websocket-relay/websocket_relay/integration/relaytest"
)

// connLogFields are the fields of the one info line logged per connection.
var connLogFields = []string{
	"remote_addr", "upstream", "duration",
	"client_to_backend_bytes", "client_to_backend_frames",
	"backend_to_client_bytes", "backend_to_client_frames",
	"close_code", "close_reason", "closed_by", "cause",
}

// Logs returns caddy's JSON lines that satisfy match.
func (c *caddyProc) Logs(match func(rt.LogEntry) bool) []rt.LogEntry { return c.logs.Entries(match) }

// ConnClosedLogs returns the relay's "connection closed" lines so far.
func (c *caddyProc) ConnClosedLogs() []rt.LogEntry {
	return c.logs.Entries(rt.LogEntry.IsConnClosed)
}

// WaitConnClosed waits for n "connection closed" lines (10 s at most) and
// returns them, failing the test when fewer arrive.
func (c *caddyProc) WaitConnClosed(n int) []rt.LogEntry {
	c.t.Helper()
	got := c.logs.WaitN(n, 10*time.Second, rt.LogEntry.IsConnClosed)
	if len(got) < n {
		c.t.Fatalf("want %d %q lines from %s, got %d:\n%s", n, "connection closed", rt.RelayLogger, len(got), c.relayLines())
	}
	return got
}

// WaitConnClosedFrom waits for the "connection closed" line of the client
// at remote address addr (10 s at most).
func (c *caddyProc) WaitConnClosedFrom(addr string) rt.LogEntry {
	c.t.Helper()
	got := c.logs.WaitN(1, 10*time.Second, func(e rt.LogEntry) bool {
		return e.IsConnClosed() && e.Str("remote_addr") == addr
	})
	if len(got) == 0 {
		c.t.Fatalf("no %q line for remote_addr %s:\n%s", "connection closed", addr, c.relayLines())
	}
	return got[0]
}

// relayLines renders every line of the relay's logger, for failures.
func (c *caddyProc) relayLines() string {
	var b strings.Builder
	for _, e := range c.logs.Entries(func(e rt.LogEntry) bool { return strings.HasPrefix(e.Str("logger"), rt.RelayLogger) }) {
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
func checkConnLog(t *testing.T, e rt.LogEntry, want connLogWant) {
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
		if n, _ := e.NumOK("close_code"); int(n) != want.CloseCode {
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
		n, ok := e.NumOK(m.field)
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
		if n, ok := e.NumOK(m.field); ok && int(n) < m.min {
			t.Errorf("%s = %v, want at least %d: %s", m.field, n, m.min, e)
		}
	}
	if d, ok := e.NumOK("duration"); !ok || d < 0 {
		t.Errorf("duration = %v, want a non-negative number of seconds: %s", e["duration"], e)
	}
}
