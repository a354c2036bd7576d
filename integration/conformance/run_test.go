package conformance

import (
	"fmt"
	"net"
	"strings"
	"time"

	rt "github.com/websocket-relay/websocket_relay/integration/relaytest"
)

// runCase runs cs against the server at addr, path, and returns what the
// client saw.
func runCase(addr, path string, cs *caseDef) outcome {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return outcome{err: err.Error()}
	}
	c, err := rt.Handshake(conn, addr, path, rt.DialOptions{})
	if err != nil {
		conn.Close()
		return outcome{err: err.Error()}
	}
	p := newPeer(c, cs)
	go p.readLoop()
	cs.run(p)
	select {
	case <-p.done:
	case <-time.After(caseTimeout):
		p.mu.Lock()
		p.dropLocked()
		p.mu.Unlock()
		<-p.done
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return outcome{received: p.received, closedByMe: p.closedByMe, wasClean: p.wasClean,
		droppedByMe: p.droppedByMe, gotClose: p.gotClose, remoteCode: p.remoteCode}
}

// summary renders events for the report, runs of alike events as one.
func summary(evs []event) string {
	var s []string
	for i := 0; i < len(evs); {
		j := i + 1
		for j < len(evs) && evs[j].String() == evs[i].String() {
			j++
		}
		if j-i > 1 {
			s = append(s, fmt.Sprintf("%sx%d", evs[i], j-i))
		} else {
			s = append(s, evs[i].String())
		}
		i = j
	}
	return "[" + strings.Join(s, " ") + "]"
}
