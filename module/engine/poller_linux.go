package engine

import (
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// poller is one epoll set shared by every relay in the process, and the
// one goroutine that waits on it. Registrations are one-shot: an event
// disarms the fd until its leg parks again.
type poller struct {
	set    *epollSet
	nextID atomic.Uint64

	mu      sync.Mutex
	waiting map[uint64]parkedLeg
}

type parkedLeg struct {
	s *Session
	l *leg
}

var (
	pollerOnce sync.Once
	pollerInst *poller
)

// thePoller starts the poller on first use; nil when epoll is unavailable.
func thePoller() *poller {
	pollerOnce.Do(func() {
		set, err := newEpollSet()
		if err != nil {
			return
		}
		pollerInst = &poller{set: set, waiting: make(map[uint64]parkedLeg)}
		go pollerInst.loop()
	})
	return pollerInst
}

func (p *poller) register(l *leg) uint64 {
	id := p.nextID.Add(1)
	p.mu.Lock()
	p.waiting[id] = parkedLeg{s: l.s, l: l}
	p.mu.Unlock()
	return id
}

func (p *poller) forget(id uint64) {
	p.mu.Lock()
	delete(p.waiting, id)
	p.mu.Unlock()
}

// arm adds the leg's socket to the set (or re-arms it) for one readiness
// event tagged with id. It runs inside RawConn.Control, so the fd cannot
// be closed and reused meanwhile.
func (p *poller) arm(l *leg, id uint64, rearm bool) error {
	op := syscall.EPOLL_CTL_ADD
	if rearm {
		op = syscall.EPOLL_CTL_MOD
	}
	a := armPool.Get().(*armer)
	a.set, a.op, a.id, a.err = p.set, op, id, nil
	err := l.rd.sock.Control(a.fn)
	if err == nil {
		err = a.err
	}
	a.err = nil // the rest are plain values, overwritten by the next use
	armPool.Put(a)
	return err
}

// armer is the scratch of one epoll_ctl call made inside
// RawConn.Control; pooled, with its callback bound once, so that arming
// allocates nothing and a leg carries none of it.
type armer struct {
	set *epollSet
	op  int
	id  uint64
	err error
	fn  func(fd uintptr)
}

var armPool = sync.Pool{New: func() any {
	a := &armer{}
	a.fn = a.arm
	return a
}}

func (a *armer) arm(fd uintptr) {
	a.err = a.set.ctl(a.op, int(fd), syscall.EPOLLIN|syscall.EPOLLRDHUP|syscall.EPOLLONESHOT, a.id)
}

// disarm takes the leg's socket out of the set, before the socket moves
// to an event loop.
func (p *poller) disarm(l *leg) {
	_ = l.rd.sock.Control(func(fd uintptr) {
		_ = p.set.ctl(syscall.EPOLL_CTL_DEL, int(fd), 0, 0)
	})
}

// loop is the poller's goroutine (its epoll set is in the runtime's
// poller, see epollSet). It ends only if the set fails.
func (p *poller) loop() {
	events := make([]syscall.EpollEvent, 256)
	_ = p.set.serve(events, time.Time{}, p.handle)
}

func (p *poller) handle(events []syscall.EpollEvent) {
	for i := range events {
		id := eventTag(&events[i])
		p.mu.Lock()
		pl, ok := p.waiting[id]
		delete(p.waiting, id)
		p.mu.Unlock()
		if ok {
			pl.s.wake(pl.l, id)
		}
	}
}
