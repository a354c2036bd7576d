package wsrelay

import (
	"testing"

	"github.com/websocket-relay/websocket_relay/module/engine"
)

// TestRecordEndNegativeNotAdded: recordEnd runs on an engine goroutine
// with no recover, and a Prometheus counter's Add panics on a negative
// value: a negative figure is left out rather than end the process.
func TestRecordEndNegativeNotAdded(t *testing.T) {
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("recordEnd panicked: %v", p)
		}
	}()
	recordEnd(engine.Result{ClosedBy: "client", Cause: "client went away",
		ClientToBackend: engine.Counters{Bytes: -9223372036854775795, Frames: 1}, PingsSent: -1})
}
