package reliability

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gws "github.com/gorilla/websocket"

	rt "github.com/websocket-relay/websocket_relay/integration/relaytest"
)

// pings are the pings one peer sent and the pongs it got back for them.
type pings struct {
	mu      sync.Mutex
	prefix  string
	n       int
	waiting map[string]bool
	pongs   int
	strays  int // pongs that answer no ping of ours
}

func newPings(prefix string) *pings { return &pings{prefix: prefix, waiting: make(map[string]bool)} }

// next returns the payload of a new ping.
func (p *pings) next() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	s := p.prefix + strconv.Itoa(p.n)
	p.waiting[s] = true
	return s
}

func (p *pings) pong(payload string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.waiting[payload] {
		delete(p.waiting, payload)
		p.pongs++
	} else {
		p.strays++
	}
}

// soakConn is one soak connection, seen from both ends.
type soakConn struct {
	id     int
	raw    bool // the client writes raw frames; else it is gorilla's
	bursty bool // the client falls silent now and then, so the relay pings it
	up     stream
	down   stream
	end    time.Time
	pace   time.Duration

	// Client end.
	local      string // its address, as the relay's log line gives it
	cRecv      receiver
	cSent      int64
	cPings     *pings
	relayPings int // pings from the relay that the client got
	// lastPingAt (UnixNano) is when the client read the last of them.
	lastPingAt atomic.Int64
	// relayPongs counts the pongs to them that the client wrote, and
	// lastPongAt is when the last of those writes returned.
	relayPongs, lastPongAt atomic.Int64
	backPings              int // pings from the backend that the client answered
	cClose                 int
	// Backend end.
	bRecv      receiver
	bSent      int64
	bPings     *pings
	clientPngs int // pings from the client that the backend answered
	bClose     int
	bDone      chan struct{}
	closing    atomic.Bool // the client sent its close frame

	mu   sync.Mutex
	errs []string
}

// pingGot records a relay ping that the client read.
func (sc *soakConn) pingGot() {
	sc.relayPings++
	sc.lastPingAt.Store(time.Now().UnixNano())
}

// pongWritten records a pong to a relay ping that the client wrote.
func (sc *soakConn) pongWritten() {
	sc.relayPongs.Add(1)
	sc.lastPongAt.Store(time.Now().UnixNano())
}

// relayPingsSeen says how many relay pings the client read and answered,
// and when it read the last and wrote the last answer.
func (sc *soakConn) relayPingsSeen() string {
	at := func(ns int64) string {
		if ns == 0 {
			return "never"
		}
		return time.Unix(0, ns).UTC().Format("15:04:05.000")
	}
	return fmt.Sprintf("got %d relay pings, the last at %s, and wrote %d pongs to them, the last at %s",
		sc.relayPings, at(sc.lastPingAt.Load()), sc.relayPongs.Load(), at(sc.lastPongAt.Load()))
}

func (sc *soakConn) fail(format string, args ...any) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.errs = append(sc.errs, fmt.Sprintf(format, args...))
}

// sendStream sends stream s until sc.end with send, pausing between
// messages and pinging now and then, then sends the end message. It
// returns how many messages went out.
func (sc *soakConn) sendStream(s stream, rng *rand.Rand, bursty bool, send func(text bool, p []byte) error, ping func() error) (uint64, error) {
	var seq uint64
	for ; time.Now().Before(sc.end); seq++ {
		text, p := s.message(seq)
		if err := send(text, p); err != nil {
			return seq, fmt.Errorf("sending message %d: %w", seq, err)
		}
		if rng.IntN(10) == 0 {
			if err := ping(); err != nil {
				return seq, fmt.Errorf("sending a ping: %w", err)
			}
		}
		pause := time.Duration(rng.ExpFloat64() * float64(sc.pace))
		if bursty && rng.IntN(15) == 0 {
			pause = 1500 * time.Millisecond // longer than ping_interval
		}
		time.Sleep(min(pause, time.Until(sc.end)))
	}
	if err := send(true, endMessage(seq)); err != nil {
		return seq, fmt.Errorf("sending the end message: %w", err)
	}
	return seq + 1, nil
}

// runClient runs the client end of sc through the relay (ws or wss, as
// s.leg says), with gorilla/websocket or with raw frames.
func (s *soak) runClient(sc *soakConn, localIP string) {
	if sc.raw {
		s.runRawClient(sc, localIP)
	} else {
		s.runGorillaClient(sc, localIP)
	}
}

func (s *soak) runGorillaClient(sc *soakConn, localIP string) {
	rng := rand.New(rand.NewPCG(uint64(sc.id), 1))
	d := gws.Dialer{
		TLSClientConfig:  s.tls,
		HandshakeTimeout: 30 * time.Second,
		WriteBufferSize:  256 + rng.IntN(16<<10),
		NetDialContext:   dialFrom(localIP, s.addr),
	}
	conn, _, err := d.Dial(s.url(fmt.Sprintf("/soak?id=%d", sc.id)), nil)
	if err != nil {
		sc.fail("client dial: %v", err)
		return
	}
	defer conn.Close()
	sc.local = conn.LocalAddr().String()
	conn.SetPingHandler(func(p string) error {
		relay := strings.HasPrefix(p, "wsrelay:")
		if relay {
			sc.pingGot()
		} else {
			sc.backPings++
		}
		err := conn.WriteControl(gws.PongMessage, []byte(p), time.Now().Add(10*time.Second))
		if relay && err == nil {
			sc.pongWritten()
		}
		return ignoreClosed(err)
	})
	conn.SetPongHandler(func(p string) error { sc.cPings.pong(p); return nil })
	gotEnd := make(chan struct{})
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc.cClose = readGorilla(conn, &sc.cRecv, func() { close(gotEnd) })
	}()
	n, err := sc.sendStream(sc.up, rng, sc.bursty, func(text bool, p []byte) error {
		return writeChunked(conn, rng, text, p)
	}, func() error {
		return conn.WriteControl(gws.PingMessage, []byte(sc.cPings.next()), time.Now().Add(10*time.Second))
	})
	sc.cSent = int64(n)
	if err != nil {
		sc.fail("client: %v", err)
		return
	}
	if !waitFor(gotEnd, readDone) {
		return
	}
	_ = conn.WriteControl(gws.CloseMessage, gws.FormatCloseMessage(1000, "soak done"), time.Now().Add(10*time.Second))
	waitFor(readDone, nil)
}

