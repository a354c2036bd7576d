package engine

import (
	"crypto/tls"
	"fmt"
	"math/rand"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// TestChaosEveryRelayEnds runs many relays over loopback TCP whose peers
// misbehave at random: they send frames of every size class, stop
// reading, close, reset or break the protocol in the middle of it all, at
// random moments, on both legs at once. Whatever happens, every relay
// must end within its bounds (no frame can hold it past the write, stall,
// ping and close timeouts) and leave no goroutine behind. A relay stuck on
// a lock shows here as a dump of every goroutine's stack.
func TestChaosEveryRelayEnds(t *testing.T) {
	if _, err := pairListener(); err != nil {
		t.Fatal(err)
	}
	thePoller() // the process's one poller goroutine, started by the first parked leg
	base := runtime.NumGoroutine()
	runs := 320
	if testing.Short() {
		runs = 64
	}
	var (
		wg     sync.WaitGroup
		sem    = make(chan struct{}, 16)
		dumped sync.Once
	)
	for seed := range runs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := chaosRun(int64(seed)); err != nil {
				t.Errorf("seed %d: %v", seed, err)
				dumped.Do(func() {
					buf := make([]byte, 1<<20)
					t.Logf("goroutines:\n%s", buf[:runtime.Stack(buf, true)])
				})
			}
		}()
	}
	wg.Wait()
	waitGoroutines(t, base, 5*time.Second)
}

// chaosConfig has short timeouts, so that every way a relay can end comes
// within a second.
func chaosConfig(rng *rand.Rand) Config {
	return Config{
		PingInterval: 50 * time.Millisecond,
		PongTimeout:  100 * time.Millisecond,
		WriteTimeout: 200 * time.Millisecond,
		CloseTimeout: 300 * time.Millisecond,
		StallTimeout: 300 * time.Millisecond,
		Loops:        rng.Intn(2) == 0,
	}
}

// chaosEnd is what a misbehaving peer does once it has sent its frames.
type chaosEnd int

const (
	endNothing   chaosEnd = iota // go on as it is
	endClose                     // a close frame, then read on
	endFIN                       // close the connection
	endReset                     // close it with a reset (SO_LINGER 0)
	endMidFrame                  // start a 1 MiB frame, send 1,000 bytes of it, close
	endViolation                 // a frame with a reserved opcode
	endStopRead                  // stop reading
	endCount
)

// chaosPeer is one side's plan.
type chaosPeer struct {
	client   bool
	reads    bool
	frames   [][]byte // wire bytes, masked for a client
	pauses   []time.Duration
	end      chaosEnd
	endAfter time.Duration
}

func newChaosPeer(rng *rand.Rand, client bool) *chaosPeer {
	p := &chaosPeer{client: client, reads: rng.Intn(4) != 0,
		end: chaosEnd(rng.Intn(int(endCount))), endAfter: time.Duration(rng.Intn(200)) * time.Millisecond}
	sizes := []int{0, 10, 125, 1000, 70_000, 1 << 20}
	for range rng.Intn(6) {
		f := ws.NewBinaryFrame(payloadOf(sizes[rng.Intn(len(sizes))]))
		if client {
			f = ws.MaskFrame(f)
		}
		var w sliceWriter
		w.buf = make([]byte, 0, ws.HeaderSize(f.Header)+len(f.Payload))
		_ = ws.WriteFrame(&w, f)
		p.frames = append(p.frames, w.buf)
		p.pauses = append(p.pauses, time.Duration(rng.Intn(20))*time.Millisecond)
	}
	return p
}

