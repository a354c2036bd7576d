package relaytest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// RSS returns the resident set size of process pid in bytes (VmRSS in
// /proc/<pid>/status).
func RSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("unexpected VmRSS line %q", line)
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// FDCount returns the number of open descriptors of process pid.
func FDCount(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents), err
}

// Metrics reads caddy's admin metrics endpoint and returns every sample
// by its name with labels, e.g. "go_goroutines" or
// `caddy_http_requests_total{handler="...",server="srv0"}`.
func (c *Caddy) Metrics() (map[string]float64, error) {
	// No gzip: a compressed answer makes caddy allocate a flate writer of
	// about 1.4 MiB (kept in a pool between scrapes), which would be in the
	// very heap figures being read.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true}}
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", c.AdminPort))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics endpoint: %s", resp.Status)
	}
	return parseMetrics(body), nil
}

// parseMetrics reads the Prometheus text format, skipping comments.
func parseMetrics(body []byte) map[string]float64 {
	out := make(map[string]float64)
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// Figures are the resource counts of a caddy process that a leak shows in.
type Figures struct {
	Goroutines int     // go_goroutines
	HeapAlloc  float64 // go_memstats_heap_alloc_bytes
	GCs        int     // go_gc_duration_seconds_count: collections so far
	// HeapGoal is go_memstats_next_gc_bytes, the heap size at which the
	// next collection starts. The runtime derives it from the live heap
	// the last collection found (about twice that with GOGC=100), so,
	// unlike HeapAlloc, it holds no garbage and does not depend on when
	// it is read.
	HeapGoal float64
	FDs      int   // entries of /proc/<pid>/fd
	RSS      int64 // VmRSS
}

func (f Figures) String() string {
	return fmt.Sprintf("goroutines %d, fds %d, heap %.2f MiB (goal %.2f MiB after %d collections), rss %.1f MiB",
		f.Goroutines, f.FDs, f.HeapAlloc/(1<<20), f.HeapGoal/(1<<20), f.GCs, float64(f.RSS)/(1<<20))
}

// Figures reads the process's resource counts.
func (c *Caddy) Figures() (Figures, error) {
	m, err := c.Metrics()
	if err != nil {
		return Figures{}, err
	}
	g, ok1 := m["go_goroutines"]
	h, ok2 := m["go_memstats_heap_alloc_bytes"]
	gcs, ok3 := m["go_gc_duration_seconds_count"]
	goal, ok4 := m["go_memstats_next_gc_bytes"]
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return Figures{}, fmt.Errorf("metrics lack go_goroutines, go_memstats_heap_alloc_bytes, go_memstats_next_gc_bytes or go_gc_duration_seconds_count")
	}
	fds, err := FDCount(c.PID())
	if err != nil {
		return Figures{}, err
	}
	rss, err := RSS(c.PID())
	if err != nil {
		return Figures{}, err
	}
	return Figures{Goroutines: int(g), HeapAlloc: h, GCs: int(gcs), HeapGoal: goal, FDs: fds, RSS: rss}, nil
}
