//go:build linux

package engine

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// TestLoopBatchBothSidesReady: a batch that holds both sockets of one
// relay reads both: the second after the first, in the same wait. Left
// for the next wait, the second would be reported again after the first
// (level-triggered epoll puts a reported item back at the tail of its
// ready list in the order reported), so while the first stayed readable
// the second was never read: a busy upload held back every message the
// backend sent. The test takes the relay's sockets out of its loop's
// epoll set and runs one batch of their two events itself, on a loop of
// its own (a ring serves the thread that made it).
func TestLoopBatchBothSidesReady(t *testing.T) {
	if !uringWorks() {
		t.Skip("no io_uring on this machine: the loops read each socket the plain way")
	}
	h := startTCP(t, loopConfig())
	waitOnLoop(t, h.session, 2*time.Second)
	s := h.session
	s.loopMu.Lock()
	lp, fds, id := s.lp, s.fds, s.loopID
	for _, fd := range fds {
		_ = lp.ctl(syscall.EPOLL_CTL_DEL, fd, 0)
	}
	s.loopMu.Unlock()
	up := ws.MaskFrame(ws.NewTextFrame([]byte("from the client")))
	down := ws.NewTextFrame([]byte("from the backend"))
	h.client.writeRaw(mustCompile(t, up))
	h.backend.writeRaw(mustCompile(t, down))
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(time.Millisecond) {
		if ioctlInt(uintptr(fds[Client]), siocInq) > 0 && ioctlInt(uintptr(fds[Backend]), siocInq) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the frames did not reach the relay's sockets")
		}
	}
	func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		own := &evloop{on: map[uint64]*Session{id: s}, buf: make([]byte, blockSize), ring: newUring(uringEntries)}
		defer own.closeRing()
		tag := func(side Side) syscall.EpollEvent {
			v := id<<1 | uint64(side)
			return syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(uint32(v)), Pad: int32(uint32(v >> 32))}
		}
		own.batch([]syscall.EpollEvent{tag(Client), tag(Backend)})
	}()
	sameFrame(t, h.backend.next(2*time.Second), up)
	sameFrame(t, h.client.next(2*time.Second), down)
	s.loopMu.Lock()
	for i, fd := range fds {
		_ = lp.ctl(syscall.EPOLL_CTL_ADD, fd, id<<1|uint64(i))
	}
	s.loopMu.Unlock()
	echoRounds(t, h, 5)
	closeBoth(t, h)
}

// TestUringSubmitShortConsumption: io_uring_enter may take fewer
// entries than offered (it returns how many it took: a request it could
// not allocate, an entry it refused, which completes with its error);
// the rest stay in the SQ. submit offers them again and waits only for
// completions of entries taken (it waited for all, so forever, in a
// RawSyscall that keeps the loop's thread's P: the next stop-the-world
// would have waited too). An entry the kernel refuses makes it take
// fewer here. Run in a child process, killed if submit does not return.
func TestUringSubmitShortConsumption(t *testing.T) {
	if os.Getenv("WSRELAY_URING_CHILD") == "1" {
		runtime.LockOSThread()
		u := newUring(8)
		if u == nil {
			fmt.Println("NO-URING")
			return
		}
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		u.prep(uringOpRecv, int32(fds[0]), buf, 0) // EAGAIN at once
		u.prep(0xee, int32(fds[0]), buf, 1)        // refused: the kernel stops here
		u.prep(uringOpRecv, int32(fds[0]), buf, 2)
		var results [3]int32
		for i := range results {
			results[i] = noResult
		}
		ok, taken := u.submit(results[:])
		fmt.Println("RETURNED", ok, taken, results)
		return
	}
	if !uringWorks() {
		t.Skip("no io_uring")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestUringSubmitShortConsumption$", "-test.v")
	cmd.Env = append(os.Environ(), "WSRELAY_URING_CHILD=1")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("submit did not return in 5 s after the kernel consumed fewer entries than asked (child killed):\n%s", out)
	}
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
}
