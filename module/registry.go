package wsrelay

import (
	"sync"
	"time"

	"github.com/websocket-relay/websocket_relay/module/engine"
)

// registry holds the live relays of one configuration so that Cleanup
// can close them.
type registry struct {
	mu       sync.Mutex
	sessions map[*engine.Session]struct{}
	closing  bool
	empty    *sync.Cond
	// stopDrain ends a drain early (when Caddy exits during one).
	stopDrain     chan struct{}
	stopDrainOnce sync.Once
}

func newRegistry() *registry {
	r := &registry{sessions: make(map[*engine.Session]struct{}), stopDrain: make(chan struct{})}
	r.empty = sync.NewCond(&r.mu)
	return r
}

// add registers s. It returns false when the registry is closing; s is
// registered anyway so that shutdown waits for it.
func (r *registry) add(s *engine.Session) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sessions[s] = struct{}{}
	return !r.closing
}

func (r *registry) remove(s *engine.Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.sessions, s)
	if len(r.sessions) == 0 {
		r.empty.Broadcast()
	}
}

// snapshot marks the registry closing and returns its live relays.
func (r *registry) snapshot() []*engine.Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closing = true
	list := make([]*engine.Session, 0, len(r.sessions))
	for s := range r.sessions {
		list = append(list, s)
	}
	return list
}

// shutdown closes every live relay with code at once (ending a drain
// early); wait then waits for them to end.
func (r *registry) shutdown(code uint16, reason string) {
	r.stopDrainOnce.Do(func() { close(r.stopDrain) })
	for _, s := range r.snapshot() {
		s.Shutdown(code, reason)
	}
}

// wait waits until every relay ended or the deadline passed, and reports
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
	for len(r.sessions) > 0 && time.Now().Before(deadline) {
		r.empty.Wait()
	}
	return len(r.sessions) == 0
}

// drain closes the live relays with code one after another, spread evenly
// over period, so that clients do not all reconnect in the same instant.
// It returns at once; done is called when the last close was started.
// shutdown ends a drain early and closes the rest at once.
func (r *registry) drain(code uint16, reason string, period time.Duration, done func()) {
	list := r.snapshot()
	if period <= 0 || len(list) <= 1 {
		for _, s := range list {
			s.Shutdown(code, reason)
		}
		done()
		return
	}
	step := period / time.Duration(len(list))
	go func() {
		defer done()
		t := time.NewTimer(0)
		defer t.Stop()
		for _, s := range list {
			select {
			case <-t.C:
			case <-r.stopDrain:
				return
			}
			s.Shutdown(code, reason)
			t.Reset(step)
		}
	}()
}

// draining holds the registries of unloaded configurations whose relays
// are still being closed, so that an exiting Caddy closes them too.
var draining = struct {
	sync.Mutex
	set map[*registry]struct{}
}{set: make(map[*registry]struct{})}

func addDraining(r *registry) {
	draining.Lock()
	draining.set[r] = struct{}{}
	draining.Unlock()
}

func removeDraining(r *registry) {
	draining.Lock()
	delete(draining.set, r)
	draining.Unlock()
}

func drainingRegistries() []*registry {
	draining.Lock()
	defer draining.Unlock()
	out := make([]*registry, 0, len(draining.set))
	for r := range draining.set {
		out = append(out, r)
	}
	return out
}
