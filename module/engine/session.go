package engine

import (
	"bytes"
	"crypto/rand"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/websocket-relay/websocket_relay/module/keepalive"
)

// Side names a leg of a relayed connection.
type Side uint8

const (
	Client Side = iota
	Backend
)

// String returns "client" or "backend".
func (s Side) String() string {
	if s == Client {
		return "client"
	}
	return "backend"
}

func (s Side) other() Side { return 1 - s }

// Leg is one finished-handshake connection handed to the engine.
//
// With Config.Loops the engine may close Conn long before the relay ends,
// as it moves the socket beneath onto an event loop (which keeps a
// duplicate of it): logic that a wrapper runs on Close then runs at that
// point.
type Leg struct {
	Conn net.Conn
	// Prefix holds bytes of the WebSocket stream that were already read
	// from Conn along with the handshake; they are relayed first.
	Prefix []byte
}

// Config tunes one relay. Zero durations turn the matching feature off.
type Config struct {
	// PingInterval: ping a client that sent nothing for this long (on
	// the grid of Session.tickAt, so up to 1/16 of it, at most 250 ms,
	// later).
	PingInterval time.Duration
	// PongTimeout: a client that sends nothing for this long after a
	// relay ping was written is dead.
	PongTimeout time.Duration
	// WriteTimeout bounds each write to the client.
	WriteTimeout time.Duration
	// CloseTimeout bounds the wait for the close handshake to finish
	// once either side started it or went away.
	CloseTimeout time.Duration
	// AllowedRSV holds the RSV bits (as in ws.Header.Rsv) that the
	// extensions negotiated between client and backend define for data
	// frames, e.g. RSV1 for permessage-deflate.
	AllowedRSV byte
	// StallTimeout bounds each wait for the rest of a frame once its
	// first byte arrived; a leg that stalls longer mid-frame is dropped.
	StallTimeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Loops lets a relay whose legs are both plain sockets (a TCP client;
	// a TCP or Unix socket backend) move, once both are idle, onto the
	// engine's event loops, which relay whole
	// data frames without a goroutine wake-up (see loop_linux.go).
	Loops bool
}

// Counters are the traffic one direction carried.
type Counters struct {
	Bytes  int64 // wire bytes: headers and payloads
	Frames int64
}

// legCounters are the Counters of the frames read from a leg. Only
// whoever reads the leg (its pump, its read callback, an event loop)
// writes them; Session.Traffic reads them at any time.
type legCounters struct{ bytes, frames atomic.Int64 }

func (c *legCounters) get() Counters {
	return Counters{Bytes: c.bytes.Load(), Frames: c.frames.Load()}
}

// Traffic reports what the relay carried so far: the bytes and frames
// read from each leg, and the relay pings sent. Each figure only grows,
// up to the Result's. It may be called at any time, from any goroutine.
func (s *Session) Traffic() (clientToBackend, backendToClient Counters, pingsSent int64) {
	return s.legs[Client].counters.get(), s.legs[Backend].counters.get(), s.pings.Load()
}

// Result describes how a relay ended.
type Result struct {
	// ClosedBy is "client", "backend" or "relay".
	ClosedBy string
	// Cause says why, e.g. "client closed", "ping timeout".
	Cause string
	// CloseCode and CloseReason are those of the first close frame seen
	// or sent (0 when none was).
	CloseCode   uint16
	CloseReason string

	ClientToBackend Counters
	BackendToClient Counters
	PingsSent       int64
	PongsReceived   int64
	Duration        time.Duration
	// ClientQueues is set when the relay cut the client for a ping
	// timeout: what the client's socket held at that moment.
	ClientQueues *SocketQueues
}

// SocketQueues is what a TCP socket held at one moment, -1 where the
// system does not say. Unread is the bytes that had come in and that the
// relay had not read yet: more than 0 at a ping timeout means the client
// did send (its pong, perhaps) and the relay had fallen behind. Unacked is
// the bytes the relay had written that the peer's TCP had not
// acknowledged: more than 0 means the client had stopped taking bytes (it
// stopped reading, or the network path is gone); 0 means its system took
// everything, the ping included, and the client did not answer (it may not
// have read the ping: its own receive buffer takes bytes meanwhile).
// TLSHeld, for a TLS client leg that was parked (else -1), is the bytes
// crypto/tls held read from the socket and not yet returned: more than 0
// would mean the leg parked with bytes the socket no longer shows, which
// the relay must never do.
type SocketQueues struct {
	Unread, Unacked, TLSHeld int
}

// pingPayload marks the relay's pings. It is random per process, so a
// peer's own ping can never be mistaken for one.
var pingPayload = func() []byte {
	p := make([]byte, 16)
	copy(p, "wsrelay:")
	_, _ = rand.Read(p[8:])
	return p
}()

// leg is the engine's view of one side.
type leg struct {
	side      Side
	inMessage bool // a fragmented data message is open (pump's)
	inlineOK  bool // the leg may relay inline (Session.bindInline)
	rd        reader
	w         *writer
	// hdr is ws.ReadHeaderBuffer's scratch space.
	hdr [16]byte
	// peek parses headers already in the read buffer (forwardData's batch).
	peek bytes.Reader

	counters legCounters
	// owed is how many bytes at the start of the read buffer belong to
	// frames relayInline took but could not write whole (owedErr: the
	// write failed); the other leg's writer stays locked until the pump
	// pays them.
	owed    int
	owedErr error
	// inlined and paid count relayInline's batches and payOwed's writes
	// (pump-owned; tests read them once the relay is over).
	inlined, paid int

	s    *Session
	park parking
}

// Session relays one connection. Run it once; Shutdown may be called
// from any goroutine at any time.
type Session struct {
	cfg   Config
	legs  [2]*leg
	start time.Time

	done     chan struct{} // closed when the session tears down
	doneOnce sync.Once

	mu     sync.Mutex
	result Result
	// timeoutQueues is the client socket's queues when a ping timeout
	// was declared (Result.ClientQueues if that timeout ended the relay).
	timeoutQueues *SocketQueues
	gone          [2]bool
	// closing[side]: the close frame side gets is claimed, in the same
	// critical section as the cause it goes with, by the first of: the
	// other peer's close frame (forwarded), violate, Shutdown, legGone of
	// the other leg. Only that one is sent, so a peer that did not begin
	// the close handshake hears what the log line says, and a peer's
	// close frame that answers or crosses the relay's own is not
	// forwarded. A leg gone or given up on gets none.
	closing [2]bool

	// lastSeen is when the client last sent anything, as nanoseconds
	// since start (see since).
	lastSeen atomic.Int64
	// backendBlocked is set while a client frame waits for the backend
	// to take it: the client is not idle then, the backend is slow.
	backendBlocked atomic.Bool
	pings, pongs   atomic.Int64
	running        atomic.Int32 // pumps not finished (running or parked)
	onEnd          func(Result)
	realClock      bool // cfg.Now is time.Now (see since)

	closeTimer *time.Timer // guarded by mu
	finished   bool        // guarded by mu: Run is returning

	tickMu    sync.Mutex
	pingTimer *time.Timer
	monitor   *keepalive.Monitor // owned by tick
	// wg counts the relay's own close frames on their way
	// (sendClosesLocked, legGone); drive waits for them.
	wg sync.WaitGroup

	loopOK bool // the relay may move onto an event loop (canLoop)
	loopState
}

// New prepares a relay between client and backend.
func New(client, backend Leg, cfg Config) *Session {
	realClock := cfg.Now == nil
	if realClock {
		cfg.Now = time.Now
	}
	s := &Session{cfg: cfg, done: make(chan struct{}), start: cfg.Now(), realClock: realClock}
	s.legs[Client] = s.newLeg(Client, client, newWriter(client.Conn, cfg.WriteTimeout, false, cfg.Now))
	s.legs[Backend] = s.newLeg(Backend, backend, newWriter(backend.Conn, 0, true, cfg.Now))
	s.bindInline()
	s.loopOK = s.canLoop()
	return s
}

func (s *Session) newLeg(side Side, l Leg, w *writer) *leg {
	lg := &leg{side: side, w: w, s: s}
	lg.rd.init(l.Conn, l.Prefix, s.cfg.StallTimeout, s.cfg.Now)
	return lg
}

// Run relays until both legs are finished and returns how it ended. Both
// connections are closed when it returns.
func (s *Session) Run() Result {
	ch := make(chan Result, 1)
	s.Start(func(r Result) { ch <- r })
	return <-ch
}

// Start relays in two new goroutines, one pump per direction, and returns
// at once, so the caller's (deep) goroutine need not stay parked for the
// life of the connection. When both pumps are done and both connections
// closed, the last pump calls onEnd with how the relay ended.
func (s *Session) Start(onEnd func(Result)) {
	s.onEnd = onEnd
	s.startKeepalive()
	s.running.Store(2)
	go s.drive(s.legs[Client])
	go s.drive(s.legs[Backend])
}

// drive runs src's pump on the calling goroutine until the leg parks
// (the goroutine then ends; the poller starts another when bytes arrive)
// or the pump finishes. The last pump to finish ends the session.
func (s *Session) drive(src *leg) {
	if s.pump(src) {
		return // parked
	}
	s.inlineOff(src)
	src.rd.close()
	src.park.mu.Lock()
	src.park.state = pumpDone
	src.park.mu.Unlock()
	s.armCloseTimer() // the other leg has CloseTimeout to finish
	if s.running.Add(-1) > 0 {
		return
	}
	s.mu.Lock()
	s.finished = true
	s.mu.Unlock()
	// The close frames still being written (sendClosesLocked's, and one
	// legGone claimed off the pumps) go out before the connections close;
	// one stuck behind a frame on a peer that does not read is freed by
	// the close timer's teardown, armed before it began.
	s.wg.Wait()
	s.teardown(true)
	s.onEnd(s.outcome())
}

// outcome assembles the result once both pumps are done.
func (s *Session) outcome() Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.result
	r.ClientToBackend = s.legs[Client].counters.get()
	r.BackendToClient = s.legs[Backend].counters.get()
	r.PingsSent = s.pings.Load()
	r.PongsReceived = s.pongs.Load()
	r.Duration = s.cfg.Now().Sub(s.start)
	if r.ClosedBy == "" {
		r.ClosedBy, r.Cause = "relay", "closed"
	}
	if r.ClosedBy == "relay" && r.Cause == causePingTimeout {
		r.ClientQueues = s.timeoutQueues
	}
	return r
}

// armCloseTimer starts the one close timer; when it fires the session
// tears down whatever is still open.
func (s *Session) armCloseTimer() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closeTimer != nil || s.finished {
		return
	}
	d := s.cfg.CloseTimeout
	if d <= 0 {
		d = 5 * time.Second
	}
	s.closeTimer = time.AfterFunc(d, func() { s.teardown(false) })
}

// teardown closes both connections, which ends both pumps, and stops the
// timers; gracefully (TLS's close_notify, see closeLeg) when the relay has
// ended, not when the close timer gives up on it. It is idempotent.
func (s *Session) teardown(graceful bool) {
	s.doneOnce.Do(func() {
		close(s.done)
		s.closeLeg(s.legs[Client], graceful)
		s.closeLeg(s.legs[Backend], graceful)
	})
	s.mu.Lock()
	if s.closeTimer != nil {
		s.closeTimer.Stop()
	}
	s.mu.Unlock()
	s.tickMu.Lock()
	if s.pingTimer != nil {
		s.pingTimer.Stop()
	}
	s.tickMu.Unlock()
}

func (s *Session) isDone() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}
