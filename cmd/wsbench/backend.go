package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"

	"github.com/gobwas/ws"
)

// The echo backend runs in its own process (`wsbench backend`), so its CPU
// and memory are neither the client's nor the proxy's. It echoes every data
// frame as it arrives, frame by frame and in bounded memory (no message
// buffering), answers pings, and answers a close frame with the same code
// and then closes TCP first, so TIME_WAIT lands on its fixed port rather than
// on the ephemeral ports of the proxies and the client.

// backendStats is what GET /stats answers.
type backendStats struct {
	Open int64 `json:"open"`
}

// runBackend is the `backend` subcommand: it listens, prints
// "listening <addr>" on stdout and serves until killed.
func runBackend(args []string) error {
	fs := flag.NewFlagSet("backend", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	raiseFileLimit()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("backend: listening on %s: %w", *listen, err)
	}
	var open atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/stats", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(backendStats{Open: open.Load()})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		conn, rw, _, err := ws.UpgradeHTTP(r, w)
		if err != nil {
			return // UpgradeHTTP has answered with an error status
		}
		open.Add(1)
		defer open.Add(-1)
		defer conn.Close()
		_ = echo(conn, rw.Reader)
	})
	fmt.Printf("listening %s\n", ln.Addr())
	_ = os.Stdout.Sync()
	return http.Serve(ln, mux)
}

// chunkPool holds the payload buffers of frames being echoed.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// echo sends every frame read from br back on conn until a close frame, EOF
// or an error. Data frames keep their opcode, FIN and RSV bits and length;
// their payload is unmasked (a server's frames are not masked).
func echo(conn net.Conn, br *bufio.Reader) error {
	var hdr [ws.MaxHeaderSize]byte
	for {
		h, err := ws.ReadHeader(br)
		if err != nil {
			return err
		}
		if h.OpCode.IsControl() {
			if done, err := echoControl(conn, br, h); done || err != nil {
				return err
			}
			continue
		}
		out := ws.Header{Fin: h.Fin, Rsv: h.Rsv, OpCode: h.OpCode, Length: h.Length}
		n := encodeHeader(hdr[:], out)
		if err := copyPayload(conn, br, h, hdr[:n]); err != nil {
			return err
		}
	}
}

// copyPayload streams the payload of the frame h from br to w in chunks,
// unmasking it, with head written before the first chunk (one writev).
func copyPayload(w net.Conn, br *bufio.Reader, h ws.Header, head []byte) error {
	bp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bp)
	buf := *bp
	left, off := h.Length, 0
	for first := true; first || left > 0; first = false {
		n := int(min(left, int64(len(buf))))
		if _, err := io.ReadFull(br, buf[:n]); err != nil {
			return err
		}
		if h.Masked {
			ws.Cipher(buf[:n], h.Mask, off)
		}
		var err error
		if first {
			bufs := net.Buffers{head, buf[:n]}
			_, err = bufs.WriteTo(w)
		} else {
			_, err = w.Write(buf[:n])
		}
		if err != nil {
			return err
		}
		left -= int64(n)
		off += n
	}
	return nil
}

// echoControl handles a control frame: a ping gets its pong, a close gets a
// close with the same code and ends the connection (done).
func echoControl(w io.Writer, br *bufio.Reader, h ws.Header) (done bool, err error) {
	if h.Length > 125 {
		return true, errors.New("control frame too long")
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(br, p); err != nil {
		return true, err
	}
	if h.Masked {
		ws.Cipher(p, h.Mask, 0)
	}
	switch h.OpCode {
	case ws.OpPing:
		return false, ws.WriteFrame(w, ws.NewPongFrame(p))
	case ws.OpClose:
		if len(p) > 2 {
			p = p[:2] // same code, no reason
		}
		return true, ws.WriteFrame(w, ws.NewCloseFrame(p))
	}
	return false, nil // a pong: nothing to do
}

// encodeHeader writes h into b (at least ws.MaxHeaderSize long) and returns
// its length.
func encodeHeader(b []byte, h ws.Header) int {
	w := fixedWriter{b: b}
	_ = ws.WriteHeader(&w, h)
	return w.n
}

// fixedWriter writes into a fixed buffer without allocating.
type fixedWriter struct {
	b []byte
	n int
}

func (f *fixedWriter) Write(p []byte) (int, error) {
	n := copy(f.b[f.n:], p)
	f.n += n
	if n < len(p) {
		return n, io.ErrShortWrite
	}
	return n, nil
}
