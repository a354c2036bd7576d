package relaytest

import (
	"bytes"
	"encoding/json"
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

// NumOK returns field k as a number and whether it is one.
func (e LogEntry) NumOK(k string) (float64, bool) {
	n, ok := e[k].(float64)
	return n, ok
}

// IsConnClosed reports whether e is the relay's per-connection line.
func (e LogEntry) IsConnClosed() bool {
	return e.Str("logger") == RelayLogger && e.Str("msg") == "connection closed"
}

func (e LogEntry) String() string {
	b, _ := json.Marshal(map[string]any(e))
	return string(b)
}

// LogSink collects a process's output (use it as the process's stdout and
// stderr), keeps its JSON lines parsed and wakes waiters when a line
// arrives.
type LogSink struct {
	mu      sync.Mutex
	raw     bytes.Buffer
	partial []byte
	entries []LogEntry
	changed chan struct{}
	done    bool
}

// NewLogSink returns an empty sink.
func NewLogSink() *LogSink { return &LogSink{changed: make(chan struct{})} }

// Write implements io.Writer for the process's stdout and stderr.
func (s *LogSink) Write(p []byte) (int, error) {
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
func (s *LogSink) addLine(line []byte) {
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
func (s *LogSink) wake() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// CloseInput marks the end of the output (the process exited).
func (s *LogSink) CloseInput() {
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
func (s *LogSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.raw.String()
}

func (s *LogSink) match(match func(LogEntry) bool) []LogEntry {
	var out []LogEntry
	for _, e := range s.entries {
		if match(e) {
			out = append(out, e)
		}
	}
	return out
}

// Entries returns the JSON lines so far that satisfy match.
func (s *LogSink) Entries(match func(LogEntry) bool) []LogEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.match(match)
}

// WaitN waits until at least n lines satisfy match, the process exits or
// timeout passes, and returns the matching lines.
func (s *LogSink) WaitN(n int, timeout time.Duration, match func(LogEntry) bool) []LogEntry {
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
func (c *Caddy) Logs(match func(LogEntry) bool) []LogEntry { return c.logs.Entries(match) }

// WaitLogs waits up to timeout for n lines that satisfy match and returns
// those seen, however many.
func (c *Caddy) WaitLogs(n int, timeout time.Duration, match func(LogEntry) bool) []LogEntry {
	return c.logs.WaitN(n, timeout, match)
}

// ConnClosedFrom returns a matcher for the "connection closed" line of
// the client whose address (as the relay saw it) is remote.
func ConnClosedFrom(remote string) func(LogEntry) bool {
	return func(e LogEntry) bool { return e.IsConnClosed() && e.Str("remote_addr") == remote }
}

// Output returns everything caddy wrote.
func (c *Caddy) Output() string { return c.logs.String() }
