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
