package relaytest

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var (
	caddyBin string
	buildErr error
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
	caddyBin, buildErr = build(filepath.Join(dir, "caddy"))
	return m.Run()
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
	start := time.Now()
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	fmt.Fprintf(os.Stderr, "relaytest: built caddy (race=%v) in %v\n", RaceEnabled, time.Since(start).Round(time.Second))
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

// Binary returns the caddy binary under test, failing t when Main could
// not build it.
func Binary(t testing.TB) string {
	t.Helper()
	if buildErr != nil {
		t.Fatalf("building caddy: %v", buildErr)
	}
	if caddyBin == "" {
		t.Fatal("no caddy binary: call relaytest.Main from TestMain")
	}
	return caddyBin
}
