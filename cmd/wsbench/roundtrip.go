package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// Phases of a round-trip run.
const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseStop
)

// runRoundTrips measures request/response round trips of small binary
// messages on many connections at once: each connection sends a message,
// waits for its echo, and loops. It also reads t's proxy CPU, and the
// whole machine's, over the measured window.
func (b *bench) runRoundTrips(t *target) (RTRound, error) {
	conns := make([]*wsConn, b.cfg.rtConns)
	for i := range conns {
		c, err := b.dialer.dial(t.ws, i, 4096, nil)
		if err != nil {
			for _, c := range conns[:i] {
				c.conn.Close()
			}
			return RTRound{}, err
		}
		conns[i] = c
	}
	var phase atomic.Int32
	samples := make([][]time.Duration, len(conns))
	errs := make([]error, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() { samples[i], errs[i] = b.rtLoop(c, i, &phase) })
	}
	time.Sleep(b.cfg.warmup)
	cpu0, busy0 := b.proxyCPU(t), b.machineBusy()
	phase.Store(phaseMeasure)
	t0 := time.Now()
	time.Sleep(b.cfg.rtDuration)
	phase.Store(phaseStop)
	elapsed := time.Since(t0)
	cpu1, busy1 := b.proxyCPU(t), b.machineBusy()
	wg.Wait()
	for _, c := range conns {
		c.closeAndWait(5 * time.Second)
	}
	if err := errors.Join(errs...); err != nil {
		return RTRound{}, err
	}
	all := slices.Concat(samples...)
	slices.Sort(all)
	return RTRound{
		PerSec:  float64(len(all)) / elapsed.Seconds(),
		P50:     Percentile(all, 50),
		P99:     Percentile(all, 99),
		P999:    Percentile(all, 99.9),
		CPU:     cpu1 - cpu0,
		Machine: busy1 - busy0,
		Trips:   int64(len(all)),
	}, nil
}

// rtLoop does round trips on c until the stop phase, recording the
// latency of those that started and ended inside the measure phase.
func (b *bench) rtLoop(c *wsConn, id int, phase *atomic.Int32) ([]time.Duration, error) {
	msg := make([]byte, b.cfg.rtSize)
	for i := range msg {
		msg[i] = byte(id + i)
	}
	buf := make([]byte, len(msg))
	out := make([]time.Duration, 0, 1<<14)
	_ = c.conn.SetDeadline(time.Now().Add(b.cfg.warmup + b.cfg.rtDuration + 30*time.Second))
	for seq := uint64(0); ; seq++ {
		p := phase.Load()
		if p == phaseStop {
			return out, nil
		}
		binary.BigEndian.PutUint64(msg, seq)
		start := time.Now()
		if err := c.writeMessage(ws.OpBinary, msg); err != nil {
			return out, fmt.Errorf("round trip %d: %w", seq, err)
		}
		n, err := c.readMessage(buf)
		if err != nil {
			return out, fmt.Errorf("round trip %d: %w", seq, err)
		}
		d := time.Since(start)
		if !bytes.Equal(buf[:n], msg) {
			return out, fmt.Errorf("round trip %d: echo differs from the message", seq)
		}
		if p == phaseMeasure && phase.Load() == phaseMeasure {
			out = append(out, d)
		}
	}
}
