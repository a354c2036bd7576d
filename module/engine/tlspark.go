package engine

import (
	"bytes"
	"crypto/tls"
	"net"
	"reflect"
	"sync"
	"syscall"
	"unsafe"
)

// Parking a TLS leg: the relay cannot read a *tls.Conn's socket directly
// (the bytes must go through crypto/tls), but it can still wait for the
// socket with the poller, the goroutine given back, as long as crypto/tls
// holds no bytes of its own. Bytes it holds never make the socket
// readable, so a leg parked on them would sleep with a frame waiting.
//
// crypto/tls does not say whether it holds bytes; its Conn keeps them in
// three unexported fields:
//
//	rawInput bytes.Buffer // raw input, starting with a record header
//	input    bytes.Reader // application data waiting to be read
//	hand     bytes.Buffer // handshake data waiting to be read
//
// They are read here through package reflect (lengths and offsets, never
// the bytes), and only by the leg's own reader goroutine between its Read
// calls; crypto/tls touches them only inside Read, under its input lock,
// and Write and Close touch other fields. When the leg parks holding none,
// the same goroutine also sets the three to their zero values (shed): the
// buffers crypto/tls grew for the handshake (about 3.5 KB per connection)
// are then freed rather than kept for the connection's life. Should a Go
// release change that layout, TLS legs keep their goroutine and buffers
// as before (TestTLSLayout fails, so the change is noticed).

// tlsLayout holds the reflect index paths of the fields above.
type tlsLayout struct {
	raw, in, hand    int   // rawInput, input, hand
	rawBuf, rawOff   []int // rawInput.buf, rawInput.off
	inS, inI         []int // input.s, input.i
	handBuf, handOff []int // hand.buf, hand.off
}

var (
	tlsLayoutOnce sync.Once
	tlsFields     *tlsLayout // nil when the layout is not the expected one
	tlsLayoutErr  string     // why, for the test
)

// theTLSLayout resolves the fields once; nil means TLS legs do not park.
func theTLSLayout() *tlsLayout {
	tlsLayoutOnce.Do(func() { tlsFields, tlsLayoutErr = resolveTLSLayout() })
	return tlsFields
}

func resolveTLSLayout() (*tlsLayout, string) {
	conn := reflect.TypeFor[tls.Conn]()
	bufT, rdT := reflect.TypeFor[bytes.Buffer](), reflect.TypeFor[bytes.Reader]()
	// field finds name in t, of type want exactly, and returns its index.
	field := func(t reflect.Type, name string, want reflect.Type) (int, bool) {
		f, ok := t.FieldByName(name)
		if !ok || len(f.Index) != 1 || f.Type != want {
			return 0, false
		}
		return f.Index[0], true
	}
	bytesT, intT, int64T := reflect.TypeFor[[]byte](), reflect.TypeFor[int](), reflect.TypeFor[int64]()
	raw, ok1 := field(conn, "rawInput", bufT)
	in, ok2 := field(conn, "input", rdT)
	hand, ok3 := field(conn, "hand", bufT)
	bBuf, ok4 := field(bufT, "buf", bytesT)
	bOff, ok5 := field(bufT, "off", intT)
	rS, ok6 := field(rdT, "s", bytesT)
	rI, ok7 := field(rdT, "i", int64T)
	if !(ok1 && ok2 && ok3) {
		return nil, "crypto/tls.Conn has no rawInput/input/hand of type bytes.Buffer/bytes.Reader/bytes.Buffer"
	}
	if !(ok4 && ok5 && ok6 && ok7) {
		return nil, "bytes.Buffer{buf []byte; off int} or bytes.Reader{s []byte; i int64} changed"
	}
	return &tlsLayout{
		raw: raw, in: in, hand: hand,
		rawBuf: []int{raw, bBuf}, rawOff: []int{raw, bOff},
		inS: []int{in, rS}, inI: []int{in, rI},
		handBuf: []int{hand, bBuf}, handOff: []int{hand, bOff},
	}, ""
}

