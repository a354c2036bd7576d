package integration

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// frame is one WebSocket frame: its header as it was on the wire and its
// payload, unmasked.
type frame struct {
	ws.Header
	Payload []byte
}

// readFrame reads one whole frame from r and unmasks its payload.
func readFrame(r io.Reader) (frame, error) {
	h, err := ws.ReadHeader(r)
	if err != nil {
		return frame{}, err
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(r, p); err != nil {
		return frame{}, err
	}
	if h.Masked {
		ws.Cipher(p, h.Mask, 0)
	}
	return frame{Header: h, Payload: p}, nil
}

// writeFrame writes f whole; when f.Masked, the payload is masked with
// f.Mask on the way (f.Payload itself is left as it is).
func writeFrame(w io.Writer, f frame) error {
	f.Length = int64(len(f.Payload))
	if err := ws.WriteHeader(w, f.Header); err != nil {
		return err
	}
	p := f.Payload
	if f.Masked {
		p = append([]byte(nil), p...)
		ws.Cipher(p, f.Mask, 0)
	}
	_, err := w.Write(p)
	return err
}

// rawClient is a WebSocket client that sees every frame: it answers
// nothing by itself, so a test decides whether relay pings get pongs.
type rawClient struct {
	Conn net.Conn
	r    io.Reader
	wmu  sync.Mutex
}

// dialRaw opens a WebSocket to url with gobwas/ws; tlsCfg is used for wss.
func dialRaw(t *testing.T, url string, tlsCfg *tls.Config, hdr http.Header) *rawClient {
	t.Helper()
	d := ws.Dialer{Timeout: 10 * time.Second, TLSConfig: tlsCfg}
	if hdr != nil {
		d.Header = ws.HandshakeHeaderHTTP(hdr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, br, _, err := d.Dial(ctx, url)
	if err != nil {
		t.Fatalf("raw dial %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawClient{Conn: conn, r: conn}
	if br != nil {
		c.r = br
	}
	return c
}

// Write sends one masked frame with a fresh mask key and returns the
// frame as written (with its mask key).
func (c *rawClient) Write(fin bool, op ws.OpCode, payload []byte) (frame, error) {
	f := frame{Header: ws.Header{Fin: fin, OpCode: op, Masked: true, Mask: ws.NewMask()}, Payload: payload}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.Conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return f, writeFrame(c.Conn, f)
}

// MustWrite is Write that fails the test on error.
func (c *rawClient) MustWrite(t *testing.T, fin bool, op ws.OpCode, payload []byte) frame {
	t.Helper()
	f, err := c.Write(fin, op, payload)
	if err != nil {
		t.Fatalf("raw client writing %v frame: %v", op, err)
	}
	return f
}

// Read reads the next frame, waiting at most d.
func (c *rawClient) Read(d time.Duration) (frame, error) {
	c.Conn.SetReadDeadline(time.Now().Add(d))
	return readFrame(c.r)
}

// MustRead is Read that fails the test on error.
func (c *rawClient) MustRead(t *testing.T, d time.Duration) frame {
	t.Helper()
	f, err := c.Read(d)
	if err != nil {
		t.Fatalf("raw client reading a frame: %v", err)
	}
	return f
}

// ReadData reads frames until a data frame arrives, answering pings with
// pongs on the way, and returns the data frame and the pings seen.
func (c *rawClient) ReadData(t *testing.T, d time.Duration) (frame, []frame) {
	t.Helper()
	deadline := time.Now().Add(d)
	var pings []frame
	for {
		f, err := c.Read(time.Until(deadline))
		if err != nil {
			t.Fatalf("raw client waiting for a data frame: %v", err)
		}
		switch f.OpCode {
		case ws.OpPing:
			pings = append(pings, f)
			c.MustWrite(t, true, ws.OpPong, f.Payload)
		case ws.OpPong:
		default:
			return f, pings
		}
	}
}

// rawBackendConn is the backend side of a /frames connection.
type rawBackendConn struct {
	Req    *http.Request
	Frames chan frame // every frame received, with its header as on the wire
	Done   chan struct{}
}

// serveRawFrames upgrades with gobwas/ws and echoes frame by frame: every
// frame goes back with the same FIN, RSV, opcode and payload, unmasked.
// After echoing a close frame it closes the connection.
func (a *app) serveRawFrames(w http.ResponseWriter, r *http.Request) {
	conn, rw, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		a.t.Logf("raw backend upgrade failed: %v", err)
		return
	}
	rb := &rawBackendConn{Req: r.Clone(r.Context()), Frames: make(chan frame, 1024), Done: make(chan struct{})}
	a.Accepted.Add(1)
	a.rawCh(r.URL.Path) <- rb
	defer close(rb.Done)
	defer conn.Close()
	for {
		f, err := readFrame(rw.Reader)
		if err != nil {
			return
		}
		rb.Frames <- f
		out := frame{Header: ws.Header{Fin: f.Fin, Rsv: f.Rsv, OpCode: f.OpCode}, Payload: f.Payload}
		if bad, ok := badBackendFrames[string(f.Payload)]; ok && f.OpCode == ws.OpText {
			out = bad
		}
		if err := writeFrame(conn, out); err != nil {
			return
		}
		if f.OpCode == ws.OpClose {
			return
		}
	}
}

// badBackendFrames are the protocol violations the raw backend sends when
// it receives their name as a text message.
var badBackendFrames = map[string]frame{
	"send reserved opcode": {Header: ws.Header{Fin: true, OpCode: 0xB}, Payload: []byte("x")},
	"send masked frame":    {Header: ws.Header{Fin: true, OpCode: ws.OpText, Masked: true, Mask: [4]byte{1, 2, 3, 4}}, Payload: []byte("masked")},
}

// WriteFrame writes f as it is (masked only when f.Masked), so that a test
// can send frames that break the protocol.
func (c *rawClient) WriteFrame(f frame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.Conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return writeFrame(c.Conn, f)
}

// acceptRaw waits for the next /frames connection on path.
func (a *app) acceptRaw(t *testing.T, path string) *rawBackendConn {
	t.Helper()
	select {
	case rb := <-a.rawCh(path):
		return rb
	case <-time.After(10 * time.Second):
		t.Fatal("the raw backend accepted no connection within 10s")
		return nil
	}
}

// next returns the next frame the raw backend received, waiting up to d.
func (rb *rawBackendConn) next(t *testing.T, d time.Duration) frame {
	t.Helper()
	select {
	case f := <-rb.Frames:
		return f
	case <-time.After(d):
		t.Fatalf("the raw backend received no frame within %v", d)
		return frame{}
	}
}
