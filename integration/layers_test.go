package integration

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestImportLayers holds the layering the README's layout gives (imports
// go one way: cmd -> caddyfile -> module -> engine packages), and keeps
// the packages with fuzz targets off Caddy's HTTP app: `go test -fuzz`
// instruments every package a target imports, and Caddy's ~960 took most
// of `make fuzz`'s time on a cold build cache. The rules for packages that
// know nothing of Caddy hold for every kind of system the engine has files
// for (linux, windows, other unix).
func TestImportLayers(t *testing.T) {
	t.Parallel()
	const self = "github.com/websocket-relay/websocket_relay/"
	const caddy, caddyApps = "github.com/caddyserver/", "github.com/caddyserver/caddy/v2/modules/"
	rules := []struct {
		pkg    string
		goos   []string // systems to check it for; the host's when empty
		banned []string // import path prefixes it must not depend on
		why    string
	}{
		{"module/engine", []string{"linux", "windows", "darwin"}, []string{caddy}, "the engine knows nothing of Caddy (fuzz targets)"},
		{"module/keepalive", []string{"linux", "windows", "darwin"}, []string{caddy}, "keepalive knows nothing of Caddy"},
		{"module/upgrade", nil, []string{caddy}, "the upgrade's HTTP checks know nothing of Caddy (fuzz targets)"},
		{"cmd/wsbench", nil, []string{caddy}, "the bench runs caddy as a process (fuzz target)"},
		{"module/config", nil, []string{caddyApps, self + "module/engine"}, "the options need only Caddy's core"},
		{"caddyfile/directive", nil, []string{caddyApps, self + "module/engine"},
			"the directive's parser needs only Caddy's core and Caddyfile packages (fuzz target)"},
		{"module", nil, []string{self + "caddyfile", self + "cmd"}, "module is below caddyfile and cmd"},
		{"caddyfile", nil, []string{self + "cmd"}, "caddyfile is below cmd"},
	}
	// Every package with a fuzz target has a rule that keeps it off
	// Caddy's HTTP app.
	offApps := map[string]bool{}
	for _, r := range rules {
		for _, b := range r.banned {
			if strings.HasPrefix(caddyApps, b) {
				offApps[r.pkg] = true
			}
		}
	}
	for _, dir := range fuzzDirs(t) {
		if !offApps[dir] {
			t.Errorf("%s has a fuzz target but no rule here keeping it off Caddy's HTTP app", dir)
		}
	}
	for _, r := range rules {
		systems := r.goos
		if len(systems) == 0 {
			systems = []string{""}
		}
		for _, goos := range systems {
			// -test: a test's imports are instrumented for fuzzing too.
			cmd := exec.Command("go", "list", "-deps", "-test", self+r.pkg)
			if goos != "" {
				cmd.Env = append(os.Environ(), "GOOS="+goos)
			}
			out, err := cmd.Output()
			if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
				t.Fatalf("GOOS=%s go list %s: %v\n%s", goos, r.pkg, err, ee.Stderr)
			} else if err != nil {
				t.Fatalf("GOOS=%s go list %s: %v", goos, r.pkg, err)
			}
			var bad []string
			for _, dep := range strings.Fields(string(out)) {
				for _, b := range r.banned {
					if strings.HasPrefix(dep, b) {
						bad = append(bad, dep)
					}
				}
			}
			if len(bad) > 0 {
				t.Errorf("GOOS=%s: %s depends on %s (%d banned packages in all): %s", goos, r.pkg, bad[0], len(bad), r.why)
			}
		}
	}
}

// fuzzDirs returns the directories, relative to the repository's root,
// whose tests declare a fuzz target (as scripts/fuzz.sh finds them).
func fuzzDirs(t *testing.T) []string {
	t.Helper()
	var dirs []string
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if regexp.MustCompile(`(?m)^func Fuzz[A-Z0-9_]`).Match(src) {
			dir, _ := filepath.Rel("..", filepath.Dir(path))
			if !slices.Contains(dirs, dir) {
				dirs = append(dirs, dir)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) == 0 {
		t.Fatal("found no fuzz target")
	}
	return dirs
}
