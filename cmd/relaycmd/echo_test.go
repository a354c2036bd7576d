package relaycmd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// wsClient is a raw WebSocket client: it writes and reads whole frames, so
// tests can send what a library would refuse to (bad UTF-8, unmasked frames).
type wsClient struct {
	t    *testing.T
	conn net.Conn
	r    io.Reader
}

func startEcho(t *testing.T) *EchoServer {
	t.Helper()
	e, err := StartEcho("127.0.0.1:0")
	if err != nil {
		t.Fatalf(
			"StartEcho: %v",
			err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func dialWS(t *testing.T, url string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, br, _, err := ws.Dial(ctx, url)
	if err != nil {
		t.Fatalf(
			"dialing %s: %v",
			url, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	c := &wsClient{t: t, conn: conn, r: conn}
	if br != nil {
		c.r = io.MultiReader(br, conn)
	}
	return c
}

// send writes one masked frame, as a client must.
func (c *wsClient) send(fin bool, op ws.OpCode, payload []byte) {
	c.t.Helper()
	f := ws.NewFrame(op, fin, append([]byte(nil), payload...))
	if err := ws.WriteFrame(c.conn, ws.MaskFrameInPlace(f)); err != nil {
		c.t.Fatalf(
			"writing %v frame: %v",
			op, err)
	}
}

// sendUnmasked writes a frame without a mask, which RFC 6455 5.1 forbids.
func (c *wsClient) sendUnmasked(op ws.OpCode, payload []byte) {
	c.t.Helper()
	if err := ws.WriteFrame(c.conn, ws.NewFrame(op, true, payload)); err != nil {
		c.t.Fatalf(
			"writing unmasked frame: %v",
			err)
	}
}

func (c *wsClient) read() ws.Frame {
	c.t.Helper()
	f, err := ws.ReadFrame(c.r)
	if err != nil {
		c.t.Fatalf(
			"reading frame: %v",
			err)
	}
	if f.Header.Masked {
		c.t.Fatalf("server frame is masked")
	}
	return f
}

// readMessage reads one data message, possibly fragmented, and returns its
// type, payload and the number of frames it came in.
func (c *wsClient) readMessage() (ws.OpCode, []byte, int) {
	c.t.Helper()
	f := c.read()
	if f.Header.OpCode.IsControl() || f.Header.OpCode == ws.OpContinuation {
		c.t.Fatalf(
			"got %v frame, want the start of a data message",
			f.Header.OpCode)
	}
	op, payload, frames := f.Header.OpCode, f.Payload, 1
	for !f.Header.Fin {
		f = c.read()
		if f.Header.OpCode != ws.OpContinuation {
			c.t.Fatalf(
				"got %v frame inside a message, want continuation",
				f.Header.OpCode)
		}
		payload = append(payload, f.Payload...)
		frames++
	}
	return op, payload, frames
}

// expectClose reads a close frame with code and reason, then the end of the
// connection.
func (c *wsClient) expectClose(code ws.StatusCode, reason string) {
	c.t.Helper()
	f := c.read()
	if f.Header.OpCode != ws.OpClose {
		c.t.Fatalf(
			"got %v frame, want close",
			f.Header.OpCode)
	}
	gotCode, gotReason := ws.ParseCloseFrameData(f.Payload)
	if gotCode != code || (reason != "" && gotReason != reason) {
		c.t.Fatalf(
			"close = %d %q, want %d %q",
			gotCode, gotReason, code, reason)
	}
	c.expectEOF()
}

func (c *wsClient) expectEOF() {
	c.t.Helper()
	if f, err := ws.ReadFrame(c.r); err == nil {
		c.t.Fatalf(
			"got %v frame, want the connection closed",
			f.Header.OpCode)
	} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		c.t.Fatalf(
			"read after close: %v, want EOF",
			err)
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

func TestEchoMessages(t *testing.T) {
	e := startEcho(t)
	c := dialWS(t, "ws://"+e.Addr()+"/")
	big := bytes.Repeat([]byte("0123456789abcdef"), (3*echoChunk+100)/16)

	tests := []struct {
		name    string
		op      ws.OpCode
		payload []byte
		frames  int
	}{
		{
			name:    "text",
			op:      ws.OpText,
			payload: []byte("hello, relay ✓"),
			frames:  1,
		},
		{
			name:    "binary",
			op:      ws.OpBinary,
			payload: []byte{0, 1, 2, 0xff, 0xfe},
			frames:  1,
		},
		{
			name:    "empty text",
			op:      ws.OpText,
			payload: nil,
			frames:  1,
		},
		{
			name:    "larger than one chunk comes back fragmented",
			op:      ws.OpBinary,
			payload: big,
			frames:  4,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.t = t
			c.send(true, tt.op, tt.payload)
			op, payload, frames := c.readMessage()
			if op != tt.op || !bytes.Equal(payload, tt.payload) {
				t.Errorf(
					"echo = %v %d bytes, want %v %d bytes",
					op, len(payload), tt.op, len(tt.payload))
			}
			if frames != tt.frames {
				t.Errorf(
					"echo came in %d frames, want %d",
					frames, tt.frames)
			}
		})
	}
	c.t = t
	c.send(true, ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye"))
	c.expectClose(ws.StatusNormalClosure, "bye")
}

func TestEchoFragmentedWithPingInside(t *testing.T) {
	e := startEcho(t)
	c := dialWS(t, "ws://"+e.Addr()+"/")

	c.send(false, ws.OpText, []byte("hel"))
	c.send(true, ws.OpPing, []byte("are you there"))
	pong := c.read()
	if pong.Header.OpCode != ws.OpPong || string(pong.Payload) != "are you there" {
		t.Fatalf(
			"got %v %q, want pong with the ping's payload",
			pong.Header.OpCode, pong.Payload)
	}
	c.send(false, ws.OpContinuation, []byte("lo "))
	c.send(true, ws.OpContinuation, []byte("world"))
	op, payload, _ := c.readMessage()
	if op != ws.OpText || string(payload) != "hello world" {
		t.Fatalf(
			"echo = %v %q, want text \"hello world\"",
			op, payload)
	}

	// A pong from the client is not answered; the next message still is.
	c.send(true, ws.OpPong, []byte("unsolicited"))
	c.send(true, ws.OpBinary, []byte("after pong"))
	if _, payload, _ := c.readMessage(); string(payload) != "after pong" {
		t.Fatalf(
			"echo = %q, want \"after pong\"",
			payload)
	}
}

func TestEchoClose(t *testing.T) {
	tests := []struct {
		name   string
		send   func(c *wsClient)
		code   ws.StatusCode
		reason string
	}{
		{
			name: "close with code and reason is echoed",
			send: func(c *wsClient) {
				c.send(true, ws.OpClose, ws.NewCloseFrameBody(4000, "app done"))
			},
			code:   4000,
			reason: "app done",
		},
		{
			name: "close mid-message is echoed, the partial message dropped",
			send: func(c *wsClient) {
				c.send(false, ws.OpBinary, []byte("part"))
				c.send(true, ws.OpClose, ws.NewCloseFrameBody(ws.StatusGoingAway, ""))
			},
			code: ws.StatusGoingAway,
		},
		{
			name: "invalid UTF-8 in a text message",
			send: func(c *wsClient) {
				c.send(true, ws.OpText, []byte{'o', 'k', 0xff, 0xfe})
			},
			code: ws.StatusInvalidFramePayloadData,
		},
		{
			name: "unmasked client frame",
			send: func(c *wsClient) {
				c.sendUnmasked(ws.OpText, []byte("no mask"))
			},
			code: ws.StatusProtocolError,
		},
		{
			name: "reserved close code",
			send: func(c *wsClient) {
				c.send(true, ws.OpClose, ws.NewCloseFrameBody(ws.StatusNoStatusRcvd, ""))
			},
			code: ws.StatusProtocolError,
		},
		{
			name: "one-byte close payload",
			send: func(c *wsClient) {
				c.send(true, ws.OpClose, []byte{3})
			},
			code: ws.StatusProtocolError,
		},
		{
			name: "continuation without a message",
			send: func(c *wsClient) {
				c.send(true, ws.OpContinuation, []byte("orphan"))
			},
			code: ws.StatusProtocolError,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := startEcho(t)
			c := dialWS(t, "ws://"+e.Addr()+"/")
			tt.send(c)
			if tt.code == ws.StatusInvalidFramePayloadData || tt.code == ws.StatusProtocolError {
				// The server started the close: answer it, as a client would.
				f := c.read()
				code, _ := ws.ParseCloseFrameData(f.Payload)
				if f.Header.OpCode != ws.OpClose || code != tt.code {
					t.Fatalf(
						"got %v %d, want close %d",
						f.Header.OpCode, code, tt.code)
				}
				start := time.Now()
				c.send(true, ws.OpClose, f.Payload)
				c.expectEOF()
				if waited := time.Since(start); waited > echoCloseWait/2 {
					t.Errorf(
						"server closed TCP %v after the client's close, want at once",
						waited)
				}
				return
			}
			c.expectClose(tt.code, tt.reason)
		})
	}
}

func TestEchoEmptyClose(t *testing.T) {
	e := startEcho(t)
	c := dialWS(t, "ws://"+e.Addr()+"/")
	c.send(true, ws.OpClose, nil)
	f := c.read()
	if f.Header.OpCode != ws.OpClose || len(f.Payload) != 0 {
		t.Fatalf(
			"got %v with %d bytes, want an empty close",
			f.Header.OpCode, len(f.Payload))
	}
	c.expectEOF()
}

func TestEchoRejectsPlainHTTP(t *testing.T) {
	e := startEcho(t)
	resp, err := http.Get("http://" + e.Addr() + "/")
	if err != nil {
		t.Fatalf(
			"GET: %v",
			err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf(
			"status = %d, want 400",
			resp.StatusCode)
	}
}

func TestEchoConcurrentClients(t *testing.T) {
	e := startEcho(t)
	const clients, messages = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- chat(e.Addr(), i, messages)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// chat sends n messages on its own connection and checks every echo; it
// reports instead of calling t.Fatal, since it runs off the test goroutine.
func chat(addr string, id, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, br, _, err := ws.Dial(ctx, "ws://"+addr+"/")
	if err != nil {
		return fmt.Errorf("client %d: dial: %w", id, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var r io.Reader = conn
	if br != nil {
		r = bufio.NewReader(io.MultiReader(br, conn))
	}
	for j := range n {
		msg := fmt.Appendf(nil, "client %d message %d", id, j)
		if err := ws.WriteFrame(conn, ws.MaskFrameInPlace(ws.NewTextFrame(append([]byte(nil), msg...)))); err != nil {
			return fmt.Errorf("client %d: write: %w", id, err)
		}
		f, err := ws.ReadFrame(r)
		if err != nil {
			return fmt.Errorf("client %d: read: %w", id, err)
		}
		if !bytes.Equal(f.Payload, msg) {
			return fmt.Errorf("client %d: echo %q, want %q", id, f.Payload, msg)
		}
	}
	return nil
}

func TestEchoCloseEndsConnections(t *testing.T) {
	e, err := StartEcho("127.0.0.1:0")
	if err != nil {
		t.Fatalf(
			"StartEcho: %v",
			err)
	}
	c := dialWS(t, "ws://"+e.Addr()+"/")
	c.send(true, ws.OpText, []byte("ping"))
	c.readMessage()

	done := make(chan error, 1)
	go func() { done <- e.Close() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("EchoServer.Close did not return")
	}
	c.expectEOF()
}
