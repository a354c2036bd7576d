package wsrelay

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"go.uber.org/zap"

	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
	"github.com/websocket-relay/websocket_relay/module/upgrade"
)

// healthChecker runs a handler's active health checks: started by
// Provision and stopped by Cleanup, one goroutine per upstream checks it
// every interval, each on its own, so that an upstream slow to answer
// holds back no other's checks, and marks it healthy or not in the pool.
type healthChecker struct {
	h      *Handler
	cfg    *relayconfig.HealthChecks
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// streak is, for each upstream, how many checks in a row disagreed
	// with its state; only the upstream's own goroutine touches it.
	streak []int
}

// startHealthChecks starts h's health checks, if it has any.
func (h *Handler) startHealthChecks() {
	if h.HealthChecks == nil || h.pool == nil || h.HealthChecks.Validate() != nil {
		return // none, or Validate refuses them after Provision
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &healthChecker{h: h, cfg: h.HealthChecks, cancel: cancel, streak: make([]int, len(h.pool.list))}
	h.health = c
	for i := range h.pool.list {
		c.wg.Go(func() { c.run(ctx, i) })
	}
}

// stop ends the checks and waits for their goroutines; checks under way
// end at once.
func (c *healthChecker) stop() {
	c.cancel()
	c.wg.Wait()
}

// run checks upstream i at once and then every interval, until ctx
// ends. A check longer than the interval delays the next one.
func (c *healthChecker) run(ctx context.Context, i int) {
	t := time.NewTicker(time.Duration(c.cfg.Interval))
	defer t.Stop()
	for {
		err := c.check(ctx, c.h.pool.list[i])
		if ctx.Err() != nil {
			return // a check cut by Cleanup says nothing
		}
		c.record(i, err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// record takes one check's result for upstream i: Fails failures in a
// row make a healthy upstream unhealthy, Passes passes an unhealthy one
// healthy.
func (c *healthChecker) record(i int, err error) {
	p := c.h.pool
	healthy := !p.unhealthy[i].Load()
	if (err == nil) == healthy {
		c.streak[i] = 0
		return
	}
	c.streak[i]++
	need := c.cfg.Fails
	if !healthy {
		need = c.cfg.Passes
	}
	if c.streak[i] < need {
		return
	}
	c.streak[i] = 0
	p.unhealthy[i].Store(healthy)
	up := p.list[i].Raw
	if healthy {
		c.h.logger.Warn("upstream unhealthy", zap.String("upstream", up), zap.Int("checks_failed", need), zap.Error(err))
	} else {
		c.h.logger.Info("upstream healthy", zap.String("upstream", up), zap.Int("checks_passed", need))
	}
}

// check asks up for the health URI within the timeout: a GET whose
// answer must have the expected status, or with Upgrade a WebSocket
// upgrade whose 101 must be valid, closed at once with 1001.
func (c *healthChecker) check(ctx context.Context, up relayconfig.Upstream) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(c.cfg.Timeout))
	defer cancel()
	conn, err := c.h.dialOne(ctx, up)
	if err != nil {
		return fmt.Errorf("dialing: %w", err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(aLongTimeAgo) })
	defer stop()
	req, key := c.request(up)
	bw := bufio.NewWriterSize(conn, 512)
	br := bufio.NewReaderSize(conn, 4096)
	resp, err := upgrade.Exchange(bw, br, req, key)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if !c.cfg.StatusOK(resp.StatusCode) {
		return fmt.Errorf("answered %d, want %s", resp.StatusCode, c.wantStatus())
	}
	if c.cfg.Upgrade && resp.StatusCode == http.StatusSwitchingProtocols {
		// As a client leaves: a masked close frame, unanswered.
		f := ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, "health check")))
		_ = ws.WriteFrame(conn, f)
	}
	// The body is not read: the status says it, and the connection
	// (Connection: close) is closed now.
	return nil
}

// request is the check's request to up: the health URI under the
// upstream's path and with its Host, as a client's upgrade goes, and
// the upgrade's key (empty for a GET).
func (c *healthChecker) request(up relayconfig.Upstream) (*http.Request, string) {
	u, _ := url.ParseRequestURI(c.cfg.URI) // checked by Validate
	r := &http.Request{Method: http.MethodGet, URL: u, Header: http.Header{}}
	if up.Network == "unix" {
		r.Host = "localhost" // a socket's path is no host
	}
	key := ""
	if c.cfg.Upgrade {
		key = upgrade.NewKey()
		r.Header.Set("Sec-WebSocket-Version", "13")
		r.Header.Set("Sec-WebSocket-Key", key)
	}
	out := backendRequest(r, up, nil)
	if !c.cfg.Upgrade {
		for _, k := range []string{"Upgrade", "Sec-WebSocket-Version", "Sec-WebSocket-Key"} {
			out.Header.Del(k)
		}
		out.Header.Set("Connection", "close")
	}
	out.Header.Set("User-Agent", "websocket_relay health check")
	return out, key
}

func (c *healthChecker) wantStatus() string {
	if c.cfg.ExpectStatus < 10 {
		return fmt.Sprintf("%dxx", c.cfg.ExpectStatus)
	}
	return fmt.Sprint(c.cfg.ExpectStatus)
}
