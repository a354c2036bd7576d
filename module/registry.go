package wsrelay

import (
	"sync"
	"time"

	"github.com/websocket-relay/websocket_relay/module/engine"
)

// registry holds the live relays of one configuration, and counts its
// upgrades under way, so that Cleanup can close them and an exit wait for
// them.
type registry struct {
	mu       sync.Mutex
	sessions map[*engine.Session]struct{}
	// upgrading counts upgrades under way, from begin until the backend's
	// 101 became a relay (add) or the upgrade ended without one (abort):
	// an exit waits for them too, as they may become relays it must close.
	upgrading int
	closing   bool
	// closed is closed when closing starts: an upgrade waiting to try
	// its upstreams again stops.
	closed chan struct{}
	// code and reason a relay added while closing gets (a drain's);
	// during an exit add gives the exit's instead (beginExit).
	code   uint16
	reason string
	empty  *sync.Cond
	// bound is how long an exit waits for the relays (their handler's
	// CloseTimeout + WriteTimeout + 1 s); deadline is set by the first
	// shutdown that finds a relay or an upgrade under way, or by the
	// first relay added during an exit, so that every exiting Cleanup
	// waits for the same instant.
	bound    time.Duration
	deadline time.Time
	warned   bool // a miss was reported already (waitShutdown)
	// stopDrain ends a drain early (when Caddy exits during one).
	stopDrain     chan struct{}
	stopDrainOnce sync.Once
}

func newRegistry(bound time.Duration) *registry {
	r := &registry{sessions: make(map[*engine.Session]struct{}), stopDrain: make(chan struct{}), closed: make(chan struct{}), bound: bound}
	r.empty = sync.NewCond(&r.mu)
	r.mu.Lock()
	r.trackLocked()
	r.mu.Unlock()
	return r
}

// idleLocked reports whether r holds no relay and no upgrade under way.
func (r *registry) idleLocked() bool { return len(r.sessions) == 0 && r.upgrading == 0 }

// trackLocked keeps r in the set an exiting Caddy closes and waits for
// while it may hold a relay: until it is closing and idle. Call with r.mu
// held.
func (r *registry) trackLocked() {
	open.Lock()
	defer open.Unlock()
	if r.closing && r.idleLocked() {
		delete(open.set, r)
	} else {
		open.set[r] = struct{}{}
	}
}

// pendingUpgrade is one upgrade under way, counted in its registry from begin
// until the first of add and abort (done is guarded by the registry's mu).
type pendingUpgrade struct{ done bool }

// begin counts an upgrade under way; add or abort ends it.
func (r *registry) begin() *pendingUpgrade {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.upgrading++
	r.trackLocked()
	return new(pendingUpgrade)
}

// endLocked ends u's count once, whichever of add and abort comes first.
func (r *registry) endLocked(u *pendingUpgrade) bool {
	if u == nil || u.done {
		return false
	}
	u.done = true
	r.upgrading--
	return true
}

// abort ends u if it did not become a relay (add); it may be called more
// than once, and after add (a deferred abort, panics included).
func (r *registry) abort(u *pendingUpgrade) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.endLocked(u) {
		r.changedLocked()
	}
}

// add registers s, the relay upgrade u became. It returns false when the
// registry is closing, with the close code and reason s must get; s is
// registered anyway so that an exit waits for it.
func (r *registry) add(u *pendingUpgrade, s *engine.Session) (ok bool, code uint16, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.endLocked(u)
	r.sessions[s] = struct{}{}
	r.trackLocked()
	if code, reason, on := exitCode(); on {
		// Whatever registry: an old one's drain may have ended before
		// a request held in earlier middleware got here. The exit
		// waits for it from here (pending), until its own deadline.
		if r.deadline.IsZero() {
			r.deadline = time.Now().Add(r.bound)
		}
		return false, code, reason
	}
	return !r.closing, r.code, r.reason
}

func (r *registry) remove(s *engine.Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.sessions, s)
	r.changedLocked()
}

// changedLocked wakes the waits once r is idle and updates its place in
// the set of open registries.
func (r *registry) changedLocked() {
	if r.idleLocked() {
		r.empty.Broadcast()
	}
	r.trackLocked()
}

// snapshot marks the registry closing with code, unless it already was,
// and returns its live relays.
func (r *registry) snapshot(code uint16, reason string) []*engine.Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closing {
		r.code, r.reason = code, reason
		close(r.closed)
	}
	r.closing = true
	r.trackLocked()
	list := make([]*engine.Session, 0, len(r.sessions))
	for s := range r.sessions {
		list = append(list, s)
	}
	return list
}

