package netlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/coder/websocket"
)

// clientRole is a WebSocket client (coder/websocket) that answers pings
// as a browser does and reports what arrives. It is coder/websocket and
// not gorilla/websocket because gorilla refuses close code 1014 (bad
// gateway, registered with IANA after gorilla's list was written) as a
// protocol error, and 1014 is what the relay sends when the backend dies.
//
// Events: open (data: local address), msg (data: text), bin (n: binary
// bytes so far), ping, closed (code, data: reason, err).
// Commands: send <text>, close <code>.
func runClient(cfg roleConfig, out *emitter, cmds <-chan [2]string) error {
	nd := &net.Dialer{Timeout: 10 * time.Second}
	switch cfg.KeepAlive {
	case "":
		// Go's default: keepalive on, 15 s idle, 15 s interval.
	case "off":
		nd.KeepAlive = -1
	default:
		d, err := time.ParseDuration(cfg.KeepAlive)
		if err != nil {
			return fmt.Errorf("keepalive %q: %w", cfg.KeepAlive, err)
		}
		nd.KeepAliveConfig = net.KeepAliveConfig{Enable: true, Idle: d, Interval: d, Count: 9}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var local string
	c, resp, err := websocket.Dial(ctx, cfg.URL, &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				conn, err := nd.DialContext(ctx, network, addr)
				if err == nil {
					local = conn.LocalAddr().String()
				}
				return conn, err
			},
		}},
		OnPingReceived: func(_ context.Context, p []byte) bool {
			out.emit(event{Ev: "ping", Data: string(p)})
			return true // answer with a pong, as a browser does
		},
	})
	if err != nil {
		status := ""
		if resp != nil {
			status = " (" + resp.Status + ")"
		}
		return fmt.Errorf("dialing %s: %w%s", cfg.URL, err, status)
	}
	defer c.CloseNow()
	c.SetReadLimit(16 << 20)
	out.emit(event{Ev: "open", Data: local})
	if !cfg.NoRead {
		go readClient(c, out)
	}
	for cmd := range cmds {
		switch cmd[0] {
		case "send":
			wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := c.Write(wctx, websocket.MessageText, []byte(cmd[1])); err != nil {
				out.emit(event{Ev: "send_failed", Data: cmd[1], Err: err.Error()})
			}
			cancel()
		case "close":
			code, _ := strconv.Atoi(cmd[1])
			go c.Close(websocket.StatusCode(code), "client done")
		default:
			out.emit(event{Ev: "error", Err: "unknown command " + cmd[0]})
		}
	}
	return nil
}

// readClient reads until the connection ends; pings are answered inside
// Read. Binary messages are counted and reported at most every 200 ms as
// a bin event with the running total, so that a flood does not flood the
// test with events too.
func readClient(c *websocket.Conn, out *emitter) {
	var binBytes int64
	var lastBin time.Time
	for {
		typ, p, err := c.Read(context.Background())
		if err != nil {
			ev := event{Ev: "closed", T: time.Now().UnixNano(), Err: err.Error()}
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				ev.Code, ev.Data = int(ce.Code), ce.Reason
			} else {
				ev.Code = int(websocket.StatusAbnormalClosure) // ended without a close frame
			}
			out.emit(ev)
			return
		}
		if typ == websocket.MessageText {
			out.emit(event{Ev: "msg", Data: string(p)})
			continue
		}
		binBytes += int64(len(p))
		if time.Since(lastBin) >= 200*time.Millisecond {
			out.emit(event{Ev: "bin", N: binBytes})
			lastBin = time.Now()
		}
	}
}
