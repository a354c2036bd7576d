package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// errPeerClosed is returned by readMessage when the peer sent a close frame.
var errPeerClosed = errors.New("peer sent a close frame")

// sourceIPs spread the client's connections over several loopback source
// addresses, so source ports do not run short with ~10,000 connections per
// target and rounds that follow each other closely (see NETLAB.md).
var sourceIPs = []net.IP{
	net.IPv4(127, 0, 0, 2), net.IPv4(127, 0, 0, 3),
	net.IPv4(127, 0, 0, 4), net.IPv4(127, 0, 0, 5),
}

// wsConn is the client end of one WebSocket connection, speaking RFC 6455
// with gobwas/ws's low-level frame API: masked frames out (5.3), any frames
// in, pings answered with pongs carrying the same payload (5.5.3).
type wsConn struct {
	conn net.Conn
	br   *bufio.Reader

	wmu  sync.Mutex // one writer at a time: data frames and pongs
	wbuf []byte     // scratch for masking a payload

	// pongs counts the pings this connection answered; may be nil.
	pongs *atomic.Int64
}

// dialer holds what every connection of a run shares.
type dialer struct {
	tls     *tls.Config
	timeout time.Duration
}

// dial opens connection number i to url. readBuf sizes the connection's
// read buffer; pongs (may be nil) counts the pings it answers.
func (d *dialer) dial(url string, i, readBuf int, pongs *atomic.Int64) (*wsConn, error) {
	nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: sourceIPs[i%len(sourceIPs)]}, Timeout: d.timeout}
	wd := ws.Dialer{
		Timeout:   d.timeout,
		TLSConfig: d.tls,
		NetDial:   nd.DialContext,
	}
	// A context that is never done keeps gobwas from starting a watcher
	// goroutine per dial; Timeout bounds the dial and the handshake.
	conn, br, _, err := wd.Dial(context.Background(), url)
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", url, err)
	}
	var r io.Reader = conn
	if br != nil {
		r = io.MultiReader(br, conn) // bytes the server sent after its 101
	}
	return &wsConn{conn: conn, br: bufio.NewReaderSize(r, readBuf), pongs: pongs}, nil
}

// writeMessage sends payload as one masked frame with opcode op.
func (c *wsConn) writeMessage(op ws.OpCode, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeFrameLocked(op, payload)
}

func (c *wsConn) writeFrameLocked(op ws.OpCode, payload []byte) error {
	h := ws.Header{Fin: true, OpCode: op, Length: int64(len(payload)), Masked: true, Mask: ws.NewMask()}
	var hdr [ws.MaxHeaderSize]byte
	n := encodeHeader(hdr[:], h)
	if cap(c.wbuf) < len(payload) {
		c.wbuf = make([]byte, len(payload))
	}
	body := c.wbuf[:len(payload)]
	copy(body, payload)
	ws.Cipher(body, h.Mask, 0)
	bufs := net.Buffers{hdr[:n], body}
	_, err := bufs.WriteTo(c.conn)
	return err
}

// readMessage reads the next data message into dst and returns its length.
// Pings are answered, pongs skipped; a close frame yields errPeerClosed.
// A message longer than dst is an error.
func (c *wsConn) readMessage(dst []byte) (int, error) {
	n := 0
	for {
		h, err := ws.ReadHeader(c.br)
		if err != nil {
			return n, err
		}
		if h.OpCode.IsControl() {
			if err := c.control(h); err != nil {
				return n, err
			}
			continue
		}
		if h.Length > int64(len(dst)-n) {
			return n, fmt.Errorf("message longer than %d bytes", len(dst))
		}
		p := dst[n : n+int(h.Length)]
		if _, err := io.ReadFull(c.br, p); err != nil {
			return n, err
		}
		if h.Masked {
			ws.Cipher(p, h.Mask, 0)
		}
		n += len(p)
		if h.Fin {
			return n, nil
		}
	}
}

// control handles one control frame whose header has been read.
func (c *wsConn) control(h ws.Header) error {
	if h.Length > 125 {
		return errors.New("control frame longer than 125 bytes")
	}
	var buf [125]byte
	p := buf[:h.Length]
	if _, err := io.ReadFull(c.br, p); err != nil {
		return err
	}
	if h.Masked {
		ws.Cipher(p, h.Mask, 0)
	}
	switch h.OpCode {
	case ws.OpPing:
		c.wmu.Lock()
		err := c.writeFrameLocked(ws.OpPong, p)
		c.wmu.Unlock()
		if err == nil && c.pongs != nil {
			c.pongs.Add(1)
		}
		return err
	case ws.OpClose:
		return errPeerClosed
	}
	return nil
}

// sendClose starts the closing handshake with code 1000.
func (c *wsConn) sendClose() error {
	return c.writeMessage(ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
}

// closeAndWait sends a close frame, reads until the peer's close frame or
// EOF (at most timeout) and closes the TCP connection. Only for a
// connection that has no reader goroutine of its own.
func (c *wsConn) closeAndWait(timeout time.Duration) {
	_ = c.conn.SetDeadline(time.Now().Add(timeout))
	if c.sendClose() == nil {
		var sink [512]byte
		for {
			if _, err := c.readMessage(sink[:]); err != nil {
				break
			}
		}
	}
	_ = c.conn.Close()
}
