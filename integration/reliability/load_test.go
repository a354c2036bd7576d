package reliability

import (
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rt "github.com/websocket-relay/websocket_relay/integration/relaytest"
)

// slowReader reads from r at most rate bytes per second.
type slowReader struct {
	r     io.Reader
	rate  int
	start time.Time
	n     int64
}

func (s *slowReader) Read(p []byte) (int, error) {
	if len(p) > 16<<10 {
		p = p[:16<<10]
	}
	due := s.start.Add(time.Duration(float64(s.n) / float64(s.rate) * float64(time.Second)))
	time.Sleep(time.Until(due))
	n, err := s.r.Read(p)
	s.n += int64(n)
	return n, err
}

// floodPayload is frame seq of the flood: seq, then the byte seq repeated.
func floodPayload(buf []byte, seq uint64) []byte {
	binary.BigEndian.PutUint64(buf, seq)
	for i := 8; i < len(buf); i++ {
		buf[i] = byte(seq)
	}
	return buf
}

// TestFloodBackpressure has a client write 64 KiB frames as fast as it can
// while the backend reads 4 MiB/s. TCP backpressure must throttle the
// client to the backend's pace, caddy's resident memory must stay within
// a ceiling, and every frame must arrive whole and in order.
func TestFloodBackpressure(t *testing.T) {
	t.Parallel()
	const (
		frameSize  = 64 << 10
		readRate   = 4 << 20
		duration   = 5 * time.Second
		rssCeiling = 48 << 20 // growth over the baseline
		inFlight   = 64 << 20 // socket buffers on the way, generously
	)
	f := startRelay(t, relayOpts{options: []string{"ping_interval 1s", "pong_timeout 1s"}})
	var read, frames atomic.Int64
	badFrame := make(chan string, 1)
	done := make(chan struct{})
	f.backend.Handle("/flood", func(bc *rt.BackendConn) {
		defer close(done)
		if bc.Accept() != nil {
			return
		}
		sr := &slowReader{r: bc.R, rate: readRate, start: time.Now()}
		want := make([]byte, frameSize)
		for seq := uint64(0); ; seq++ {
			fr, err := rt.ReadFrame(sr)
			if err != nil || fr.Op == rt.OpClose {
				return // the client hung up: mid-frame, or between frames (1001)
			}
			if !fr.Masked || fr.Op != rt.OpBinary || !fr.Fin || string(fr.Payload) != string(floodPayload(want, seq)) {
				select {
				case badFrame <- fmt.Sprintf("frame %d: op %#x fin %v masked %v, %d bytes, not the one sent", seq, fr.Op, fr.Fin, fr.Masked, len(fr.Payload)):
				default:
				}
				return
			}
			read.Add(int64(len(fr.Payload)))
			frames.Add(1)
		}
	})
	c := f.dial(t, "/flood", rt.DialOptions{})
	base, err := rt.RSS(f.caddy.PID())
	if err != nil {
		t.Fatal(err)
	}
	var written atomic.Int64
	stop := make(chan struct{})
	go func() {
		buf := make([]byte, frameSize)
		for seq := uint64(0); ; seq++ {
			select {
			case <-stop:
				return
			default:
			}
			if c.Send(true, rt.OpBinary, floodPayload(buf, seq)) != nil {
				return
			}
			written.Add(frameSize)
		}
	}()
	peak := base
	for end := time.Now().Add(duration); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if rss, err := rt.RSS(f.caddy.PID()); err == nil && rss > peak {
			peak = rss
		}
	}
	close(stop)
	w, r := written.Load(), read.Load()
	c.Close()
	<-done
	select {
	case msg := <-badFrame:
		t.Errorf("backend: %s", msg)
	default:
	}
	mib := func(n int64) float64 { return float64(n) / (1 << 20) }
	t.Logf("in %v the client wrote %.1f MiB and the backend read %.1f MiB (%d frames, at most %.1f MiB/s); caddy RSS %.1f MiB at start, peak %.1f MiB (+%.1f MiB, ceiling +%d MiB)",
		duration, mib(w), mib(r), frames.Load(), float64(readRate)/(1<<20), mib(base), mib(peak), mib(peak-base), rssCeiling>>20)
	if peak-base > rssCeiling {
		t.Errorf("caddy's RSS grew by %.1f MiB under the flood, ceiling %d MiB", mib(peak-base), rssCeiling>>20)
	}
	if w-r > inFlight {
		t.Errorf("the client got %.1f MiB ahead of the backend: the flood was not throttled", mib(w-r))
	}
	// A loaded machine may starve the slow reader itself; this only checks
	// that the relay kept feeding it.
	if r < readRate*int64(duration/time.Second)/8 {
		t.Errorf("the backend read only %.1f MiB in %v: the relay did not keep it fed", mib(r), duration)
	}
	f.caddy.CheckNoPanic()
}