// held reports whether c holds bytes that a Read would return or use
// without reading the socket: decrypted data, a record (or part of one)
// not decrypted yet, or handshake bytes.
func (l *tlsLayout) held(c *tls.Conn) bool { return l.heldBytes(c) > 0 }

// shed frees the memory crypto/tls keeps for input between reads: it sets
// rawInput, input and hand to their zero values, the state of a new Conn,
// dropping the buffers of rawInput and hand and input's slice of
// rawInput's. The next Read grows them again. Call only where held(c) is
// false and no Read can run: the leg's own reader, about to park.
func (l *tlsLayout) shed(c *tls.Conn) {
	v := reflect.ValueOf(c).Elem()
	for _, i := range [...]int{l.raw, l.in, l.hand} {
		f := v.Field(i)
		reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().SetZero()
	}
}

// heldBytes is how many bytes c holds in the three buffers. Only where no
// Read can run (see shed).
func (l *tlsLayout) heldBytes(c *tls.Conn) int {
	v := reflect.ValueOf(c).Elem()
	return unread(v, l.inS, l.inI) + unread(v, l.rawBuf, l.rawOff) + unread(v, l.handBuf, l.handOff)
}

// unread is how many bytes the slice at data has past the offset at pos.
func unread(v reflect.Value, data, pos []int) int {
	return v.FieldByIndex(data).Len() - int(v.FieldByIndex(pos).Int())
}

// tlsSocket returns the RawConn of the socket beneath a TLS connection
// whose handshake is complete, or nil when the leg cannot park: the layout
// is unknown, or the connection beneath is not a kernel socket. Only a
// *net.TCPConn or *net.UnixConn directly beneath is taken: a wrapper
// between them (a listener wrapper's conn) may hold bytes of its own in a
// buffer, which the poller would never see.
func tlsSocket(c *tls.Conn) syscall.RawConn {
	if theTLSLayout() == nil || !c.ConnectionState().HandshakeComplete {
		return nil
	}
	var sc syscall.Conn
	switch nc := c.NetConn().(type) {
	case *net.TCPConn:
		sc = nc
	case *net.UnixConn:
		sc = nc
	default:
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// drained reports whether the reader's connection holds no bytes (and no
// error) outside the socket, so the leg may park on the socket. Plain
// sockets hold none.
func (r *reader) drained() bool {
	return r.tlsc == nil || !r.ending && !tlsFields.held(r.tlsc)
}

// waitIdleTLS is waitIdle for a TLS leg that can park.
//
// A linger ends with a read deadline, which leaves the connection usable:
// crypto/tls makes a read error sticky only when it is not a temporary
// net.Error (conn.go, readRecordOrCCS: "if e, ok := err.(net.Error); !ok
// || !e.Temporary() { c.in.setErrorLocked(err) }", for the record header
// and again for the record body, lines 633 and 678 in Go 1.26), and a
// deadline's error is temporary. Bytes of a record read before the
// deadline stay in rawInput for the next Read.
//
// Parking comes only when crypto/tls holds nothing, and there is no
// non-blocking read through TLS: after a wake-up the leg reads (for up to
// the linger time) before it may park again, or a level-triggered poller
// would wake it again at once for the same bytes, forever. A record that
// is still arriving keeps a goroutine until it is whole.
func (s *Session) waitIdleTLS(src *leg, woken bool) error {
	rd := &src.rd
	if !rd.drained() {
		return rd.fill() // crypto/tls has bytes: Read needs no poller
	}
	counted := false
	if src.counters.frames.Load() > 0 {
		counted = lingering.Add(1) <= lingerCap
		if !counted {
			lingering.Add(-1) // over the cap: park now
		}
	}
	if counted || woken {
		err := rd.fillWithin(lingerTime)
		if counted {
			lingering.Add(-1)
		}
		if err != errLingered {
			return err
		}
	}
	// No deadline may stay behind: the leg may sleep far past it.
	rd.clearDeadline()
	if rd.drained() {
		tlsFields.shed(rd.tlsc)
		if s.park(src) {
			return errParked
		}
	}
	return rd.fill()
}
