package relaytest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DialOptions tune how a Client connects.
type DialOptions struct {
	// LocalIP is the source address, e.g. "127.0.0.3"; empty lets the
	// kernel choose.
	LocalIP string
	// TLS, when set, makes the connection TLS (wss).
	TLS *tls.Config
	// Host is the Host header; default the address dialed.
	Host string
	// Header holds extra request headers.
	Header http.Header
	// Timeout bounds the connection and the handshake; default 10s.
	Timeout time.Duration
	// ReadBuffer, when positive, fixes the socket's receive buffer
	// (SO_RCVBUF, set before connecting, so the kernel does not grow it):
	// a client that reads slowly then pushes back on the relay at once.
	ReadBuffer int
}

// Client is a WebSocket client that works byte by byte: it masks what it
// is told to mask and answers nothing by itself.
type Client struct {
	Conn net.Conn
	R    *bufio.Reader
	Resp *http.Response
	wmu  sync.Mutex
}

// HandshakeError is a handshake answered with something other than a
// valid 101.
type HandshakeError struct {
	Resp *http.Response
	Body []byte
	Msg  string
}

func (e *HandshakeError) Error() string {
	if e.Resp == nil {
		return "handshake: " + e.Msg
	}
	return fmt.Sprintf("handshake: %s: %s %q", e.Msg, e.Resp.Status, bytes.TrimSpace(e.Body))
}

// DialTCP opens a TCP connection to addr (TLS when o.TLS is set) from
// o.LocalIP.
func DialTCP(addr string, o DialOptions) (net.Conn, error) {
	d := &net.Dialer{Timeout: o.timeout()}
	if o.LocalIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(o.LocalIP)}
	}
	if o.ReadBuffer > 0 {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, o.ReadBuffer)
			})
			return errors.Join(err, serr)
		}
	}
	if o.TLS != nil {
		return tls.DialWithDialer(d, "tcp", addr, o.TLS)
	}
	return d.Dial("tcp", addr)
}

func (o DialOptions) timeout() time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return 10 * time.Second
}

// NewKey returns a fresh Sec-WebSocket-Key.
func NewKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// AcceptFor computes Sec-WebSocket-Accept for key (RFC 6455 4.2.2).
func AcceptFor(key string) string {
	h := sha1.New()
	h.Write([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// UpgradeRequest returns the bytes of an upgrade request for path with key.
func UpgradeRequest(host, path, key string, hdr http.Header) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n", path, host)
	fmt.Fprintf(&b, "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", key)
	_ = hdr.Write(&b)
	b.WriteString("\r\n")
	return b.Bytes()
}

// Dial connects to addr and does the opening handshake for path. An
// answer other than a valid 101 is a *HandshakeError.
func Dial(addr, path string, o DialOptions) (*Client, error) {
	conn, err := DialTCP(addr, o)
	if err != nil {
		return nil, err
	}
	host := o.Host
	if host == "" {
		host = addr
	}
	c, err := Handshake(conn, host, path, o)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// Handshake does the opening handshake on conn.
func Handshake(conn net.Conn, host, path string, o DialOptions) (*Client, error) {
	_ = conn.SetDeadline(time.Now().Add(o.timeout()))
	defer conn.SetDeadline(time.Time{})
	key := NewKey()
	if _, err := conn.Write(UpgradeRequest(host, path, key, o.Header)); err != nil {
		return nil, fmt.Errorf("sending upgrade request: %w", err)
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		return nil, &HandshakeError{Msg: "reading the answer: " + err.Error()}
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, &HandshakeError{Resp: resp, Body: body, Msg: "not 101"}
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != AcceptFor(key) {
		return nil, &HandshakeError{Resp: resp, Msg: "wrong Sec-WebSocket-Accept " + got}
	}
	return &Client{Conn: conn, R: br, Resp: resp}, nil
}

// LocalAddr is the client's address as the server sees it.
func (c *Client) LocalAddr() string { return c.Conn.LocalAddr().String() }

// Write sends raw bytes whole.
func (c *Client) Write(p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.Conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.Conn.Write(p)
	return err
}

// WriteFrame sends f as it is (masked only when f.Masked).
func (c *Client) WriteFrame(f Frame) error { return c.Write(f.Bytes()) }

// Send sends one masked frame with a fresh key.
func (c *Client) Send(fin bool, op byte, payload []byte) error {
	return c.WriteFrame(ClientFrame(fin, op, payload))
}

// ReadFrame reads the next frame, waiting at most d.
func (c *Client) ReadFrame(d time.Duration) (Frame, error) {
	_ = c.Conn.SetReadDeadline(time.Now().Add(d))
	return ReadFrame(c.R)
}

// Close closes the connection without a close frame.
func (c *Client) Close() error { return c.Conn.Close() }

// Reset closes the connection with a TCP RST.
func (c *Client) Reset() { reset(c.Conn) }

func reset(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	conn.Close()
}

// Ending is how a peer's side of a connection ended, as its reader saw it.
type Ending struct {
	Data  []Frame // data frames before the end
	Close *Frame  // the close frame, nil when none came
	Err   error   // what ended the reading: io.EOF, a reset, a timeout
}

// ReadToClose reads frames until a close frame, the end of the stream or
// the deadline d. Pings are answered through pong when it is not nil;
// neither pings nor pongs are kept.
func ReadToClose(r io.Reader, conn net.Conn, d time.Duration, pong func(Frame) error) Ending {
	_ = conn.SetReadDeadline(time.Now().Add(d))
	var end Ending
	for {
		f, err := ReadFrame(r)
		if err != nil {
			end.Err = err
			return end
		}
		switch {
		case f.Op == OpClose:
			end.Close = &f
			return end
		case f.Op == OpPing:
			if pong != nil {
				_ = pong(f)
			}
		case f.Op == OpPong:
		default:
			end.Data = append(end.Data, f)
		}
	}
}

// ReadToClose reads until the close frame; see the function ReadToClose.
// Pings get masked pongs.
func (c *Client) ReadToClose(d time.Duration) Ending {
	return ReadToClose(c.R, c.Conn, d, func(p Frame) error { return c.Send(true, OpPong, p.Payload) })
}

// WaitEnd reads until the stream ends or d passes and returns the bytes
// read and the error that ended it (io.EOF, a reset, or a timeout).
func WaitEnd(r io.Reader, conn net.Conn, d time.Duration) ([]byte, error) {
	_ = conn.SetReadDeadline(time.Now().Add(d))
	b, err := io.ReadAll(r)
	if err == nil {
		err = io.EOF
	}
	return b, err
}

// IsTimeout reports whether err is a deadline expiry.
func IsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// IsEnd reports whether err means the peer closed or reset the
// connection (not a timeout).
func IsEnd(err error) bool {
	if err == nil || IsTimeout(err) {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe")
}
