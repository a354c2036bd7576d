package reliability

import (
	"bytes"
	"fmt"
	"net"
	"testing"
	"time"

	rt "github.com/websocket-relay/websocket_relay/integration/relaytest"
)

// peerConn is what the slow-peer test needs of either end.
type peerConn interface {
	Send(fin bool, op byte, payload []byte) error
	ReadFrame(d time.Duration) (rt.Frame, error)
}

const (
	slowFrames    = 150 // 9 MiB: more than the socket buffers on the way hold
	slowFrameSize = 60 << 10
	slowGap       = 20 * time.Millisecond
	slowStopped   = 5 * time.Second
)

func slowPayload(i int) []byte { return bytes.Repeat([]byte{byte(i)}, slowFrameSize) }

// TestSlowReaderBehindPausingSender: one end sends a 60 KiB frame every
// 20 ms (pausing between frames, as chatty peers do) while the other
// stops reading for 5 s. The relay blocks writing to the slow reader (TCP
// backpressure) for seconds with a frame in hand, and between frames the
// sender's leg is idle. None of that is a failure: when the reader reads
// again, every frame must arrive, in order, with no close frame before
// them.
//
// (This catches a relay that leaves the read deadline of an idle leg's
// wait in force once a frame arrived, and, after the blocked write, takes
// that expired deadline for the sender going away: 1014 to the client and
// the backend's connection closed under it, or 1001 to the backend.)
func TestSlowReaderBehindPausingSender(t *testing.T) {
	t.Parallel()
	f := startRelay(t, relayOpts{options: []string{"ping_interval 30s", "write_timeout 20s"}})
	for _, tc := range []struct {
		name         string
		backendSends bool
	}{
		{name: "backend pauses, client reads slowly", backendSends: true},
		{name: "client pauses, backend reads slowly", backendSends: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := fmt.Sprintf("/slow/%v", tc.backendSends)
			backendErr := make(chan error, 1)
			f.backend.Handle(path, func(bc *rt.BackendConn) {
				if bc.Accept() != nil {
					return
				}
				if tc.backendSends {
					backendErr <- sendPausing(bc)
				} else {
					_ = bc.Conn.(*net.TCPConn).SetReadBuffer(16 << 10)
					backendErr <- receiveSlowly(bc)
				}
			})
			c := f.dial(t, path, rt.DialOptions{ReadBuffer: 16 << 10})
			var err error
			if tc.backendSends {
				err = receiveSlowly(c)
			} else {
				err = sendPausing(c)
			}
			if err != nil {
				t.Error(err)
			}
			if err := <-backendErr; err != nil {
				t.Error(err)
			}
			expectLog(t, f, c, 1000)
		})
	}
}

// sendPausing sends "first", then the frames with a pause before each,
// then waits for the receiver's close and answers it.
func sendPausing(pc peerConn) error {
	err := pc.Send(true, rt.OpText, []byte("first"))
	for i := 0; i < slowFrames && err == nil; i++ {
		time.Sleep(slowGap)
		err = pc.Send(true, rt.OpBinary, slowPayload(i))
	}
	if err != nil {
		return fmt.Errorf("sender: %w", err)
	}
	for {
		fr, err := pc.ReadFrame(60 * time.Second)
		if err != nil {
			return fmt.Errorf("sender waiting for the close: %w", err)
		}
		if fr.Op == rt.OpClose {
			return pc.Send(true, rt.OpClose, fr.Payload)
		}
	}
}

// receiveSlowly reads "first", stops reading for a while, then reads and
// checks every frame and closes with 1000.
func receiveSlowly(pc peerConn) error {
	if first, err := pc.ReadFrame(10 * time.Second); err != nil || string(first.Payload) != "first" {
		return fmt.Errorf("receiver: first frame %q, %v", first.Payload, err)
	}
	time.Sleep(slowStopped)
	for i := 0; i < slowFrames; i++ {
		fr, err := pc.ReadFrame(20 * time.Second)
		if err != nil {
			return fmt.Errorf("receiver: frame %d of %d: %w", i, slowFrames, err)
		}
		if fr.Op == rt.OpClose {
			code, reason := fr.CloseCode()
			return fmt.Errorf("receiver: after %d of %d frames, close %d %q though the sender is still there", i, slowFrames, code, reason)
		}
		if fr.Op != rt.OpBinary || !bytes.Equal(fr.Payload, slowPayload(i)) {
			return fmt.Errorf("receiver: frame %d is a %#x frame of %d bytes, not the one sent", i, fr.Op, len(fr.Payload))
		}
	}
	if err := pc.Send(true, rt.OpClose, rt.ClosePayload(1000, "done")); err != nil {
		return err
	}
	for {
		fr, err := pc.ReadFrame(20 * time.Second)
		if err != nil {
			return fmt.Errorf("receiver waiting for the close answer: %w", err)
		}
		if fr.Op == rt.OpClose {
			return nil
		}
	}
}
