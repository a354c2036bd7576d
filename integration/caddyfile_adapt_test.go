package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"

	_ "github.com/websocket-relay/websocket_relay/caddyfile"
	_ "github.com/websocket-relay/websocket_relay/module"
)

// adaptSeparator splits a .caddytest file into its Caddyfile (before) and
// the JSON the caddyfile adapter must produce from it (after).
const adaptSeparator = "\n----------\n"

// TestCaddyfileAdapt adapts every integration/caddyfile_adapt/*.caddytest
// Caddyfile and compares the result with the file's expected JSON.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("caddyfile_adapt", "*.caddytest"))
	if err != nil {
		t.Fatalf("listing caddytest files: %v", err)
	}
	if len(files) == 0 {
		t.Fatal("no caddytest files in caddyfile_adapt")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			caddyfile, expected := adaptReadCase(t, file)
			if !caddytest.CompareAdapt(t, file, caddyfile, "caddyfile", expected) {
				t.Errorf("adapting %s: JSON differs from the expected one (diff on stdout)", file)
			}
		})
	}
}

// adaptReadCase returns the Caddyfile and the expected JSON of one file.
func adaptReadCase(t *testing.T, file string) (caddyfile, expected string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("reading caddytest file: %v", err)
	}
	text := strings.ReplaceAll(string(data), "\r\n", "\n")
	caddyfile, expected, ok := strings.Cut(text, adaptSeparator)
	if !ok {
		t.Fatalf("%s: no %q line between the Caddyfile and the JSON", file, strings.TrimSpace(adaptSeparator))
	}
	// The adapter warns when input is not formatted; caddy fmt ends a
	// Caddyfile with exactly one newline.
	return strings.TrimSpace(caddyfile) + "\n", strings.TrimSpace(expected)
}
