package reliability

import (
	"os"
	"testing"
	"time"

	rt "github.com/websocket-relay/websocket_relay/integration/relaytest"
)

// The heap is compared as garbage collections find it. Between
// collections go_memstats_heap_alloc_bytes also counts garbage, as much as
// the last collection left room for, so the figure compared is the heap
// goal (go_memstats_next_gc_bytes), which the runtime derives from the
// live heap a collection marked (about twice it with GOGC=100); the
// smallest goal over several collections is taken, on both sides, because
// each one also finds whatever was in flight at that moment. heap_alloc is
// logged beside it. Nothing forces a collection: the figures are reread
// four times a second, and caddy's own work and those reads allocate
// enough for a collection every second or two. WSRELAY_DEBUG_FIGURES=1
// logs every reading.

// readEvery is how often the figures are reread.
const readEvery = 250 * time.Millisecond

// heapSample rereads caddy's figures until n more collections happened (or
// d passed) and returns the last figures with HeapGoal set to the smallest
// goal seen after one of those collections (the last reading's goal when
// none happened).
func heapSample(t *testing.T, c *rt.Caddy, n int, d time.Duration) (rt.Figures, int) {
	t.Helper()
	g := newGoalLow(t, c)
	for deadline := time.Now().Add(d); ; {
		time.Sleep(readEvery)
		now := g.read(t, c)
		if now.GCs-g.first.GCs >= n || time.Now().After(deadline) {
			return now, now.GCs - g.first.GCs
		}
	}
}

// goalLow rereads caddy's figures and keeps the smallest heap goal seen
// after a collection since its first reading.
type goalLow struct {
	first, prev rt.Figures
	low         float64 // -1 until a collection was seen
}

func newGoalLow(t *testing.T, c *rt.Caddy) *goalLow {
	t.Helper()
	first, err := c.Figures()
	if err != nil {
		t.Fatal(err)
	}
	return &goalLow{first: first, prev: first, low: -1}
}

// read returns caddy's figures now, with HeapGoal the smallest goal seen
// after a collection (the reading's own goal while none was).
func (g *goalLow) read(t *testing.T, c *rt.Caddy) rt.Figures {
	t.Helper()
	now, err := c.Figures()
	if err != nil {
		t.Fatal(err)
	}
	if now.GCs > g.prev.GCs && (g.low < 0 || now.HeapGoal < g.low) {
		g.low = now.HeapGoal
	}
	g.prev = now
	if g.low >= 0 {
		now.HeapGoal = g.low
	}
	if os.Getenv("WSRELAY_DEBUG_FIGURES") != "" {
		t.Logf("%v", now)
	}
	return now
}

// baseline reads caddy's starting figures: the heap goal over four
// collections (20 s at most).
func baseline(t *testing.T, c *rt.Caddy) rt.Figures {
	t.Helper()
	f, gcs := heapSample(t, c, 4, 20*time.Second)
	if gcs == 0 {
		t.Logf("no garbage collection within 20s; the baseline heap goal may be stale")
	}
	return f
}

// waitSettled rereads caddy's figures, for d at most, until its goroutines
// and descriptors are within goTol and fdTol of before and (when heapTol >
// 0) the smallest heap goal over at least two collections since it began
// is within heapTol of before's, plus heapSlack bytes. It fails the test
// if they do not come back, and returns the last figures (with that
// smallest goal).
func waitSettled(t *testing.T, c *rt.Caddy, before rt.Figures, goTol, fdTol int, heapTol, heapSlack float64, d time.Duration) rt.Figures {
	t.Helper()
	g := newGoalLow(t, c)
	first := g.first
	deadline := time.Now().Add(d)
	for {
		now := g.read(t, c)
		collected := now.GCs >= first.GCs+2
		heapOK := heapTol == 0 || (collected && g.low <= before.HeapGoal*(1+heapTol)+heapSlack)
		if now.Goroutines <= before.Goroutines+goTol && now.FDs <= before.FDs+fdTol && heapOK {
			return now
		}
		if time.Now().After(deadline) {
			t.Errorf("caddy did not give its resources back within %v (%d collections meanwhile):\nbefore %v\nafter  %v\n(tolerance: %d goroutines, %d fds, heap goal %+.0f%% %+.2f MiB)",
				d, now.GCs-first.GCs, before, now, goTol, fdTol, heapTol*100, heapSlack/(1<<20))
			return now
		}
		time.Sleep(readEvery)
	}
}
