//go:build linux

package engine

import (
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// TestPingTimeoutQueues: a client cut for a ping timeout leaves in the
// result what its socket held. One whose system took everything, the
// ping included, leaves nothing unread and nothing unacknowledged; one
// that stopped reading behind a tiny receive window leaves the relay's
// last bytes unacknowledged. Over net.Pipe the system cannot say.
func TestPingTimeoutQueues(t *testing.T) {
	type queuesCase struct {
		name      string
		transport string
		stalled   bool // the client stops reading behind a tiny window
	}
	cases := []queuesCase{{"pipe", "pipe", false}, {"tcp", "tcp", false}, {"tcp stalled", "tcp", true}}
	for _, tr := range loopTransports {
		cases = append(cases, queuesCase{tr, tr, false}, queuesCase{tr + " stalled", tr, true})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := quickConfig()
			cfg.PingInterval = 100 * time.Millisecond
			cfg.PongTimeout = 200 * time.Millisecond
			var h *harness
			if tc.stalled {
				cfg.Loops = tc.transport == "loop"
				h = startOn(t, cfg, false, tinyWindowFirst(t))
				if cfg.Loops {
					waitLoop(t, h.session)
				}
				for range 3 { // far more than the client's window takes
					h.backend.send(ws.NewBinaryFrame(payloadOf(4096)))
				}
			} else {
				h = startOver(t, tc.transport, cfg)
			}
			h.backend.expectClose(CodeGoingAway, 3*time.Second)
			h.backend.send(closeFrame(1001, ""))
			r := h.wait(t, 3*time.Second)
			if r.Cause != "ping timeout" {
				t.Fatalf("result %+v, want a ping timeout", r)
			}
			q := r.ClientQueues
			if q == nil {
				t.Fatalf("no client queues in the result of a ping timeout: %+v", r)
			}
			switch {
			case tc.transport == "pipe":
				if *q != (SocketQueues{-1, -1, -1}) {
					t.Errorf("queues %+v over net.Pipe, want -1 for all", *q)
				}
			case tc.stalled:
				if q.Unread != 0 || q.Unacked < 4096 || q.TLSHeld != -1 {
					t.Errorf("queues %+v for a client that stopped reading, want none unread and at least 4096 unacknowledged", *q)
				}
			default:
				if *q != (SocketQueues{TLSHeld: -1}) {
					t.Errorf("queues %+v for a client whose system took everything, want none", *q)
				}
			}
		})
	}
}

// TestQueuesOnlyForPingTimeout: a relay that ends any other way has no
// client queues in its result.
func TestQueuesOnlyForPingTimeout(t *testing.T) {
	cfg := quickConfig()
	cfg.PingInterval = 100 * time.Millisecond
	cfg.PongTimeout = 5 * time.Second
	h := startOver(t, "tcp", cfg)
	closeHandshake(t, h.client, h.backend)
	if r := h.wait(t, 3*time.Second); r.ClientQueues != nil {
		t.Fatalf("result %+v has client queues, want none after a close handshake", r)
	}
	// A ping timeout declared after another ending won (the timer fired
	// while the handshake ended the relay) does not put its queues on
	// that ending's result.
	h.session.mu.Lock()
	h.session.timeoutQueues = &SocketQueues{Unread: 1}
	h.session.mu.Unlock()
	if r := h.session.outcome(); r.ClientQueues != nil {
		t.Fatalf("result %+v has the queues of a ping timeout that did not end the relay", r)
	}
}

// tinyWindowFirst returns a pair maker for startOn whose first pair (the
// client's) has a test end with a receive buffer of a few KiB, set before
// it connects so that the window is small from the start, and a relay end
// with a large send buffer, so that the relay's writes finish while the
// client's window holds back most of the bytes. Later pairs are plain.
func tinyWindowFirst(t *testing.T) func() (net.Conn, net.Conn) {
	first := true
	return func() (net.Conn, net.Conn) {
		if !first {
			return loopbackPair(t)
		}
		first = false
		d := &net.Dialer{Control: func(_, _ string, raw syscall.RawConn) error {
			var serr error
			err := raw.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048)
			})
			if err == nil {
				err = serr
			}
			return err
		}}
		c, r := loopbackPairWith(t, d)
		if err := r.(*net.TCPConn).SetWriteBuffer(1 << 20); err != nil {
			t.Fatal(err)
		}
		return c, r
	}
}

// TestPingTimeoutQueuesTLS: over TLS the result also says what crypto/tls
// held for the client leg, parked when the timeout came: nothing, since a
// leg parks only when crypto/tls holds no bytes.
func TestPingTimeoutQueuesTLS(t *testing.T) {
	if thePoller() == nil || theTLSLayout() == nil {
		t.Skip("TLS legs do not park here")
	}
	shortLinger(t, 20*time.Millisecond)
	cfg := quickConfig()
	cfg.PingInterval = 100 * time.Millisecond
	cfg.PongTimeout = 200 * time.Millisecond
	h, _ := startTLS(t, cfg)
	h.backend.expectClose(CodeGoingAway, 3*time.Second)
	h.backend.send(closeFrame(1001, ""))
	r := h.wait(t, 3*time.Second)
	if r.Cause != "ping timeout" || r.ClientQueues == nil {
		t.Fatalf("result %+v, want a ping timeout with the client queues", r)
	}
	if q := *r.ClientQueues; q != (SocketQueues{}) {
		t.Errorf("queues %+v for a parked TLS client that took everything and sent nothing, want none anywhere", q)
	}
}
