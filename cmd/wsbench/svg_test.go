package main

import (
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
)

func chart(r *Results) string {
	var b strings.Builder
	writeChart(&b, r)
	return b.String()
}

// elements parses an SVG document and counts its elements by name; it
// fails the test if the document is not well-formed XML.
func elements(t *testing.T, doc string) map[string]int {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(doc))
	counts := map[string]int{}
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("chart is not well-formed XML: %v\n%s", err, doc)
		}
		if se, ok := tok.(xml.StartElement); ok {
			counts[se.Name.Local]++
		}
	}
	return counts
}

func TestChartIsWellFormed(t *testing.T) {
	r := fixtureResults()
	r.Meta.NginxVersion = `nginx/1.22 <"odd"> & co` // must be escaped
	for name, res := range map[string]*Results{"full": r, "empty": emptyResults(), "zero value": newResults()} {
		t.Run(name, func(t *testing.T) {
			out := chart(res)
			elements(t, out)
			for _, bad := range []string{"NaN", "Inf"} {
				if strings.Contains(out, bad) {
					t.Errorf("chart contains %q", bad)
				}
			}
			if !strings.HasPrefix(out, "<svg ") || !strings.HasSuffix(strings.TrimSpace(out), "</svg>") {
				t.Error("chart is not a single svg element")
			}
		})
	}
}

func TestChartContents(t *testing.T) {
	r := fixtureResults()
	out := chart(r)
	n := elements(t, out)
	proxies := len(r.proxies())
	if n["path"] != proxies {
		t.Errorf("%d memory lines, want one per proxy (%d)", n["path"], proxies)
	}
	// background + legend swatches + throughput bars (2 sizes x 2 legs) + round-trip bars
	if want := 1 + proxies + proxies*4 + proxies; n["rect"] != want {
		t.Errorf("%d rects, want %d", n["rect"], want)
	}
	for _, want := range []string{"websocket_relay", "caddy reverse_proxy", "nginx", "64 KiB wss", "1 MiB ws",
		"Idle memory per connection", "direct = 1", ">9900<", ">0.49<"} {
		if !strings.Contains(out, want) {
			t.Errorf("chart lacks %q", want)
		}
	}
}

func TestChartEscapesText(t *testing.T) {
	r := fixtureResults()
	r.Meta.NginxVersion = "nginx/1.22 <odd> & co"
	if out := chart(r); !strings.Contains(out, "nginx/1.22 &lt;odd&gt; &amp; co") {
		t.Error("title text is not escaped")
	}
}

func TestNiceCeil(t *testing.T) {
	tests := []struct{ in, want float64 }{
		{0.7, 1}, {1, 1}, {1.2, 2}, {3, 5}, {7, 10}, {10, 10}, {11, 20}, {95, 100}, {0, 1}, {-3, 1},
	}
	for _, tt := range tests {
		if got := niceCeil(tt.in); got != tt.want {
			t.Errorf("niceCeil(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestSpreadLabels(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want []float64
	}{
		{"apart stay put", []float64{10, 50, 30}, []float64{10, 50, 30}},
		{"two close ones centre on their mean", []float64{100, 104}, []float64{95, 109}},
		{"order of the input is kept", []float64{104, 100}, []float64{109, 95}},
		{"a cluster that reaches a third merges with it", []float64{100, 102, 112}, []float64{90.6667, 104.6667, 118.6667}},
		{"none", nil, []float64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := spreadLabels(tt.in, 14)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if d := got[i] - tt.want[i]; d > 1e-3 || d < -1e-3 {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}
