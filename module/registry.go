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
}

func newRegistry() *registry {
	r := &registry{sessions: make(map[*engine.Session]struct{})}
	r.empty = sync.NewCond(&r.mu)
	return r
}

// add registers s. It returns false when the registry is shutting down;
// s is registered anyway so that shutdown waits for it.
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

// count returns the number of live relays.
func (r *registry) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sessions)
}

// shutdown closes every live relay with code and waits up to wait for
// them to end. It reports whether all ended.
func (r *registry) shutdown(code uint16, reason string, wait time.Duration) bool {
	r.mu.Lock()
	r.closing = true
	for s := range r.sessions {
		s.Shutdown(code, reason)
	}
	timer := time.AfterFunc(wait, func() {
		r.mu.Lock()
		r.empty.Broadcast()
		r.mu.Unlock()
	})
	defer timer.Stop()
	deadline := time.Now().Add(wait)
	for len(r.sessions) > 0 && time.Now().Before(deadline) {
		r.empty.Wait()
	}
	ok := len(r.sessions) == 0
	r.mu.Unlock()
	return ok
}
