// Package engine relays WebSocket frames between a client and a backend
// that have both finished their opening handshakes. It knows nothing of
// Caddy or HTTP.
//
// Frames are forwarded as they are (RFC 6455 5.2): same FIN, RSV bits,
// opcode and length; a client frame keeps its mask key and masked payload,
// which is valid on the backend leg because the relay is the backend's
// client. Payloads stream through the read buffer of the source leg, so a
// frame of any size relays in bounded memory.
//
// Each leg has one writer (a lock held for a whole frame). The
// relay's own pings and close frames go through it between whole frames,
// never inside one; control frames may still go between the fragments of
// a message (RFC 6455 5.4).
//
// A leg holds a read buffer only while bytes are in flight, and an idle
// leg gives back its goroutine too (park.go, tlspark.go). Between plain
// TCP legs on Linux, a busy leg relays whole data frames from inside its
// read callback with writes that cannot block, still under the other
// leg's writer lock, and skips the read that would find nothing when the
// kernel says the socket is empty (reader.rawRead, Session.relayInline).
//
// With Config.Loops, a relay of two plain legs (TCP, or a Unix socket
// for the backend) on Linux whose legs are both parked leaves Go's
// runtime poller for one of the engine's event loops (loop_linux.go): threads with their own epoll sets that relay
// whole data frames and the peers' pings and pongs, write relay pings and
// consume the client's pongs to them. Anything else hands the relay back
// to the goroutine engine, bytes and all.
//
// Relay pings carry a payload only this process uses; the client's pongs
// that echo it are consumed. Everything else, including the peers' own
// pings and pongs, travels end to end.
package engine
