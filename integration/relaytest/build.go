package relaytest

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	buildDir  string // where a lazy build goes (see RunLazy)
	buildOnce sync.Once
	caddyBin  string
	buildErr  error
)

// Main is the body of a TestMain: it builds ./cmd/caddy once into a
// temporary directory (with -race when this test binary has it), runs the
// tests and removes the build. WSRELAY_CADDY_BIN names a prebuilt binary
// instead, and `go test -list` builds nothing.
//
//	func TestMain(m *testing.M) { os.Exit(relaytest.Main(m)) }
func Main(m *testing.M) int {
	flag.Parse()
	if f := flag.Lookup("test.list"); f != nil && f.Value.String() != "" {
		return m.Run()
	}
	if p := os.Getenv("WSRELAY_CADDY_BIN"); p != "" {
		caddyBin = p
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "wsrelay-caddy-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "relaytest: creating build dir:", err)
		return 2
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	caddyBin, buildErr = build(filepath.Join(dir, "caddy"))
	if buildErr == nil {
		fmt.Fprintf(os.Stderr, "relaytest: built caddy (race=%v) in %v\n", RaceEnabled, time.Since(start).Round(time.Second))
	}
	return m.Run()
}

// RunLazy is the body of a TestMain for a package where many tests need no
// caddy: it makes a temporary directory (named after prefix), runs the
// tests and removes it; [Binary] builds caddy into it on first use, so
// that a run whose tests all skip builds nothing.
func RunLazy(m *testing.M, prefix string) int {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		fmt.Fprintln(os.Stderr, "creating build dir:", err)
		return 2
	}
	buildDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	return code
}

// build compiles the caddy binary to bin from the module root.
func build(bin string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	args := []string{"build"}
	if RaceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "-o", bin, "./cmd/caddy")
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return bin, nil
}

// moduleRoot finds the directory of go.mod above the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Binary returns the caddy binary under test, failing t when it could not
// be built. After Main it is the binary Main built; after RunLazy the
// first call builds it (or takes WSRELAY_CADDY_BIN).
func Binary(t testing.TB) string {
	t.Helper()
	if buildDir != "" {
		buildOnce.Do(func() {
			if p := os.Getenv("WSRELAY_CADDY_BIN"); p != "" {
				caddyBin = p
				return
			}
			caddyBin, buildErr = build(filepath.Join(buildDir, "caddy"))
		})
	}
	if buildErr != nil {
		t.Fatalf("building caddy: %v", buildErr)
	}
	if caddyBin == "" {
		t.Fatal("no caddy binary: call relaytest.Main or RunLazy from TestMain")
	}
	return caddyBin
}
