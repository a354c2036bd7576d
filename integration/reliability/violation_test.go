package reliability

import (
	"fmt"
	"strings"
	"testing"
	"time"

	rt "github.com/websocket-relay/websocket_relay/integration/relaytest"
)

type side string

const (
	fromClient  side = "client"
	fromBackend side = "backend"
	fromEither  side = ""
)

// violation is a way to break RFC 6455 and the reason the relay gives in
// its 1002 close frame. bytes builds the frames, masked as a client's
// when masked is set (and unmasked as a backend's otherwise).
type violation struct {
	name   string
	only   side
	bytes  func(masked bool) []byte
	reason string
}

// frames builds a violation's bytes from frames given as
// (fin, rsv, opcode, payload).
func frames(fs ...rt.Frame) func(bool) []byte {
	return func(masked bool) []byte {
		var out []byte
		for _, f := range fs {
			if f.Masked = masked; masked {
				f.Mask = rt.NewMask()
			}
			out = append(out, f.Bytes()...)
		}
		return out
	}
}

func fr(fin bool, rsv, op byte, payload []byte) rt.Frame {
	return rt.Frame{Fin: fin, Rsv: rsv, Op: op, Payload: payload}
}

// violations is the table of item 2 of the reliability issue; the engine
// holds the same rules at unit level in module/engine/violation_test.go.
func violations() []violation {
	long := make([]byte, 126)
	vs := []violation{
		{"unmasked client frame", fromClient, func(bool) []byte {
			return fr(true, 0, rt.OpText, []byte("plain")).Bytes()
		}, "unmasked frame from client"},
		{"masked backend frame", fromBackend, func(bool) []byte {
			f := fr(true, 0, rt.OpText, []byte("masked"))
			f.Masked, f.Mask = true, rt.NewMask()
			return f.Bytes()
		}, "masked frame from backend"},
		{"control frame over 125 bytes", fromEither, frames(fr(true, 0, rt.OpPing, long)), "control frame over 125 bytes"},
		{"fragmented control frame", fromEither, frames(fr(false, 0, rt.OpPing, []byte("p"))), "fragmented control frame"},
		{"reserved data opcode", fromEither, frames(fr(true, 0, 0x3, []byte("x"))), "reserved opcode 0x3"},
		{"reserved control opcode", fromEither, frames(fr(true, 0, 0xB, nil)), "reserved opcode 0xb"},
		{"RSV1 without extension", fromEither, frames(fr(true, 4, rt.OpText, []byte("x"))), "RSV bits set without a negotiated extension"},
		{"RSV2 without extension", fromEither, frames(fr(true, 2, rt.OpBinary, []byte("x"))), "RSV bits set without a negotiated extension"},
		{"RSV3 without extension", fromEither, frames(fr(true, 1, rt.OpText, []byte("x"))), "RSV bits set without a negotiated extension"},
		{"continuation with no message started", fromEither, frames(fr(true, 0, rt.OpContinuation, []byte("x"))), "continuation frame with no message started"},
		{"new data frame inside a fragmented message", fromEither,
			frames(fr(false, 0, rt.OpText, []byte("a")), fr(true, 0, rt.OpBinary, []byte("b"))), "new data frame inside a fragmented message"},
		{"1-byte close payload", fromEither, frames(fr(true, 0, rt.OpClose, []byte{0x03})), "close payload of 1 byte"},
		{"close reason not UTF-8", fromEither,
			frames(fr(true, 0, rt.OpClose, append(rt.ClosePayload(1000, "ok"), 0xff, 0xfe))), "close reason is not UTF-8"},
		{"64-bit length with the top bit set", fromEither, func(masked bool) []byte {
			return rt.Header(true, 0, rt.OpBinary, masked, rt.NewMask(), 1<<63)
		}, "invalid payload length"},
	}
	for _, code := range []uint16{0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000} {
		vs = append(vs, violation{fmt.Sprintf("close code %d", code), fromEither,
			frames(fr(true, 0, rt.OpClose, rt.ClosePayload(code, ""))), fmt.Sprintf("invalid close code %d", code)})
	}
	return vs
}

// violationRun is one violation sent by one side.
type violationRun struct {
	violation
	from side
}

