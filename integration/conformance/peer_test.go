package conformance

import (
	"bytes"
	"fmt"
	"sync"
	"time"

	rt "github.com/websocket-relay/websocket_relay/integration/relaytest"
)

// Timings of the client protocol. Autobahn waits 1 s for the server to
// drop TCP after the close handshake and for the answer to its close
// frame; the harness waits 2 s, because it runs race-instrumented peers
// on a shared machine.
const (
	serverDropTimeout     = 2 * time.Second
	closeHandshakeTimeout = 2 * time.Second
	caseTimeout           = 30 * time.Second
)

// event is what the client saw: a whole message, a ping, a pong, or one
// of the case's own timeouts (Autobahn's ("timeout", tag)); "error" marks
// a frame no server may send.
type event struct {
	Kind   string
	Data   string
	Binary bool
}

func (e event) String() string {
	switch e.Kind {
	case "message":
		kind := "text"
		if e.Binary {
			kind = "binary"
		}
		return fmt.Sprintf("%s(%dB)", kind, len(e.Data))
	case "timeout", "error":
		return e.Kind + "(" + e.Data + ")"
	}
	return fmt.Sprintf("%s(%dB)", e.Kind, len(e.Data))
}

func equalEvents(a, b []event) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// peer plays Autobahn's fuzzing client for one case: it sends the case's
// frames, records what comes back, answers pings and close frames, and
// notes how the connection ended.
type peer struct {
	c  *rt.Client
	cs *caseDef

	wmu sync.Mutex // one frame (or chopped frame) at a time on the wire

	mu          sync.Mutex
	received    []event
	sentClose   bool // a close frame went out (as a close, not as a raw frame)
	gotClose    bool
	closedByMe  bool // our close frame went out before the server's
	remoteCode  int  // -1: none, or an empty close payload
	droppedByMe bool
	wasClean    bool
	closed      bool
	msg         []byte
	msgBinary   bool
	inMessage   bool
	timers      []*time.Timer
	done        chan struct{}
}

func newPeer(c *rt.Client, cs *caseDef) *peer {
	return &peer{c: c, cs: cs, remoteCode: -1, done: make(chan struct{})}
}

// open reports whether no close frame went either way yet; Autobahn's
// STATE_OPEN.
func (p *peer) open() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.closed && !p.sentClose && !p.gotClose
}

// frameOpts are sendFrame's knobs, as in Autobahn's sendFrame.
type frameOpts struct {
	fin    bool
	rsv    byte
	chop   int // send the frame in pieces of this many bytes
	sync   bool
	length int // repeat the payload up to this length
}

type opt func(*frameOpts)

func notFin() opt        { return func(o *frameOpts) { o.fin = false } }
func rsv(r byte) opt     { return func(o *frameOpts) { o.rsv = r } }
func chop(n int) opt     { return func(o *frameOpts) { o.chop = n } }
func synced() opt        { return func(o *frameOpts) { o.sync = true } }
func repeatTo(n int) opt { return func(o *frameOpts) { o.length = n } }
func frameOf(o ...opt) frameOpts {
	fo := frameOpts{fin: true}
	for _, f := range o {
		f(&fo)
	}
	return fo
}

// sendFrame sends one masked frame as asked, whatever the protocol state.
func (p *peer) sendFrame(op byte, payload string, o ...opt) {
	fo := frameOf(o...)
	data := []byte(payload)
	if fo.length > 0 {
		data = bytes.Repeat(data, fo.length/len(data)+1)[:fo.length]
	}
	f := rt.ClientFrame(fo.fin, op, data)
	f.Rsv = fo.rsv
	p.write(f.Bytes(), fo.chop, fo.sync)
}

// write puts b on the wire, in pieces of chop bytes when chop > 0.
func (p *peer) write(b []byte, chop int, sync bool) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_ = p.c.Conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if chop <= 0 {
		_, _ = p.c.Conn.Write(b)
		if sync {
			time.Sleep(time.Millisecond)
		}
		return
	}
	for len(b) > 0 {
		n := min(chop, len(b))
		if _, err := p.c.Conn.Write(b[:n]); err != nil {
			return
		}
		b = b[n:]
		time.Sleep(time.Millisecond)
	}
}

// sendMessage sends payload as one message, in frames of fragSize bytes
// when fragSize > 0.
func (p *peer) sendMessage(payload string, binary bool, fragSize int) {
	op := rt.OpText
	if binary {
		op = rt.OpBinary
	}
	if fragSize <= 0 || len(payload) <= fragSize {
		p.sendFrame(op, payload)
		return
	}
	for len(payload) > 0 {
		n := min(fragSize, len(payload))
		o := []opt{}
		if n < len(payload) {
			o = append(o, notFin())
		}
		p.sendFrame(op, payload[:n], o...)
		payload, op = payload[n:], rt.OpContinuation
	}
}

// frameParts starts one masked frame that announces length payload bytes
// and returns a function that sends the next part of its payload, for
// Autobahn's beginMessageFrame and sendMessageFrameData.
func (p *peer) frameParts(op byte, length int) func(part string) {
	mask := rt.NewMask()
	p.write(rt.Header(true, 0, op, true, mask, uint64(length)), 0, false)
	pos := 0
	return func(part string) {
		b := []byte(part)
		rt.Cipher(b, mask, pos)
		pos += len(b)
		p.write(b, 0, false)
	}
}

