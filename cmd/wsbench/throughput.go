package main

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// pattern is the data messages are cut from: message seq of size n is
// pattern[offset(seq):][:n], so every echo can be checked byte for byte
// without keeping what was sent.
type pattern struct {
	data []byte
	size int
}

func newPattern(size int) *pattern {
	r := rand.New(rand.NewChaCha8([32]byte{byte(size), byte(size >> 8), byte(size >> 16)}))
	data := make([]byte, 2*size)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	return &pattern{data: data, size: size}
}

// message returns the payload of message seq.
func (p *pattern) message(seq int) []byte {
	off := (seq * 7919) % p.size
	return p.data[off : off+p.size]
}

// tpConn is one connection of a throughput run: a writer keeps window
// messages in flight, a reader checks each echo and counts its bytes.
type tpConn struct {
	c       *wsConn
	pat     *pattern
	credits chan struct{}
	counted *atomic.Int64 // bytes echoed, shared by the run's connections
}

// write sends messages while credits allow, until stop is closed, then an
// empty message that tells the reader the stream has ended.
func (t *tpConn) write(stop <-chan struct{}) error {
	for seq := 0; ; seq++ {
		select {
		case <-stop:
			return t.c.writeMessage(ws.OpBinary, nil)
		case t.credits <- struct{}{}:
		}
		if err := t.c.writeMessage(ws.OpBinary, t.pat.message(seq)); err != nil {
			return err
		}
	}
}

// read checks every echo against the pattern until the empty message.
func (t *tpConn) read() error {
	buf := make([]byte, t.pat.size)
	for seq := 0; ; seq++ {
		n, err := t.c.readMessage(buf)
		if err != nil {
			return fmt.Errorf("reading echo %d: %w", seq, err)
		}
		if n == 0 {
			return nil
		}
		if n != t.pat.size || !bytes.Equal(buf[:n], t.pat.message(seq)) {
			return fmt.Errorf("echo %d differs from message %d (%d bytes)", seq, seq, n)
		}
		t.counted.Add(int64(n))
		<-t.credits
	}
}

// runThroughput measures MiB/s of echoed payload through url (a site of
// t) with size-byte binary messages, after a warm-up, and t's proxy CPU
// over the same window.
func (b *bench) runThroughput(t *target, url string, size int, tlsInfo *string) (TPRound, error) {
	pat := b.patterns[size]
	var counted atomic.Int64
	conns := make([]*tpConn, b.cfg.tpConns)
	for i := range conns {
		c, err := b.dialer.dial(url, i, 64<<10, nil)
		if err != nil {
			for _, tc := range conns[:i] {
				tc.c.conn.Close()
			}
			return TPRound{}, err
		}
		if tc, ok := c.conn.(*tls.Conn); ok && tlsInfo != nil {
			st := tc.ConnectionState()
			*tlsInfo = tls.VersionName(st.Version) + " " + tls.CipherSuiteName(st.CipherSuite)
		}
		conns[i] = &tpConn{c: c, pat: pat, credits: make(chan struct{}, b.cfg.tpWindow), counted: &counted}
	}
	stop := make(chan struct{})
	errs := make(chan error, 2*len(conns))
	var wg sync.WaitGroup
	for _, tc := range conns {
		wg.Go(func() { errs <- tc.write(stop) })
		wg.Go(func() { errs <- tc.read() })
	}
	time.Sleep(b.cfg.warmup)
	cpu0, busy0 := b.proxyCPU(t), b.machineBusy()
	b0, t0 := counted.Load(), time.Now()
	time.Sleep(b.cfg.tpDuration)
	b1, elapsed := counted.Load(), time.Since(t0)
	cpu1, busy1 := b.proxyCPU(t), b.machineBusy()
	close(stop)
	for _, tc := range conns {
		// Bounds the wait for the last echoes if a side has failed.
		_ = tc.c.conn.SetDeadline(time.Now().Add(30 * time.Second))
	}
	wg.Wait()
	close(errs)
	var err error
	for e := range errs {
		err = errors.Join(err, e)
	}
	for _, tc := range conns {
		tc.c.closeAndWait(5 * time.Second)
	}
	if err != nil {
		return TPRound{}, err
	}
	return TPRound{MiBps: float64(b1-b0) / elapsed.Seconds() / (1 << 20), CPU: cpu1 - cpu0, Machine: busy1 - busy0, Bytes: b1 - b0}, nil
}