// vanishKinds are the ways a client disappears without a close frame.
var vanishKinds = []string{"FIN", "RST", "silent", "silent"}

// TestVanishingClients connects 1,000 clients, then has them all vanish at
// once: a quarter close their sockets, a quarter reset them, half stop
// answering (and reading) with the socket left open. The relay must notice
// every one (the silent ones by the missing pong) and send the backend
// 1001 for each, log a line for each, and give back its goroutines.
func TestVanishingClients(t *testing.T) {
	t.Parallel()
	const n = 1000
	f := startRelay(t, relayOpts{options: []string{"ping_interval 1s", "pong_timeout 1s", "close_timeout 2s"}})
	type record struct {
		client int
		code   int
		reason string
		at     time.Time
	}
	records := make(chan record, n)
	f.backend.Handle("/vanish", func(bc *rt.BackendConn) {
		if bc.Accept() != nil {
			return
		}
		first, err := bc.ReadFrame(30 * time.Second)
		if err != nil || bc.Send(true, first.Op, first.Payload) != nil {
			return
		}
		idx, _ := strconv.Atoi(strings.TrimPrefix(string(first.Payload), "client "))
		end := bc.ReadToClose(60 * time.Second)
		rec := record{client: idx, code: -1, at: time.Now()}
		if end.Close != nil {
			rec.code, rec.reason = end.Close.CloseCode()
			_ = bc.Send(true, rt.OpClose, end.Close.Payload)
		}
		records <- rec
	})
	before, err := f.caddy.Figures()
	if err != nil {
		t.Fatal(err)
	}
	clients := dialMany(t, f, n, "/vanish")
	t0 := time.Now()
	for i, c := range clients {
		switch vanishKinds[i%len(vanishKinds)] {
		case "FIN":
			c.Close()
		case "RST":
			c.Reset()
		}
	}
	worst := map[string]time.Duration{}
	counts := map[string]int{}
	for i := 0; i < n; i++ {
		select {
		case rec := <-records:
			kind := vanishKinds[rec.client%len(vanishKinds)]
			if rec.code != 1001 {
				t.Errorf("client %d (%s): backend got close %d %q, want 1001", rec.client, kind, rec.code, rec.reason)
			}
			counts[kind]++
			worst[kind] = max(worst[kind], rec.at.Sub(t0))
		case <-time.After(30 * time.Second):
			t.Fatalf("only %d of %d vanished clients detected within 30s", i, n)
		}
	}
	if worst["FIN"] > 3*time.Second || worst["RST"] > 3*time.Second || worst["silent"] > 6*time.Second {
		t.Errorf("detection too slow: %v", worst)
	}
	lines := f.caddy.WaitLogs(n, 20*time.Second, rt.LogEntry.IsConnClosed)
	byCause := map[string]int{}
	for _, e := range lines {
		byCause[e.Str("cause")]++
		if e.Num("close_code") != 1001 {
			t.Errorf("log line with close_code %v, want 1001: %s", e.Num("close_code"), e)
		}
	}
	if len(lines) != n {
		t.Errorf("%d \"connection closed\" lines, want %d", len(lines), n)
	}
	t.Logf("%d clients vanished (%v); backend got 1001 for each; slowest detection %v; log causes %v", n, counts, worst, byCause)
	for _, c := range clients {
		c.Close()
	}
	after := waitSettled(t, f.caddy, before, 5, 3, 0, 0, 20*time.Second)
	t.Logf("caddy before: %v; after: %v", before, after)
	f.caddy.CheckNoPanic()
}

// dialMany opens n clients to path from the spread source addresses, each
// sending "client <i>" and reading its echo.
func dialMany(t *testing.T, f *fixture, n int, path string) []*rt.Client {
	t.Helper()
	clients := make([]*rt.Client, n)
	errs := inParallel(n, func(i int) error {
		c, err := rt.Dial(f.caddy.HTTPAddr(), path, rt.DialOptions{LocalIP: sourceIPs[i%len(sourceIPs)]})
		if err == nil {
			err = roundTrip(c, []byte(fmt.Sprintf("client %d", i)), 10*time.Second)
		}
		if err != nil {
			return fmt.Errorf("client %d: %w", i, err)
		}
		clients[i] = c
		return nil
	})
	t.Cleanup(func() {
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
	})
	for _, err := range errs {
		t.Fatal(err)
	}
	return clients
}

// inParallel calls do for 0 to n-1 on 32 goroutines, so that many
// connections open in a few seconds, and returns the errors it returned.
func inParallel(n int, do func(i int) error) []error {
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Go(func() {
			for i := w; i < n; i += 32 {
				if err := do(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return errs
}