// sendClose starts the closing handshake with code (-1: no payload) and
// reason, as Autobahn's sendCloseFrame; it does nothing once a close went
// out.
func (p *peer) sendClose(code int, reason string) {
	payload := []byte(reason)
	if code >= 0 {
		payload = append(rt.ClosePayload(uint16(code), ""), reason...)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sendCloseLocked(payload)
}

func (p *peer) sendCloseLocked(payload []byte) {
	if p.sentClose || p.closed {
		return
	}
	p.sentClose = true
	p.closedByMe = !p.gotClose
	p.write(rt.ClientFrame(true, rt.OpClose, payload).Bytes(), 0, false)
	if p.gotClose {
		p.afterLocked(serverDropTimeout, p.dropLocked)
	} else {
		p.afterLocked(closeHandshakeTimeout, p.dropLocked)
	}
}

// wait is Autobahn's continueLater: after d, if the connection is still
// open, it records ("timeout", tag) and reports true.
func (p *peer) wait(d time.Duration, tag string) bool {
	time.Sleep(d)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.sentClose || p.gotClose {
		return false
	}
	p.received = append(p.received, event{Kind: "timeout", Data: tag})
	return true
}

// closeAfter sends close 1000 after d if the connection is still open.
func (p *peer) closeAfter(d time.Duration) {
	p.after(d, func() {
		if !p.gotClose {
			p.sendCloseLocked(rt.ClosePayload(1000, ""))
		}
	})
}

// killAfter drops the TCP connection after d if it is still there.
func (p *peer) killAfter(d time.Duration) { p.after(d, p.dropLocked) }

func (p *peer) after(d time.Duration, f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.afterLocked(d, f)
}

func (p *peer) afterLocked(d time.Duration, f func()) {
	p.timers = append(p.timers, time.AfterFunc(d, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if !p.closed {
			f()
		}
	}))
}

// dropLocked closes the TCP connection from our side.
func (p *peer) dropLocked() {
	if p.closed {
		return
	}
	p.droppedByMe = true
	p.c.Conn.Close()
}

// readLoop reads the server's frames until the connection ends.
func (p *peer) readLoop() {
	defer p.finish()
	for {
		f, err := rt.ReadFrame(p.c.R)
		if err != nil {
			return
		}
		p.mu.Lock()
		stop := p.onFrame(f)
		p.mu.Unlock()
		if stop {
			return
		}
	}
}

// onFrame handles one frame from the server; it reports whether reading
// must stop. Call with p.mu held.
func (p *peer) onFrame(f rt.Frame) bool {
	if p.gotClose {
		return false // nothing after a close frame counts
	}
	switch {
	case f.Masked || f.Rsv != 0:
		p.received = append(p.received, event{Kind: "error", Data: "masked or RSV frame from the server"})
		p.dropLocked()
		return true
	case f.Op == rt.OpClose:
		p.gotClose = true
		if code, _ := f.CloseCode(); code >= 0 || code == -2 {
			p.remoteCode = code
		}
		if !p.sentClose {
			p.sendCloseLocked(f.Payload[:min(len(f.Payload), 2)])
		} else {
			p.afterLocked(serverDropTimeout, p.dropLocked)
		}
	case f.Op == rt.OpPing:
		p.received = append(p.received, event{Kind: "ping", Data: string(f.Payload)})
		if !p.sentClose {
			p.write(rt.ClientFrame(true, rt.OpPong, f.Payload).Bytes(), 0, false)
		}
		p.finishWhenDone()
	case f.Op == rt.OpPong:
		p.received = append(p.received, event{Kind: "pong", Data: string(f.Payload)})
		p.finishWhenDone()
	case f.Op == rt.OpContinuation && p.inMessage, (f.Op == rt.OpText || f.Op == rt.OpBinary) && !p.inMessage:
		if !p.inMessage {
			p.msg, p.msgBinary = nil, f.Op == rt.OpBinary
		}
		p.msg = append(p.msg, f.Payload...)
		p.inMessage = !f.Fin
		if f.Fin {
			p.received = append(p.received, event{Kind: "message", Data: string(p.msg), Binary: p.msgBinary})
			p.finishWhenDone()
		}
	default:
		p.received = append(p.received, event{Kind: "error", Data: fmt.Sprintf("opcode %#x out of place", f.Op)})
		p.dropLocked()
		return true
	}
	return false
}

// finishWhenDone starts the closing handshake when what came matches
// every expected outcome of a case that expects us to close, as Autobahn's
// Case.finishWhenDone does. Call with p.mu held.
func (p *peer) finishWhenDone() {
	if len(p.cs.expected) == 0 {
		return
	}
	for _, exp := range p.cs.expected {
		if !equalEvents(p.received, exp) {
			return
		}
	}
	if p.cs.close.closedByMe && !p.cs.suppressClose && !p.gotClose {
		p.sendCloseLocked(rt.ClosePayload(uint16(p.cs.close.codes[0]), ""))
	}
}

// finish records how the connection ended.
func (p *peer) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	p.wasClean = p.sentClose && p.gotClose && !p.droppedByMe
	for _, t := range p.timers {
		t.Stop()
	}
	p.c.Conn.Close()
	close(p.done)
}