// shutdown closes every live relay with code, the exit's, at once (ending
// a drain early); relays added later get the exit's code from add, which
// their caller passes to Shutdown. The first call that finds a relay or an
// upgrade under way sets the deadline an exit waits until (waitShutdown):
// one that came to an empty registry later has its own bound.
func (r *registry) shutdown(code uint16, reason string) {
	r.stopDrainOnce.Do(func() { close(r.stopDrain) })
	r.mu.Lock()
	if r.deadline.IsZero() && !r.idleLocked() {
		r.deadline = time.Now().Add(r.bound)
	}
	r.mu.Unlock()
	for _, s := range r.snapshot(code, reason) {
		s.Shutdown(code, reason)
	}
}

// wait waits until every relay ended, and every upgrade under way ended
// too (as a relay that ended, or none), or the deadline passed; it reports
// whether all ended.
func (r *registry) wait(deadline time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	timer := time.AfterFunc(time.Until(deadline), func() {
		r.mu.Lock()
		r.empty.Broadcast()
		r.mu.Unlock()
	})
	defer timer.Stop()
	for !r.idleLocked() && time.Now().Before(deadline) {
		r.empty.Wait()
	}
	return r.idleLocked()
}

// pending reports whether r holds a relay or an upgrade under way that
// an exit is to wait for: one whose deadline has not passed.
func (r *registry) pending() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.idleLocked() && (r.deadline.IsZero() || time.Now().Before(r.deadline))
}

// waitShutdown waits for the relays, and the upgrades under way, until
// the deadline the first shutdown set. It reports whether they all
// ended, and whether this is the first report that they did not (to warn
// once).
func (r *registry) waitShutdown() (ended, firstMiss bool) {
	r.mu.Lock()
	deadline := r.deadline
	r.mu.Unlock()
	if deadline.IsZero() {
		// Empty at shutdown: what came since is the next pass's
		// (pending), with its deadline.
		return true, false
	}
	if r.wait(deadline) {
		return true, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	firstMiss = !r.warned
	r.warned = true
	return false, firstMiss
}

// drain closes the live relays with code one after another, spread evenly
// over period, so that clients do not all reconnect in the same instant.
// It returns at once. shutdown ends a drain early and closes the rest at
// once.
func (r *registry) drain(code uint16, reason string, period time.Duration) {
	list := r.snapshot(code, reason)
	if period <= 0 || len(list) <= 1 {
		for _, s := range list {
			s.Shutdown(code, reason)
		}
		return
	}
	go spread(len(list), period, r.stopDrain, func(i int) { list[i].Shutdown(code, reason) })
}

// spread calls each(i) for i from 0 to n-1, the i-th at i*period/n from
// its start, until stop closes. The times are kept to the schedule, not
// to the previous call: a wake that comes late (a machine busy with the
// closes, the closes' own cost, a timer's granularity) catches up with
// every call due by then, so the last comes within the period however
// many there are (steps relative to each wake added their overshoots,
// and 5,000 relays took 1.6 times drain_period).
func spread(n int, period time.Duration, stop <-chan struct{}, each func(i int)) {
	start := time.Now()
	step := period / time.Duration(n)
	t := time.NewTimer(0)
	defer t.Stop()
	for i := 0; i < n; {
		select {
		case <-t.C:
		case <-stop:
			return
		}
		for elapsed := time.Since(start); i < n && time.Duration(i)*step <= elapsed; i++ {
			select {
			case <-stop: // a shutdown closes the rest with its own code
				return
			default:
			}
			each(i)
		}
		if i < n {
			t.Reset(time.Until(start.Add(time.Duration(i) * step)))
		}
	}
}

// open holds every registry that may still hold a relay, or get one from
// an upgrade under way: those of the configurations loaded now (every
// handler's) and those of unloaded ones whose relays are still closing,
// so that an exiting Caddy closes them all at once and waits for all of
// them, whichever handler's Cleanup runs first.
var open = struct {
	sync.Mutex
	set map[*registry]struct{}
	// exiting is set by the first exiting Cleanup (beginExit): from then
	// on every relay, in whatever registry, gets code and reason.
	exiting bool
	code    uint16
	reason  string
}{set: make(map[*registry]struct{})}

// beginExit makes every relay from now on get code and reason, and
// returns the open registries.
func beginExit(code uint16, reason string) []*registry {
	open.Lock()
	defer open.Unlock()
	if !open.exiting {
		open.exiting, open.code, open.reason = true, code, reason
	}
	out := make([]*registry, 0, len(open.set))
	for r := range open.set {
		out = append(out, r)
	}
	return out
}

// exitCode returns the code and reason of the exit under way, if any.
func exitCode() (code uint16, reason string, exiting bool) {
	open.Lock()
	defer open.Unlock()
	return open.code, open.reason, open.exiting
}
