package reliability

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"time"

	gws "github.com/gorilla/websocket"
)

// serveBackend is the gorilla/websocket backend of the soak: it checks the
// client's stream, sends its own (through NextWriter, in chunks, so that
// gorilla fragments at its write buffer size) and pings the client.
func (s *soak) serveBackend(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.Atoi(r.URL.Query().Get("id"))
	if err != nil || id < 0 || id >= len(s.conns) {
		s.warm(w, r)
		return
	}
	sc := s.conns[id]
	defer close(sc.bDone)
	rng := rand.New(rand.NewPCG(uint64(id), 2))
	up := gws.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 256 + rng.IntN(16<<10), CheckOrigin: func(*http.Request) bool { return true }}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		sc.fail("backend upgrade: %v", err)
		return
	}
	defer conn.Close()
	conn.SetPingHandler(func(p string) error {
		sc.clientPngs++
		return ignoreClosed(conn.WriteControl(gws.PongMessage, []byte(p), time.Now().Add(10*time.Second)))
	})
	conn.SetPongHandler(func(p string) error { sc.bPings.pong(p); return nil })
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		n, err := sc.sendStream(sc.down, rng, false, func(text bool, p []byte) error {
			return writeChunked(conn, rng, text, p)
		}, func() error {
			return conn.WriteControl(gws.PingMessage, []byte(sc.bPings.next()), time.Now().Add(10*time.Second))
		})
		sc.bSent = int64(n)
		if err != nil {
			sc.fail("backend: %v", err)
		}
	}()
	sc.bClose = readGorilla(conn, &sc.bRecv, nil)
	<-wrote
}

// warm is the backend of the warm-up connections: an echo.
func (s *soak) warm(w http.ResponseWriter, r *http.Request) {
	conn, err := (&gws.Upgrader{}).Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	for {
		typ, p, err := conn.ReadMessage()
		if err != nil || conn.WriteMessage(typ, p) != nil {
			return
		}
	}
}

// writeChunked writes one message through gorilla's NextWriter in chunks
// of random sizes.
func writeChunked(conn *gws.Conn, rng *rand.Rand, text bool, p []byte) error {
	typ := gws.BinaryMessage
	if text {
		typ = gws.TextMessage
	}
	_ = conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	w, err := conn.NextWriter(typ)
	if err != nil {
		return err
	}
	for len(p) > 0 {
		n := min(len(p), 1+rng.IntN(64<<10))
		if _, err := w.Write(p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	return w.Close()
}

// readGorilla reads messages into rcv until the connection ends and
// returns the close code received (-1 when none). onEnd runs when the end
// message arrives.
func readGorilla(conn *gws.Conn, rcv *receiver, onEnd func()) int {
	for {
		typ, rd, err := conn.NextReader()
		if err != nil {
			var ce *gws.CloseError
			if errors.As(err, &ce) {
				return ce.Code
			}
			rcv.fail(fmt.Errorf("reading: %w", err))
			return -1
		}
		p, err := io.ReadAll(rd)
		if err != nil {
			rcv.fail(fmt.Errorf("reading a message: %w", err))
			return -1
		}
		if rcv.take(typ == gws.TextMessage, p) && onEnd != nil {
			onEnd()
		}
	}
}

func ignoreClosed(err error) error {
	if errors.Is(err, gws.ErrCloseSent) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
