package bench

import (
	"bytes"
	"encoding/xml"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

func TestRatiosManyFlows(t *testing.T) {
	rs := []Result{
		{Path: "kernel", Size: 64, Flows: 1024, PPS: Summary{Median: 100}},
		{Path: "gvs-dr", Size: 64, Flows: 1024, PPS: Summary{Median: 200}},
		{Path: "gvs-dr", Size: 1518, Flows: 1024, PPS: Summary{Median: 50}},
		{Path: "gvs-dr", Size: 64, Flows: 1 << 20, PPS: Summary{Median: 150}},
	}
	ratios(rs)
	for i, want := range [][2]float64{{1, 0}, {2, 0}, {0, 0}, {1.5, 0.75}} {
		if got := [2]float64{rs[i].PPSVsKernel, rs[i].PPSVsFewFlows}; got != want {
			t.Errorf("%s %d %d: pps ×kernel, ×few flows = %v, want %v", rs[i].Path, rs[i].Size, rs[i].Flows, got, want)
		}
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
	for in, want := range map[int]string{1: "1", 1000: "1000", 1024: "1K", 1 << 20: "1M", 3 << 20: "3M", 65536: "64K"} {
		if got := fmtCount(in); got != want {
			t.Errorf("fmtCount(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestPrintTable(t *testing.T) {
	rep := &Report{
		Results: []Result{
			{Path: "kernel", Size: 64, PPS: Summary{200e3, 190e3, 210e3}, ForwarderNsPerPkt: Summary{Median: 2500}, MachineNsPerPkt: Summary{Median: 5000}, PPSVsKernel: 1, ForwarderNsVsKernel: 1, DirectorNsVsKernel: 1},
			{Path: "gvs-dr", Size: 64, PPS: Summary{300e3, 290e3, 310e3}, LossPct: Summary{Median: 12.34}, ForwarderNsPerPkt: Summary{Median: 3000}, DirectorNsPerPkt: Summary{Median: 4321}, PPSVsKernel: 1.5, ForwarderNsVsKernel: 1.2, DirectorNsVsKernel: 1.73},
		},
		Latency: []LatencyResult{
			{Path: "kernel", P50Us: Summary{4.1, 4, 5}, P99Us: Summary{14.8, 14, 15}},
			{Path: "gvs-dr", P50Us: Summary{34.6, 30, 40}, P99Us: Summary{80.5, 70, 90}, AddedP50Us: 30.5, AddedP99Us: 65.7},
		},
		TCP: []TCPResult{
			{Test: "conn/s", Path: "direct", Unit: "/s", Value: Summary{10900, 10800, 11000}, VsDirect: 1},
			{Test: "bulk", Path: "gvs-nat", Unit: "Gbit/s", Value: Summary{4.64, 4.5, 4.7}, VsDirect: 0.91, Errors: 3},
		},
		Skipped: []Skipped{{Path: "nft-dnat", Reason: "the nft command is not installed"}},
	}
	rep.Config.LatencyRate = 50000
	var b bytes.Buffer
	printTable(&b, rep)
	out := b.String()
	for _, want := range []string{"pps median (min–max)", "200k (190k–210k)", "300k (290k–310k)", "12.3", "4321", "1.50", "1.20", "1.73", "nft-dnat: skipped: the nft command is not installed",
		"Latency at 50k frames/s", "34.6 (30.0–40.0)", "+65.7", "10.9k (10.8k–11k) /s", "4.64 (4.5–4.7) Gbit/s", "0.91"} {
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
		{[]string{"--tcp-paths", "direct,lvs"}, `--tcp-paths: unknown path "lvs"`},
		{[]string{"--many-flows", "-1"}, "--many-flows"},
		{[]string{"--many-flows", "99999999"}, "--many-flows"},
		{[]string{"--latency-rate", "-5"}, "--latency-rate"},
		{[]string{"--latency-duration", "0s"}, "--latency-duration"},
		{[]string{"--tcp-conns", "1"}, "--tcp-conns"},
		{[]string{"--bulk-bytes", "1000"}, "--bulk-bytes"},
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

func TestParseWrk(t *testing.T) {
	out := []byte(`Running 5s test @ http://198.18.3.1/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.91ms    1.20ms  30.00ms   90.00%
    Req/Sec    11.07k     1.01k   13.00k    70.00%
  110212 requests in 5.00s, 14.29MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:  22041.71
Transfer/sec:      2.86MB
`)
	r, err := parseWrk(out)
	if err != nil || r.requests != 22041.71 || r.errors != 9 {
		t.Errorf("parseWrk = %+v, %v; want 22041.71 requests/s and 9 errors", r, err)
	}
	if _, err := parseWrk([]byte("unable to connect to 198.18.3.1:80 Connection refused\n")); err == nil {
		t.Error("parseWrk without a Requests/sec line: no error")
	}
}

func TestLatencySample(t *testing.T) {
	var lat []int64
	for i := 1000; i >= 1; i-- {
		lat = append(lat, int64(i)*1000) // 1..1000 µs, reversed
	}
	s := latencySample(lat, 1010, 3, 2, time.Second) // 5 of 1010 lost
	want := LatencySample{Sent: 1010, Received: 1000, RingDrops: 3, Negative: 2, LostPct: 100 * 5.0 / 1010, RatePPS: 1010,
		P50Us: 500, P90Us: 900, P99Us: 990, P999Us: 999, MaxUs: 1000, MeanUs: 500.5}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("latencySample (-want +got):\n%s", diff)
	}
	if s := latencySample(nil, 5, 0, 0, time.Second); s.P99Us != 0 || s.LostPct != 100 {
		t.Errorf("latencySample of nothing received = %+v", s)
	}
	ls := []LatencyResult{{Path: "gvs-dr", P50Us: Summary{Median: 30}, P99Us: Summary{Median: 90}}, {Path: "kernel", P50Us: Summary{Median: 4}, P99Us: Summary{Median: 15}}}
	latencyRatios(ls)
	if ls[0].AddedP50Us != 26 || ls[0].AddedP99Us != 75 || ls[1].AddedP50Us != 0 {
		t.Errorf("latencyRatios: %+v", ls)
	}
}

func TestTCPRatios(t *testing.T) {
	rs := []TCPResult{
		{Test: "conn/s", Path: "direct", Value: Summary{Median: 100}},
		{Test: "conn/s", Path: "gvs-nat", Value: Summary{Median: 95}},
		{Test: "bulk", Path: "gvs-nat", Value: Summary{Median: 5}},
	}
	tcpRatios(rs)
	if rs[0].VsDirect != 1 || rs[1].VsDirect != 0.95 || rs[2].VsDirect != 0 {
		t.Errorf("tcpRatios: %v %v %v, want 1 0.95 0 (no direct bulk)", rs[0].VsDirect, rs[1].VsDirect, rs[2].VsDirect)
	}
}

// TestChart checks that the SVG chart is well-formed XML with one bar per
// result, labelled with its group.
func TestChart(t *testing.T) {
	rep := &Report{Results: []Result{
		{Path: "kernel", Size: 64, Flows: 1024, PPS: Summary{570e3, 560e3, 580e3}},
		{Path: "gvs-dr", Size: 64, Flows: 1024, PPS: Summary{655e3, 650e3, 660e3}},
		{Path: "kernel", Size: 1518, Flows: 1024, PPS: Summary{400e3, 390e3, 410e3}},
		{Path: "gvs-dr", Size: 1518, Flows: 1024, PPS: Summary{420e3, 410e3, 430e3}},
		{Path: "gvs-dr", Size: 64, Flows: 1 << 20, PPS: Summary{600e3, 590e3, 610e3}},
	}}
	rep.Config.Repeats = 3
	b := chart(rep)
	d := xml.NewDecoder(bytes.NewReader(b))
	rects := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the SVG does not parse: %v\n%s", err, b)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			rects++
		}
	}
	// A background, five bars, two legend keys.
	if rects != 1+5+2 {
		t.Errorf("%d rects, want 8:\n%s", rects, b)
	}
	for _, want := range []string{"64-byte frames, 1K flows", "1518-byte frames, 1K flows", "64-byte frames, 1M flows", "655k", "<svg"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("the chart lacks %q", want)
		}
	}
	if s := chart(&Report{}); !bytes.Contains(s, []byte("</svg>")) {
		t.Errorf("an empty report's chart is not a document: %s", s)
	}
}

func TestNiceStep(t *testing.T) {
	for in, want := range map[float64]float64{0: 1, 0.3: 0.5, 1: 1, 1.5: 2, 3: 5, 7: 10, 120000: 200000} {
		if got := niceStep(in); math.Abs(got-want) > 1e-9 {
			t.Errorf("niceStep(%v) = %v, want %v", in, got, want)
		}
	}
}

func TestSelected(t *testing.T) {
	known := []string{"a", "b", "c"}
	for _, tt := range []struct {
		given, want []string
	}{{nil, known}, {[]string{"-"}, nil}, {[]string{"c", "a"}, []string{"a", "c"}}} {
		if got := selected(tt.given, known); !cmp.Equal(got, tt.want) {
			t.Errorf("selected(%q) = %q, want %q", tt.given, got, tt.want)
		}
	}
}

func TestTargets(t *testing.T) {
	rep := &Report{
		Results: []Result{
			{Path: "kernel", Size: 64, Flows: 1024, PPS: Summary{Median: 500}},
			{Path: "nft-dnat", Size: 64, Flows: 1024, PPS: Summary{Median: 400}},
			{Path: "gvs-dr", Size: 64, Flows: 1024, PPS: Summary{Median: 600}},
			{Path: "gvs-dr", Size: 1500, Flows: 1024, PPS: Summary{Median: 100}},
			{Path: "gvs-nat", Size: 64, Flows: 1024, PPS: Summary{Median: 500}},
			{Path: "gvs-dr", Size: 64, Flows: 1 << 20, PPS: Summary{Median: 540}},
		},
		Latency: []LatencyResult{{Path: "kernel", RatePPS: 50000}, {Path: "gvs-dr", RatePPS: 50000, AddedP99Us: 120}},
		TCP: []TCPResult{
			{Path: "direct", Test: "bulk", Value: Summary{Median: 10}},
			{Path: "gvs-nat", Test: "bulk", Value: Summary{Median: 9.5}},
		},
	}
	rep.Config.ManyFlows = 1 << 20
	got := map[string]Target{}
	for _, tg := range targets(rep) {
		got[tg.What] = tg
	}
	for what, want := range map[string]struct {
		got        float64
		met, known bool
	}{
		"gvs-dr pps / kernel pps (64 B, 1K flows)":           {1.2, true, true},
		"gvs-dr pps / nft-dnat pps (64 B, 1K flows)":         {1.5, true, true},
		"gvs-nat pps / gvs-dr pps":                           {500.0 / 600, false, true},
		"gvs-tun pps / gvs-dr pps":                           {0, false, false},
		"gvs-dr pps with 1M flows / with 1K":                 {0.9, true, true},
		"TCP bulk: gvs-nat / direct":                         {0.95, true, true},
		"TCP bulk: gvs-dr / direct":                          {0, false, false},
		"p99 latency added by gvs-dr over kernel at 50k pps": {120, false, true},
	} {
		g, ok := got[what]
		if !ok {
			t.Errorf("no target %q", what)
			continue
		}
		if math.Abs(g.Got-want.got) > 1e-9 || g.Met != want.met || g.Known != want.known {
			t.Errorf("%s: got %v met %v known %v, want %v %v %v", what, g.Got, g.Met, g.Known, want.got, want.met, want.known)
		}
	}
	var b bytes.Buffer
	printTargets(&b, targets(rep))
	for _, want := range []string{"1.20×", "met", "MISSED", "not measured", "+120.0 µs"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("targets lack %q:\n%s", want, b.String())
		}
	}
	// --many-flows 0: no point, the target does not name 0 flows, and
	// it is not measured (not the 1K point over itself).
	rep.Config.ManyFlows = 0
	b.Reset()
	printTargets(&b, targets(rep))
	if !strings.Contains(b.String(), "gvs-dr pps with many flows / with 1K") || strings.Contains(b.String(), "with 0 flows") {
		t.Errorf("targets with --many-flows 0:\n%s", b.String())
	}
	for _, tg := range targets(rep) {
		if strings.Contains(tg.What, "many flows") && tg.Known {
			t.Errorf("--many-flows 0: %q measured as %v", tg.What, tg.Got)
		}
	}
}

func TestCPUIdle(t *testing.T) {
	const dir = "/sys/devices/system/cpu/cpuidle/"
	const poll = "/sys/module/haltpoll/parameters/guest_halt_poll_ns"
	for _, tt := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"no cpuidle", nil, ""},
		{"acpi", map[string]string{dir + "current_driver": "acpi_idle", dir + "current_governor": "menu"},
			"cpuidle driver acpi_idle, governor menu"},
		{"read-only governor", map[string]string{dir + "current_driver": "intel_idle", dir + "current_governor_ro": "ladder"},
			"cpuidle driver intel_idle, governor ladder"},
		{"haltpoll polling", map[string]string{dir + "current_driver": "haltpoll", dir + "current_governor": "haltpoll", poll: "200000"},
			"cpuidle driver haltpoll, governor haltpoll, guest_halt_poll_ns 200000"},
		{"haltpoll halting at once", map[string]string{dir + "current_driver": "haltpoll", dir + "current_governor": "haltpoll", poll: "0"},
			"cpuidle driver haltpoll, governor haltpoll, guest_halt_poll_ns 0 (an idle CPU halts at once and is woken through the hypervisor: most of what gvs adds without --busy-poll)"},
		{"haltpoll without module parameters", map[string]string{dir + "current_driver": "haltpoll"},
			"cpuidle driver haltpoll"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := cpuIdle(func(p string) string { return tt.files[p] }); got != tt.want {
				t.Errorf("cpuIdle = %q, want %q", got, tt.want)
			}
		})
	}
}
