package main

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// idleConn is one idle client connection with its own reader goroutine,
// which answers the proxy's pings and reports echoes.
type idleConn struct {
	*wsConn
	id   int
	echo chan error // one result per message sent
	done chan struct{}
}

// idleMsg is the message connection id sends to check it is alive.
func idleMsg(id int) []byte { return fmt.Appendf(nil, "wsbench idle connection %06d", id) }

func (c *idleConn) readLoop() {
	defer close(c.done)
	defer c.conn.Close()
	var buf [256]byte
	want := idleMsg(c.id)
	for {
		n, err := c.readMessage(buf[:])
		if err != nil {
			return // closed by us, by the peer, or broken: echo() times out
		}
		var res error
		if !bytes.Equal(buf[:n], want) {
			res = fmt.Errorf("connection %d: echo differs from the message", c.id)
		}
		select {
		case c.echo <- res:
		default:
		}
	}
}

// roundTrip sends the connection's message and waits for its echo.
func (c *idleConn) roundTrip(timeout time.Duration) error {
	select {
	case <-c.echo: // a late echo of an earlier message
	default:
	}
	if err := c.writeMessage(ws.OpText, idleMsg(c.id)); err != nil {
		return err
	}
	select {
	case err := <-c.echo:
		return err
	case <-c.done:
		return errors.New("connection closed")
	case <-time.After(timeout):
		return errors.New("no echo in time")
	}
}

// idlePool is a set of idle connections to one URL.
type idlePool struct {
	d     *dialer
	url   string
	pongs atomic.Int64
	conns []*idleConn
}

// grow opens connections until the pool holds n, 64 dials at a time.
// It returns the first dial error, if any, after trying them all.
func (p *idlePool) grow(n int) error {
	start := len(p.conns)
	if n <= start {
		return nil
	}
	fresh := make([]*idleConn, n-start)
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errMu    sync.Mutex
		firstErr error
		failed   int
	)
	for range 64 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(fresh) {
					return
				}
				id := start + i
				wc, err := p.d.dial(p.url, id, 512, &p.pongs)
				if err != nil {
					errMu.Lock()
					failed++
					if firstErr == nil {
						firstErr = err
					}
					errMu.Unlock()
					continue
				}
				c := &idleConn{wsConn: wc, id: id, echo: make(chan error, 1), done: make(chan struct{})}
				go c.readLoop()
				fresh[i] = c
			}
		})
	}
	wg.Wait()
	for _, c := range fresh {
		if c != nil {
			p.conns = append(p.conns, c)
		}
	}
	if firstErr != nil {
		return fmt.Errorf("%d of %d dials failed, first: %w", failed, len(fresh), firstErr)
	}
	return nil
}

// roundTripAll exchanges one message on every connection, 256 at a time,
// and returns how many echoed it correctly.
func (p *idlePool) roundTripAll() int {
	var ok, next atomic.Int64
	var wg sync.WaitGroup
	for range 256 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(p.conns) {
					return
				}
				if p.conns[i].roundTrip(15*time.Second) == nil {
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return int(ok.Load())
}

// close starts the closing handshake on every connection and waits for
// the readers to finish (the peer's close frame or EOF), at most 20 s.
func (p *idlePool) close() {
	for _, c := range p.conns {
		_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_ = c.sendClose()
	}
	expired, late := time.After(20*time.Second), false
	for _, c := range p.conns {
		if !late {
			select {
			case <-c.done:
				continue
			case <-expired:
				late = true
			}
		}
		_ = c.conn.Close()
		<-c.done
	}
	p.conns = nil
}

// idleCounts are the connection counts at which memory is measured.
func idleCounts(n int) []int {
	var out []int
	for _, c := range []int{n / 10, n * 3 / 10, n} {
		if c > 0 && (len(out) == 0 || c > out[len(out)-1]) {
			out = append(out, c)
		}
	}
	return out
}

// idleCountsTLS are the connection counts of the wss idle measurement of n
// connections: the counts of the ws measurement of nWS below n, then n, so
// that the two line up at the same counts (a proxy's fixed costs weigh
// more per connection at a smaller count).
func idleCountsTLS(nWS, n int) []int {
	var out []int
	for _, c := range idleCounts(nWS) {
		if c < n {
			out = append(out, c)
		}
	}
	return append(out, n)
}

// sample is one reading of a proxy's memory and goroutines.
type sample struct{ rss, gor float64 }

func (b *bench) sample(t *target) (sample, error) {
	rss, err := readRSS(t.proc.pid)
	if err != nil {
		return sample{}, err
	}
	s := sample{rss: rss, gor: math.NaN()}
	if t.proc.admin != "" {
		if s.gor, err = readGoroutines(t.proc.admin); err != nil {
			return sample{}, err
		}
	}
	return s, nil
}

// perConn returns the growth from base to s per connection.
func perConn(base, s sample, n int) (kib, gor float64) {
	return (s.rss - base.rss) / float64(n), (s.gor - base.gor) / float64(n)
}

// runIdle opens idle connections to url (a site of t) in steps up to each
// of counts, reading t's memory and goroutines after each step has
// settled, then again after one message on each connection, and finally
// checks that every connection still echoes. name names the measurement in
// notes and the log.
func (b *bench) runIdle(t *target, name, url string, counts []int) (IdleRound, error) {
	b.settle()
	base, err := b.sample(t)
	if err != nil {
		return IdleRound{}, err
	}
	pool := &idlePool{d: b.dialer, url: url}
	defer pool.close()
	var r IdleRound
	for _, c := range counts {
		start := time.Now()
		if err := pool.grow(c); err != nil {
			return r, err
		}
		b.logf("idle %s: %d open (%.1fs to open)", name, len(pool.conns), time.Since(start).Seconds())
		b.settle()
		s, err := b.sample(t)
		if err != nil {
			return r, err
		}
		kib, gor := perConn(base, s, len(pool.conns))
		r.Counts = append(r.Counts, len(pool.conns))
		r.KiB = append(r.KiB, kib)
		r.Goroutines = append(r.Goroutines, gor)
	}
	r.Opened = len(pool.conns)
	if ok := pool.roundTripAll(); ok != r.Opened {
		b.notef("idle %s: %d of %d connections did not echo their first message", name, r.Opened-ok, r.Opened)
	}
	b.settle()
	s, err := b.sample(t)
	if err != nil {
		return r, err
	}
	r.AfterMsgKiB, r.AfterMsgGoroutines = perConn(base, s, r.Opened)
	r.Alive = pool.roundTripAll()
	return r, nil
}

// runPing holds idle connections on the relay's ping_interval 1s site and
// measures the relay's CPU time per ping/pong exchange over a window.
func (b *bench) runPing(t *target) (PingRound, error) {
	pool := &idlePool{d: b.dialer, url: t.ping}
	defer pool.close()
	if err := pool.grow(b.cfg.idleConns); err != nil {
		return PingRound{}, err
	}
	b.settle() // at least one ping interval: every connection is pinged
	cpu0, err := readCPU(t.proc.pid)
	if err != nil {
		return PingRound{}, err
	}
	pongs0, start := pool.pongs.Load(), time.Now()
	time.Sleep(b.cfg.pingWindow)
	cpu1, err := readCPU(t.proc.pid)
	if err != nil {
		return PingRound{}, err
	}
	r := PingRound{
		Conns:     len(pool.conns),
		CPU:       cpu1 - cpu0,
		Exchanges: pool.pongs.Load() - pongs0,
		Window:    time.Since(start).Seconds(),
	}
	r.Alive = pool.roundTripAll()
	return r, nil
}