// dialFrom returns a dial function for gorilla's Dialer that connects to
// addr, whatever the URL says, from localIP.
func dialFrom(localIP, addr string) func(ctx context.Context, network, _ string) (net.Conn, error) {
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}}
		return nd.DialContext(ctx, network, addr)
	}
}

// waitFor waits for ch (up to a minute) unless stop closes first.
func waitFor(ch, stop <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	case <-stop:
		return false
	case <-time.After(time.Minute):
		return false
	}
}

func (s *soak) runRawClient(sc *soakConn, localIP string) {
	rng := rand.New(rand.NewPCG(uint64(sc.id), 1))
	_, port, _ := net.SplitHostPort(s.addr)
	c, err := rt.Dial(s.addr, fmt.Sprintf("/soak?id=%d", sc.id), rt.DialOptions{
		TLS: s.tls, LocalIP: localIP, Host: "localhost:" + port, Timeout: 30 * time.Second})
	if err != nil {
		sc.fail("raw client dial: %v", err)
		return
	}
	defer c.Close()
	sc.local = c.Conn.LocalAddr().String()
	gotEnd := make(chan struct{})
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		s.readRaw(sc, c, gotEnd)
	}()
	ping := func() error { return c.Send(true, rt.OpPing, []byte(sc.cPings.next())) }
	n, err := sc.sendStream(sc.up, rng, sc.bursty, func(text bool, p []byte) error {
		return sendFragmented(c, rng, text, p, ping)
	}, ping)
	sc.cSent = int64(n)
	if err != nil {
		sc.fail("raw client: %v", err)
		return
	}
	if !waitFor(gotEnd, readDone) {
		return
	}
	sc.closing.Store(true)
	if err := c.Send(true, rt.OpClose, rt.ClosePayload(1000, "soak done")); err != nil {
		sc.fail("raw client: sending close: %v", err)
	}
	waitFor(readDone, nil)
}

// sendFragmented sends one message as 1 to 6 frames split at random
// points (some of them empty), with a ping between fragments now and then.
func sendFragmented(c *rt.Client, rng *rand.Rand, text bool, p []byte, ping func() error) error {
	op := rt.OpBinary
	if text {
		op = rt.OpText
	}
	parts := 1 + rng.IntN(6)
	for i := 0; i < parts; i++ {
		n := len(p)
		if i < parts-1 {
			n = rng.IntN(len(p) + 1)
		}
		if err := c.Send(i == parts-1, op, p[:n]); err != nil {
			return err
		}
		p, op = p[n:], rt.OpContinuation
		if i < parts-1 && rng.IntN(5) == 0 {
			if err := ping(); err != nil {
				return err
			}
		}
	}
	return nil
}

// readRaw reads the raw client's frames: it reassembles messages, answers
// pings and records pongs and the close frame.
func (s *soak) readRaw(sc *soakConn, c *rt.Client, gotEnd chan struct{}) {
	var msg []byte
	var text, inMessage bool
	for {
		f, err := c.ReadFrame(time.Until(sc.end) + 2*time.Minute)
		if err != nil {
			sc.cRecv.fail(fmt.Errorf("raw client reading: %w", err))
			return
		}
		switch {
		case f.Op == rt.OpPing:
			if strings.HasPrefix(string(f.Payload), "wsrelay:") {
				sc.pingGot()
			} else {
				sc.backPings++
			}
			// After its close frame a client sends nothing more; the relay,
			// which stops reading it then, may have closed the socket.
			if sc.closing.Load() {
				break
			}
			err := c.Send(true, rt.OpPong, f.Payload)
			if err != nil && !sc.closing.Load() {
				sc.cRecv.fail(fmt.Errorf("raw client answering a ping: %w", err))
			}
			if err == nil && strings.HasPrefix(string(f.Payload), "wsrelay:") {
				sc.pongWritten()
			}
		case f.Op == rt.OpPong:
			sc.cPings.pong(string(f.Payload))
		case f.Op == rt.OpClose:
			sc.cClose, _ = f.CloseCode()
			return
		case f.Masked || f.Rsv != 0:
			sc.cRecv.fail(fmt.Errorf("raw client got a frame with mask %v rsv %d", f.Masked, f.Rsv))
			return
		case f.Op == rt.OpContinuation && inMessage, f.Op != rt.OpContinuation && !inMessage:
			if !inMessage {
				msg, text = msg[:0], f.Op == rt.OpText
			}
			msg = append(msg, f.Payload...)
			inMessage = !f.Fin
			if f.Fin && sc.cRecv.take(text, msg) {
				close(gotEnd)
			}
		default:
			sc.cRecv.fail(fmt.Errorf("raw client got opcode %#x (in a message: %v)", f.Op, inMessage))
			return
		}
	}
}
