package engine

import (
	"sync"
	"sync/atomic"
	"syscall"
)

// poller is one epoll set shared by every relay in the process, and the
// one goroutine that waits on it. Registrations are one-shot: an event
// disarms the fd until its leg parks again.
type poller struct {
	epfd   int
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
		fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			return
		}
		pollerInst = &poller{epfd: fd, waiting: make(map[uint64]parkedLeg)}
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
	a.epfd, a.op, a.id, a.err = p.epfd, op, id, nil
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
	epfd, op int
	id       uint64
	err      error
	fn       func(fd uintptr)
}

var armPool = sync.Pool{New: func() any {
	a := &armer{}
	a.fn = a.arm
	return a
}}

func (a *armer) arm(fd uintptr) {
	ev := syscall.EpollEvent{
		Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT,
		Fd:     int32(uint32(a.id)),
		Pad:    int32(uint32(a.id >> 32)),
	}
	a.err = syscall.EpollCtl(a.epfd, a.op, int(fd), &ev)
}

// disarm takes the leg's socket out of the set, before the socket moves
// to an event loop.
func (p *poller) disarm(l *leg) {
	_ = l.rd.sock.Control(func(fd uintptr) {
		_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(fd), &syscall.EpollEvent{})
	})
}

func (p *poller) loop() {
	events := make([]syscall.EpollEvent, 256)
	for {
		n, err := syscall.EpollWait(p.epfd, events, -1)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			return
		}
		for i := 0; i < n; i++ {
			id := uint64(uint32(events[i].Fd)) | uint64(uint32(events[i].Pad))<<32
			p.mu.Lock()
			pl, ok := p.waiting[id]
			delete(p.waiting, id)
			p.mu.Unlock()
			if ok {
				pl.s.wake(pl.l, id)
			}
		}
	}
}
