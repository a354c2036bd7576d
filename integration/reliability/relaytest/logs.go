package relaytest

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"time"
)

// RelayLogger is the logger name of the websocket_relay handler.
const RelayLogger = "http.handlers.websocket_relay"

// LogEntry is one JSON log line of caddy.
type LogEntry map[string]any

// Str returns field k as a string ("" when absent or not a string).
func (e LogEntry) Str(k string) string {
	s, _ := e[k].(string)
	return s
}

// Num returns field k as a number (0 when absent).
func (e LogEntry) Num(k string) float64 {
	n, _ := e[k].(float64)
	return n
}

// IsConnClosed reports whether e is the relay's per-connection line.
func (e LogEntry) IsConnClosed() bool {
	return e.Str("logger") == RelayLogger && e.Str("msg") == "connection closed"
}

func (e LogEntry) String() string {
	b, _ := json.Marshal(map[string]any(e))
	return string(b)
}

// logSink collects a process's output, keeps its JSON lines parsed and
// wakes waiters when a line arrives.
type logSink struct {
	mu      sync.Mutex
	raw     bytes.Buffer
	partial []byte
	entries []LogEntry
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

func (s *logSink) addLine(line []byte) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return
	}
	var e LogEntry
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

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.raw.String()
}

func (s *logSink) match(match func(LogEntry) bool) []LogEntry {
	var out []LogEntry
	for _, e := range s.entries {
		if match(e) {
			out = append(out, e)
		}
	}
	return out
}

// waitN waits until at least n lines satisfy match, the process exits or
// timeout passes, and returns the matching lines.
func (s *logSink) waitN(n int, timeout time.Duration, match func(LogEntry) bool) []LogEntry {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		out := s.match(match)
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

// Logs returns caddy's JSON lines so far that satisfy match.
func (c *Caddy) Logs(match func(LogEntry) bool) []LogEntry {
	c.logs.mu.Lock()
	defer c.logs.mu.Unlock()
	return c.logs.match(match)
}

// WaitLogs waits up to timeout for n lines that satisfy match and returns
// those seen, however many.
func (c *Caddy) WaitLogs(n int, timeout time.Duration, match func(LogEntry) bool) []LogEntry {
	return c.logs.waitN(n, timeout, match)
}

// ConnClosedFrom returns a matcher for the "connection closed" line of
// the client whose address (as the relay saw it) is remote.
func ConnClosedFrom(remote string) func(LogEntry) bool {
	return func(e LogEntry) bool { return e.IsConnClosed() && e.Str("remote_addr") == remote }
}

// Output returns everything caddy wrote.
func (c *Caddy) Output() string { return c.logs.String() }

// excerpt returns the text of out around the first occurrence of needle.
func excerpt(out, needle string) string {
	i := strings.Index(out, needle)
	if i < 0 {
		return ""
	}
	return out[max(0, i-2000):min(len(out), i+6000)]
}