// TestProtocolViolationsEndToEnd sends every violation through the real
// caddy, from a raw TCP client and from a raw backend: the offender gets
// close 1002 with the reason, the other leg 1001, caddy logs one
// "connection closed" line with cause "protocol error from <side>:
// <reason>", and nothing panics.
func TestProtocolViolationsEndToEnd(t *testing.T) {
	t.Parallel()
	f := startRelay(t, relayOpts{options: []string{"ping_interval 10s", "close_timeout 3s"}})
	var runs []violationRun
	for _, v := range violations() {
		for _, s := range []side{fromClient, fromBackend} {
			if v.only == fromEither || v.only == s {
				runs = append(runs, violationRun{v, s})
			}
		}
	}
	remotes := make([]string, len(runs))
	t.Run("cases", func(t *testing.T) {
		for i, run := range runs {
			t.Run(string(run.from)+"/"+run.name, func(t *testing.T) {
				t.Parallel()
				remotes[i] = runViolation(t, f, fmt.Sprintf("/violation/%d", i), run)
			})
		}
	})
	f.caddy.CheckNoPanic()
	for i, run := range runs {
		if remotes[i] == "" {
			continue
		}
		if n := len(f.caddy.Logs(rt.ConnClosedFrom(remotes[i]))); n != 1 {
			t.Errorf("%s from %s: %d \"connection closed\" lines, want exactly 1", run.name, run.from, n)
		}
	}
	t.Logf("%d violations (%d kinds) sent through caddy, each answered with 1002/1001 and one log line", len(runs), len(violations()))
}

// runViolation runs one violation and returns the client's address.
func runViolation(t *testing.T, f *fixture, path string, run violationRun) string {
	backendEnd := make(chan rt.Ending, 1)
	f.backend.Handle(path, func(bc *rt.BackendConn) {
		if err := bc.Accept(); err != nil {
			backendEnd <- rt.Ending{Err: err}
			return
		}
		if run.from == fromBackend {
			_ = bc.Write(run.bytes(false))
		}
		end := bc.ReadToClose(10 * time.Second)
		backendEnd <- end
		if end.Close != nil {
			_ = bc.Send(true, rt.OpClose, end.Close.Payload)
		}
		_, _ = rt.WaitEnd(bc.R, bc.Conn, 10*time.Second)
	})
	c := f.dial(t, path, rt.DialOptions{})
	if run.from == fromClient {
		if err := c.Write(run.bytes(true)); err != nil {
			t.Fatalf("sending the violation: %v", err)
		}
	}
	cEnd := c.ReadToClose(10 * time.Second)
	if cEnd.Close != nil {
		_ = c.Send(true, rt.OpClose, cEnd.Close.Payload)
	}
	if _, err := rt.WaitEnd(c.R, c.Conn, 10*time.Second); !rt.IsEnd(err) {
		t.Errorf("the relay did not close the client's connection: %v", err)
	}
	var bEnd rt.Ending
	select {
	case bEnd = <-backendEnd:
	case <-time.After(15 * time.Second):
		t.Fatal("the backend saw no end within 15s")
	}
	offender, other := cEnd, bEnd
	if run.from == fromBackend {
		offender, other = bEnd, cEnd
	}
	expectClose(t, "offender ("+string(run.from)+")", offender, 1002, run.reason)
	expectClose(t, "other leg", other, 1001, "protocol error")
	want := fmt.Sprintf("protocol error from %s: %s", run.from, run.reason)
	lines := f.caddy.WaitLogs(1, 10*time.Second, rt.ConnClosedFrom(c.LocalAddr()))
	if len(lines) == 0 {
		t.Fatalf("no \"connection closed\" line for %s", c.LocalAddr())
	}
	e := lines[0]
	if e.Str("cause") != want || e.Num("close_code") != 1002 || e.Str("closed_by") != "relay" || e.Str("close_reason") != run.reason {
		t.Errorf("log line %s\nwant cause %q, close_code 1002, closed_by relay, close_reason %q", e, want, run.reason)
	}
	return c.LocalAddr()
}

// expectClose checks that a leg ended with a close frame of code whose
// reason contains reason.
func expectClose(t *testing.T, who string, end rt.Ending, code int, reason string) {
	t.Helper()
	if end.Close == nil {
		t.Errorf("%s got no close frame (data frames %d, end %v), want %d", who, len(end.Data), end.Err, code)
		return
	}
	got, why := end.Close.CloseCode()
	if got != code || !strings.Contains(why, reason) {
		t.Errorf("%s got close %d %q, want %d with %q", who, got, why, code, reason)
	}
}
