package wsrelay

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// blockingWriter is a stream's response writer whose writes block until
// a past write deadline is set (as HTTP/2's reset ends them); it counts
// the deadlines the controller hands it.
type blockingWriter struct {
	hdr       http.Header
	cut       chan struct{}
	writes    atomic.Int32
	deadlines atomic.Int32
}

func (b *blockingWriter) Header() http.Header { return b.hdr }
func (b *blockingWriter) WriteHeader(int)     {}
func (b *blockingWriter) Write(p []byte) (int, error) {
	b.writes.Add(1)
	<-b.cut
	return 0, errors.New("http2: stream closed")
}
func (b *blockingWriter) FlushError() error { return nil }
func (b *blockingWriter) SetWriteDeadline(t time.Time) error {
	b.deadlines.Add(1)
	if !t.IsZero() && t.Before(time.Now()) {
		close(b.cut)
	}
	return nil
}
func (b *blockingWriter) SetReadDeadline(time.Time) error { return nil }

// TestStreamConnDeadlines: a write deadline passing between writes does
// nothing (HTTP/2 would reset the stream); one passing during a write
// cuts it as a timeout; Close ends a write under way, and no write starts
// after it.
func TestStreamConnDeadlines(t *testing.T) {
	bw := &blockingWriter{hdr: http.Header{}, cut: make(chan struct{})}
	r, _ := http.NewRequest(http.MethodConnect, "https://x/", io.NopCloser(nil))
	c := newStreamConn(r, bw, http.NewResponseController(bw))
	_ = c.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	time.Sleep(50 * time.Millisecond)
	if n := bw.deadlines.Load(); n != 0 {
		t.Fatalf("%d deadlines handed to the stream with no write under way", n)
	}
	_ = c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write cut by its deadline: %v, want a timeout", err)
	}
	bw2 := &blockingWriter{hdr: http.Header{}, cut: make(chan struct{})}
	c = newStreamConn(r, bw2, http.NewResponseController(bw2))
	done := make(chan error, 1)
	go func() { _, err := c.Write([]byte("x")); done <- err }()
	for bw2.writes.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	c.Close()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Close left a write blocked")
	}
	if _, err := c.Write([]byte("y")); !errors.Is(err, net.ErrClosed) || bw2.writes.Load() != 1 {
		t.Fatalf("write after Close: %v, %d writes reached the stream", err, bw2.writes.Load())
	}
}

// lateWriter is a stream whose write completes just as its deadline
// passes: the write returns success only once the controller was handed
// the past deadline, which (on HTTP/2) has reset the stream meanwhile and
// so ended the request body too.
type lateWriter struct {
	hdr http.Header
	cut chan struct{}
}

func (b *lateWriter) Header() http.Header { return b.hdr }
func (b *lateWriter) WriteHeader(int)     {}
func (b *lateWriter) Write(p []byte) (int, error) {
	<-b.cut
	return len(p), nil
}
func (b *lateWriter) FlushError() error { return nil }
func (b *lateWriter) SetWriteDeadline(t time.Time) error {
	if !t.IsZero() && t.Before(time.Now()) {
		close(b.cut)
	}
	return nil
}
func (b *lateWriter) SetReadDeadline(time.Time) error { return nil }

// resetBody is a request body that ends once the stream is reset.
type resetBody struct{ reset chan struct{} }

func (b resetBody) Read([]byte) (int, error) {
	<-b.reset
	return 0, errors.New("http2: stream closed")
}
func (b resetBody) Close() error { return nil }

// TestStreamConnWriteCutAsItCompleted: a write whose deadline cut the
// stream (reset on HTTP/2) must fail as a timeout even if its bytes went
// out just before: the stream is gone, and the relay must hear of it.
// Reported as a success, nothing closes the conn (the relay goes on),
// and the read that failed with the reset waits for that Close for good.
func TestStreamConnWriteCutAsItCompleted(t *testing.T) {
	lw := &lateWriter{hdr: http.Header{}, cut: make(chan struct{})}
	r, _ := http.NewRequest(http.MethodConnect, "https://x/", resetBody{lw.cut})
	c := newStreamConn(r, lw, http.NewResponseController(lw))
	read := make(chan error, 1)
	go func() { _, err := c.Read(make([]byte, 1)); read <- err }()
	_ = c.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := c.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("write whose deadline reset the stream: %v, want a timeout", err)
	}
	select {
	case err := <-read:
		t.Fatalf("read returned %v before Close", err)
	case <-time.After(50 * time.Millisecond):
	}
	c.Close() // as the relay does on a write's failure
	select {
	case <-read:
	case <-time.After(time.Second):
		t.Fatal("the read failed by the reset still waits after Close")
	}
}
