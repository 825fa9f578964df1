package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSummarize(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   []float64
		want Summary
	}{
		{"empty", nil, Summary{}},
		{"one", []float64{5}, Summary{5, 5, 5}},
		{"odd", []float64{3, 1, 2}, Summary{2, 1, 3}},
		{"even", []float64{4, 1, 3, 2}, Summary{2.5, 1, 4}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]float64(nil), tt.in...)
			if got := summarize(in); got != tt.want {
				t.Errorf("summarize(%v) = %+v, want %+v", tt.in, got, tt.want)
			}
			if !cmp.Equal(in, tt.in) {
				t.Errorf("summarize reordered its input: %v", in)
			}
		})
	}
}

func TestRatios(t *testing.T) {
	rs := []Result{
		{Path: "kernel", Size: 64, PPS: Summary{Median: 100}, ForwarderNsPerPkt: Summary{Median: 1000}, DirectorNsPerPkt: Summary{Median: 1000}},
		{Path: "gvs-dr", Size: 64, PPS: Summary{Median: 50}, ForwarderNsPerPkt: Summary{Median: 3000}, DirectorNsPerPkt: Summary{Median: 4000}},
		{Path: "gvs-dr", Size: 1500, PPS: Summary{Median: 50}, ForwarderNsPerPkt: Summary{Median: 3000}, DirectorNsPerPkt: Summary{Median: 4000}},
	}
	ratios(rs)
	want := [][3]float64{{1, 1, 1}, {0.5, 3, 4}, {0, 0, 0}} // no kernel point at 1500
	for i, r := range rs {
		if got := [3]float64{r.PPSVsKernel, r.ForwarderNsVsKernel, r.DirectorNsVsKernel}; got != want[i] {
			t.Errorf("%s %d: ratios %v, want %v", r.Path, r.Size, got, want[i])
		}
	}
}

func TestFmtPPS(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1k", 229400: "229k", 1234567: "1.23M"} {
		if got := fmtPPS(in); got != want {
			t.Errorf("fmtPPS(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestPrintTable(t *testing.T) {
	rep := &Report{
		Results: []Result{
			{Path: "kernel", Size: 64, PPS: Summary{200e3, 190e3, 210e3}, ForwarderNsPerPkt: Summary{Median: 2500}, MachineNsPerPkt: Summary{Median: 5000}, PPSVsKernel: 1, ForwarderNsVsKernel: 1, DirectorNsVsKernel: 1},
			{Path: "gvs-dr", Size: 64, PPS: Summary{300e3, 290e3, 310e3}, LossPct: Summary{Median: 12.34}, ForwarderNsPerPkt: Summary{Median: 3000}, DirectorNsPerPkt: Summary{Median: 4321}, PPSVsKernel: 1.5, ForwarderNsVsKernel: 1.2, DirectorNsVsKernel: 1.73},
		},
		Skipped: []Skipped{{Path: "nft-dnat", Reason: "the nft command is not installed"}},
	}
	var b bytes.Buffer
	printTable(&b, rep)
	out := b.String()
	for _, want := range []string{"pps median (min–max)", "200k (190k–210k)", "300k (290k–310k)", "12.3", "4321", "1.50", "1.20", "1.73", "nft-dnat: skipped: the nft command is not installed"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string // in stderr
	}{
		{[]string{"--duration", "0s"}, "--duration"},
		{[]string{"--repeats", "0"}, "--repeats"},
		{[]string{"--sizes", "63"}, "frame sizes 63"},
		{[]string{"--sizes", "64,2000"}, "frame sizes 2000"},
		{[]string{"--flows", "70000"}, "--flows"},
		{[]string{"--paths", "kernel,ipvs"}, `unknown path "ipvs"`},
		{[]string{"--gvs", "/bin/true"}, "--gvs and --gvsadm"},
		{[]string{"extra"}, "unexpected argument"},
		{[]string{"--no-such-flag"}, "unknown flag"},
	} {
		var stdout, stderr bytes.Buffer
		if code := Main(tt.args, &stdout, &stderr, ""); code != 2 || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("run(%q) = %d, stderr %q; want 2 and %q", tt.args, code, stderr.String(), tt.want)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"--help"}, &stdout, &stderr, ""); code != 0 || !strings.Contains(stderr.String(), "--quick") {
		t.Errorf("--help: %d, %q", code, stderr.String())
	}
}

func TestModuleRoot(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := moduleRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	if root != filepath.Dir(wd) {
		t.Errorf("moduleRoot(%s) = %s, want its parent", wd, root)
	}
	if _, err := moduleRoot(t.TempDir()); err == nil {
		t.Error("moduleRoot of a temporary directory: no error")
	}
}
