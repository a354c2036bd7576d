package engine

import (
	"bytes"
	"io"
	"testing"

	"github.com/gobwas/ws"
)

// BenchmarkRelayFrame measures the steady-state per-frame path, client to
// backend over loopback TCP: allocations per relayed frame must be zero.
func BenchmarkRelayFrame(b *testing.B) {
	for _, size := range []int{128, 4096, 65536} {
		b.Run(itoa(size), func(b *testing.B) {
			clientTest, clientRelay := loopbackPair(b)
			backendRelay, backendTest := loopbackPair(b)
			s := New(Leg{Conn: clientRelay}, Leg{Conn: backendRelay}, Config{WriteTimeout: 0, CloseTimeout: 100e6})
			done := make(chan Result, 1)
			go func() { done <- s.Run() }()
			var buf bytes.Buffer
			_ = ws.WriteFrame(&buf, ws.MaskFrame(ws.NewBinaryFrame(make([]byte, size))))
			frame := buf.Bytes()
			total := int64(len(frame)) * int64(b.N)
			read := make(chan int64, 1)
			go func() {
				n, _ := io.CopyN(io.Discard, backendTest, total)
				read <- n
			}()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := clientTest.Write(frame); err != nil {
					b.Fatal(err)
				}
			}
			if n := <-read; n != total {
				b.Fatalf("backend read %d bytes, want %d", n, total)
			}
			b.StopTimer()
			clientTest.Close()
			backendTest.Close()
			<-done
		})
	}
}
