//go:build !linux

package engine

// poller is not available here: idle legs keep their goroutine (but not
// their read buffer).
type poller struct{}

func thePoller() *poller { return nil }

func (p *poller) register(*leg) uint64         { return 0 }
func (p *poller) forget(uint64)                {}
func (p *poller) arm(*leg, uint64, bool) error { return nil }
