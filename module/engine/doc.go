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
// Relay pings carry a payload only this process uses; the client's pongs
// that echo it are consumed. Everything else, including the peers' own
// pings and pongs, travels end to end.
package engine
