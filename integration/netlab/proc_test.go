package netlab

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is one process that runs inside a lab namespace.
type proc struct {
	t      *testing.T
	Name   string
	cmd    *exec.Cmd
	exited chan struct{}
	werr   error
	output *syncBuffer // stderr, and stdout unless the caller took it
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// procSpec describes a process to start in a namespace.
type procSpec struct {
	Name   string
	NS     string
	Argv   []string
	Env    []string  // added to this process's environment
	Dir    string    // working directory
	Stdout io.Writer // nil: into the captured output
	Stderr io.Writer // nil: into the captured output
	Stdin  bool      // return a pipe to its stdin
}

// startProc starts spec through `ip netns exec`, which execs the program
// in place, so the pid is the program's own. The process dies with this
// test binary (Pdeathsig) and is stopped in cleanup (stdin closed, then
// SIGTERM, then SIGKILL after 2 s); its output is logged when the test
// failed.
func startProc(t *testing.T, spec procSpec) (*proc, io.WriteCloser) {
	t.Helper()
	p := &proc{t: t, Name: spec.Name, exited: make(chan struct{}), output: &syncBuffer{}}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", spec.NS}, spec.Argv...)...)
	p.cmd.Env = append(os.Environ(), spec.Env...)
	p.cmd.Dir = spec.Dir
	p.cmd.Stdout = spec.Stdout
	if p.cmd.Stdout == nil {
		p.cmd.Stdout = p.output
	}
	p.cmd.Stderr = spec.Stderr
	if p.cmd.Stderr == nil {
		p.cmd.Stderr = p.output
	}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// Children that inherit the output (chromedriver's browser) must not
	// keep Wait from returning once the process itself is gone.
	p.cmd.WaitDelay = 2 * time.Second
	var stdin io.WriteCloser
	if spec.Stdin {
		var err error
		if stdin, err = p.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", spec.Name, err)
	}
	go func() {
		p.werr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if stdin != nil {
			// A role ends by itself when its stdin closes (the browser
			// role closes its session and chromedriver on the way out).
			stdin.Close()
			select {
			case <-p.exited:
			case <-time.After(5 * time.Second):
			}
		}
		p.stop(syscall.SIGTERM, 2*time.Second)
		if t.Failed() {
			t.Logf("%s output:\n%s", p.Name, tail(p.output.String(), 8000))
		}
	})
	return p, stdin
}

// Pid is the process id of the program (not of ip, which exec'd it).
func (p *proc) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *proc) Signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signalling %s: %v", p.Name, err)
	}
}

// Exited is closed when the process has exited.
func (p *proc) Exited() <-chan struct{} { return p.exited }

// stop sends sig, waits up to grace, then kills the process.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGCONT) // in case a test stopped it
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return "...\n" + s
}
