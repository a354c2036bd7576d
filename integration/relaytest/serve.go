package relaytest

import (
	"net"
	"testing"
)

// Serve listens on 127.0.0.1 and hands every accepted connection to
// serve, on a goroutine of its own, and returns the address; cleanup
// closes the listener. It stands in for backends that answer in a way of
// the test's own.
func Serve(t testing.TB, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return ln.Addr().String()
}