// run plays the plan on conn until the test closes conn.
func (p *chaosPeer) run(conn net.Conn, rng *rand.Rand, wg *sync.WaitGroup) {
	stopRead := make(chan struct{})
	if p.reads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 32<<10)
			for {
				select {
				case <-stopRead:
					return
				default:
				}
				if _, err := conn.Read(buf); err != nil {
					return
				}
			}
		}()
	}
	chunks := rng.Intn(3) + 1
	wg.Add(1)
	go func() {
		defer wg.Done()
		endAt := time.Now().Add(p.endAfter)
		write := func(b []byte) bool {
			_ = conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
			_, err := conn.Write(b)
			return err == nil
		}
		for i, f := range p.frames {
			step := len(f)/chunks + 1
			for off := 0; off < len(f); off += step {
				if !write(f[off:min(off+step, len(f))]) {
					return
				}
			}
			time.Sleep(p.pauses[i])
		}
		time.Sleep(time.Until(endAt))
		mask := func(f ws.Frame) ws.Frame {
			if p.client {
				return ws.MaskFrame(f)
			}
			return f
		}
		switch p.end {
		case endClose:
			f := mask(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye")))
			var w sliceWriter
			w.buf = make([]byte, 0, 64)
			_ = ws.WriteFrame(&w, f)
			write(w.buf)
		case endFIN:
			conn.Close()
		case endReset:
			tcp := conn
			if tc, ok := conn.(*tls.Conn); ok {
				tcp = tc.NetConn()
			}
			_ = tcp.(*net.TCPConn).SetLinger(0)
			tcp.Close()
		case endMidFrame:
			var w sliceWriter
			w.buf = make([]byte, 0, ws.MaxHeaderSize)
			_ = ws.WriteHeader(&w, ws.Header{Fin: true, OpCode: ws.OpBinary, Length: 1 << 20, Masked: p.client})
			if write(w.buf) && write(make([]byte, 1000)) {
				conn.Close()
			}
		case endViolation:
			write(rawFrame(0x83, p.client, nil))
		case endStopRead:
			close(stopRead)
		}
	}()
}

// chaosRun runs one relay between two peers planned from seed, and
// reports a relay that did not end in time.
func chaosRun(seed int64) error {
	rng := rand.New(rand.NewSource(seed))
	cfg := chaosConfig(rng)
	client, backend := newChaosPeer(rng, true), newChaosPeer(rng, false)
	cTest, cRelay, err := dialPair(&net.Dialer{})
	if err != nil {
		return err
	}
	bTest, bRelay, err := dialPair(&net.Dialer{})
	if err != nil {
		cTest.Close()
		cRelay.Close()
		return err
	}
	// A third of the legs are TLS (wss): the relay is the client's TLS
	// server and the backend's TLS client.
	clientTLS, backendTLS := rng.Intn(3) == 0, rng.Intn(3) == 0
	if clientTLS {
		cRelay, cTest, err = chaosTLS(cRelay, cTest)
	}
	if err == nil && backendTLS {
		bTest, bRelay, err = chaosTLS(bTest, bRelay)
	}
	if err != nil {
		for _, c := range []net.Conn{cTest, cRelay, bTest, bRelay} {
			c.Close()
		}
		return err
	}
	s := New(Leg{Conn: cRelay}, Leg{Conn: bRelay}, cfg)
	result := make(chan Result, 1)
	go func() { result <- s.Run() }()
	var peers sync.WaitGroup
	client.run(cTest, rng, &peers)
	backend.run(bTest, rng, &peers)
	// The longest a relay may take: a peer's plan (its frames, up to 200
	// ms, then its end) and then the slowest ending, a write timeout
	// followed by a close timeout, or a ping timeout followed by one.
	limit := 200*time.Millisecond + 2*time.Second + cfg.WriteTimeout + cfg.StallTimeout +
		cfg.PingInterval + cfg.PongTimeout + cfg.CloseTimeout + time.Second
	var runErr error
	select {
	case <-result:
	case <-time.After(limit):
		runErr = fmt.Errorf("the relay did not end within %v (client %+v, backend %+v, loops %v, TLS client %v backend %v)",
			limit, chaosSummary(client), chaosSummary(backend), cfg.Loops, clientTLS, backendTLS)
	}
	cTest.Close()
	bTest.Close()
	peers.Wait()
	return runErr
}

// chaosSummary describes a plan in a failure message.
func chaosSummary(p *chaosPeer) string {
	return fmt.Sprintf("{reads:%v frames:%d end:%d after:%v}", p.reads, len(p.frames), p.end, p.endAfter)
}

// chaosTLS puts TLS on a loopback pair, server on the first end, and
// finishes the handshake.
func chaosTLS(serverEnd, clientEnd net.Conn) (*tls.Conn, *tls.Conn, error) {
	server, client := tls.Server(serverEnd, serverTLS()), tls.Client(clientEnd, clientTLS())
	return server, client, handshakeTLS(server, client)
}
