package netlab

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	gws "github.com/gorilla/websocket"
)

// backendRole is a WebSocket backend (gorilla/websocket) that echoes text
// messages and, on command, pushes a message or floods the latest
// connection with binary messages.
//
// Events: listening, open (data: path), msg (data: text), ping, closed
// (code, data: reason, err; n and last: flood progress when the close
// arrived), stats (n, last), flood_end (n; last and data: start and
// length of the longest write; err).
// Commands: send <text>, flood <size>, stats.
type backendRole struct {
	out *emitter

	mu   sync.Mutex
	conn *gws.Conn

	wmu       sync.Mutex   // one data writer at a time (echo, send, flood)
	written   atomic.Int64 // flood bytes written
	lastWrite atomic.Int64 // Unix nanoseconds of the last completed flood write
}

func runBackend(cfg roleConfig, out *emitter, cmds <-chan [2]string) error {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	b := &backendRole{out: out}
	go http.Serve(ln, b)
	out.emit(event{Ev: "listening", Data: ln.Addr().String()})
	for c := range cmds {
		b.command(c[0], c[1])
	}
	return nil
}

func (b *backendRole) command(verb, arg string) {
	c := b.current()
	if c == nil && verb != "stats" {
		b.out.emit(event{Ev: "error", Err: verb + ": no connection yet"})
		return
	}
	switch verb {
	case "send":
		if err := b.write(c, gws.TextMessage, []byte(arg)); err != nil {
			b.out.emit(event{Ev: "send_failed", Data: arg, Err: err.Error()})
		}
	case "flood":
		size, err := strconv.Atoi(arg)
		if err != nil || size <= 0 {
			b.out.emit(event{Ev: "error", Err: "flood: bad size " + arg})
			return
		}
		go b.flood(c, size)
	case "stats":
		b.out.emit(event{Ev: "stats", N: b.written.Load(), Last: b.lastWrite.Load()})
	default:
		b.out.emit(event{Ev: "error", Err: "unknown command " + verb})
	}
}

func (b *backendRole) current() *gws.Conn {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.conn
}

func (b *backendRole) write(c *gws.Conn, typ int, p []byte) error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	return c.WriteMessage(typ, p)
}

// flood writes size-byte binary messages until a write fails, recording
// how much went and when the last write completed. flood_end reports the
// longest write: when it started (last) and how long it took (data). A
// relay that stops reading from the backend shows as that stall.
func (b *backendRole) flood(c *gws.Conn, size int) {
	buf := make([]byte, size)
	for i := range buf {
		buf[i] = byte(i)
	}
	var longest time.Duration
	var longestStart time.Time
	for {
		start := time.Now()
		err := b.write(c, gws.BinaryMessage, buf)
		if d := time.Since(start); d > longest {
			longest, longestStart = d, start
		}
		if err != nil {
			b.out.emit(event{Ev: "flood_end", N: b.written.Load(), Last: longestStart.UnixNano(), Data: longest.String(), Err: err.Error()})
			return
		}
		b.written.Add(int64(size))
		b.lastWrite.Store(time.Now().UnixNano())
	}
}

// ServeHTTP accepts a WebSocket connection and reads it until it ends.
func (b *backendRole) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	up := gws.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	c, err := up.Upgrade(w, r, nil)
	if err != nil {
		b.out.emit(event{Ev: "error", Err: "upgrade: " + err.Error()})
		return
	}
	defer c.Close()
	b.mu.Lock()
	b.conn = c
	b.mu.Unlock()
	b.out.emit(event{Ev: "open", Data: r.URL.Path})
	c.SetPingHandler(func(s string) error {
		b.out.emit(event{Ev: "ping", Data: s})
		return c.WriteControl(gws.PongMessage, []byte(s), time.Now().Add(time.Second))
	})
	for {
		typ, p, err := c.ReadMessage()
		if err != nil {
			ev := closedEvent(err)
			ev.N, ev.Last = b.written.Load(), b.lastWrite.Load()
			b.out.emit(ev)
			return
		}
		if typ != gws.TextMessage {
			b.out.emit(event{Ev: "bin", N: int64(len(p))})
			continue
		}
		b.out.emit(event{Ev: "msg", Data: string(p)})
		if err := b.write(c, gws.TextMessage, p); err != nil {
			b.out.emit(event{Ev: "send_failed", Data: string(p), Err: err.Error()})
		}
	}
}

// closedEvent describes how a gorilla read loop ended: the close frame's
// code and reason, or 1006 when the connection ended without one.
func closedEvent(err error) event {
	ev := event{Ev: "closed", T: time.Now().UnixNano(), Err: err.Error()}
	var ce *gws.CloseError
	if errors.As(err, &ce) {
		ev.Code, ev.Data = ce.Code, ce.Text
	} else {
		ev.Code = gws.CloseAbnormalClosure
	}
	return ev
}
