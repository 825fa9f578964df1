package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
)

// Summary is the median and range of one figure over a point's samples.
type Summary struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

// summarize returns the median (the mean of the middle two for an even
// count), minimum and maximum of v.
func summarize(v []float64) Summary {
	if len(v) == 0 {
		return Summary{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Summary{Median: m, Min: s[0], Max: s[len(s)-1]}
}

// Result is one point: a path at one frame size, over its repeats.
type Result struct {
	Path      string   `json:"path"`
	Size      int      `json:"frame_size"`
	Flows     int      `json:"flows"`
	CPUSource string   `json:"forwarder_cpu_source"`
	Pinning   string   `json:"pinning"`
	Samples   []Sample `json:"samples"`

	PPS               Summary `json:"pps"`
	LossPct           Summary `json:"loss_pct"`
	ForwarderNsPerPkt Summary `json:"forwarder_ns_per_pkt"`
	SoftirqNsPerPkt   Summary `json:"softirq_ns_per_pkt"`
	MachineNsPerPkt   Summary `json:"machine_ns_per_pkt"`
	DirectorNsPerPkt  Summary `json:"director_ns_per_pkt"`

	// Ratios of the medians against the kernel path at the same size
	// (0 when the kernel path did not run): pps (higher is better), and
	// forwarder and director CPU per packet (lower is better).
	PPSVsKernel float64 `json:"pps_vs_kernel,omitempty"`
	// PPSVsFewFlows is, for a point with more flows than the path's
	// first point at the same size, the ratio of its pps to that one's.
	PPSVsFewFlows       float64 `json:"pps_vs_few_flows,omitempty"`
	ForwarderNsVsKernel float64 `json:"forwarder_ns_vs_kernel,omitempty"`
	DirectorNsVsKernel  float64 `json:"director_ns_vs_kernel,omitempty"`
}

// summarize fills the summaries from the samples.
func (r *Result) summarize() {
	col := func(f func(Sample) float64) Summary {
		var v []float64
		for _, s := range r.Samples {
			v = append(v, f(s))
		}
		return summarize(v)
	}
	r.PPS = col(func(s Sample) float64 { return s.PPS })
	r.LossPct = col(func(s Sample) float64 { return s.LossPct })
	r.ForwarderNsPerPkt = col(func(s Sample) float64 { return s.ForwarderNsPerPkt })
	r.SoftirqNsPerPkt = col(func(s Sample) float64 { return s.SoftirqNsPerPkt })
	r.MachineNsPerPkt = col(func(s Sample) float64 { return s.MachineNsPerPkt })
	r.DirectorNsPerPkt = col(func(s Sample) float64 { return s.DirectorNsPerPkt })
}

// Skipped is a path that did not run, and why.
type Skipped struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// Report is the whole run, as --json writes it.
type Report struct {
	Version   int             `json:"version"` // of this format
	Started   string          `json:"started"` // RFC 3339
	Host      Host            `json:"host"`
	Config    RunConfig       `json:"config"`
	Paths     []PathDoc       `json:"paths"`
	Results   []Result        `json:"results"`
	Latency   []LatencyResult `json:"latency,omitempty"`
	TCP       []TCPResult     `json:"tcp,omitempty"`
	Targets   []Target        `json:"targets,omitempty"`
	Skipped   []Skipped       `json:"skipped,omitempty"`
	Warnings  []string        `json:"warnings,omitempty"`
	Failed    []Skipped       `json:"failed,omitempty"`
	ElapsedS  float64         `json:"elapsed_seconds"`
	Footnotes []string        `json:"notes"`
}

// reportVersion is bumped whenever a field changes meaning.
const reportVersion = 2

// Host describes the machine.
type Host struct {
	Kernel    string  `json:"kernel"`
	CPUs      int     `json:"cpus"`
	CPUModel  string  `json:"cpu_model,omitempty"`
	LoadAvg1  float64 `json:"loadavg_1min_at_start"`
	GoVersion string  `json:"go_version"`
	// CPUIdle is how an idle CPU waits (cpuIdle): it sets how long a
	// sleeping gvs worker takes to wake, hence its default latency.
	CPUIdle string `json:"cpu_idle,omitempty"`
}

// RunConfig is what the run was asked to do and how it pinned things.
type RunConfig struct {
	DurationS        float64           `json:"duration_seconds"`
	WarmupS          float64           `json:"warmup_seconds"`
	Repeats          int               `json:"repeats"`
	Sizes            []int             `json:"frame_sizes"`
	Flows            int               `json:"flows"`
	ManyFlows        int               `json:"many_flows,omitempty"`
	Quick            bool              `json:"quick"`
	GenCPU           int               `json:"generator_cpu"`
	FwdCPU           int               `json:"forwarder_cpu"`
	GenBatch         int               `json:"generator_batch"`
	GenRing          int               `json:"generator_ring_frames"`
	Offloads         string            `json:"offloads"`
	OffloadsByIface  map[string]string `json:"offloads_by_interface,omitempty"`
	RPS              string            `json:"rps"`
	SizeNote         string            `json:"frame_size_note"`
	Sinks            string            `json:"sinks"`
	GvsBuildS        float64           `json:"gvs_build_seconds,omitempty"`
	GvsPrebuilt      bool              `json:"gvs_prebuilt,omitempty"`
	Gvs              string            `json:"gvs,omitempty"`
	LatencyRate      int               `json:"latency_rate_pps,omitempty"`
	LatencyDurationS float64           `json:"latency_duration_seconds,omitempty"`
	TCPConns         int               `json:"tcp_connections,omitempty"`
	TCPClient        string            `json:"tcp_client,omitempty"`
	TCPServer        string            `json:"tcp_server,omitempty"`
	BulkBytes        int64             `json:"bulk_max_bytes,omitempty"`
	TCPPinning       string            `json:"tcp_pinning,omitempty"`
	// ProfileDir holds gvs's CPU profiles of the points (--profile).
	ProfileDir   string `json:"profile_dir,omitempty"`
	TopologyNote string `json:"topology"`
}

// PathDoc describes a path that ran.
type PathDoc struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// writeJSON writes the report to file.
func writeJSON(file string, r *Report) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(file, append(b, '\n'), 0o644)
}

// ratios fills the ratios against the kernel path at the same size, and
// those of many-flows points against the same path's first point.
func ratios(results []Result) {
	base := map[int]*Result{}
	type key struct {
		path string
		size int
	}
	few := map[key]*Result{}
	for i := range results {
		if results[i].Path == (kernelPath{}).Name() && base[results[i].Size] == nil {
			base[results[i].Size] = &results[i]
		}
		if k := (key{results[i].Path, results[i].Size}); few[k] == nil {
			few[k] = &results[i]
		}
	}
	for i := range results {
		r := &results[i]
		if f := few[key{r.Path, r.Size}]; f != r && f.Flows < r.Flows && f.PPS.Median > 0 {
			r.PPSVsFewFlows = r.PPS.Median / f.PPS.Median
		}
		k := base[r.Size]
		if k == nil {
			continue
		}
		if k.PPS.Median > 0 {
			r.PPSVsKernel = r.PPS.Median / k.PPS.Median
		}
		if k.ForwarderNsPerPkt.Median > 0 {
			r.ForwarderNsVsKernel = r.ForwarderNsPerPkt.Median / k.ForwarderNsPerPkt.Median
		}
		if k.DirectorNsPerPkt.Median > 0 {
			r.DirectorNsVsKernel = r.DirectorNsPerPkt.Median / k.DirectorNsPerPkt.Median
		}
	}
}

// printTable writes the results as tables: UDP throughput, latency, TCP.
func printTable(w io.Writer, rep *Report) {
	if len(rep.Results) > 0 {
		fmt.Fprintln(w, "UDP forwarding: delivered packets/s at saturation")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "path\tsize\tflows\tpps median (min–max)\tloss %\tfwd ns/pkt\tdir ns/pkt\tmachine ns/pkt\tpps ×kernel\tfwd ×kernel\tdir ×kernel\tpps ×1K flows\t")
		for _, r := range rep.Results {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s (%s–%s)\t%.1f\t%.0f\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t\n",
				r.Path, r.Size, fmtCount(r.Flows), fmtPPS(r.PPS.Median), fmtPPS(r.PPS.Min), fmtPPS(r.PPS.Max),
				r.LossPct.Median, r.ForwarderNsPerPkt.Median, r.DirectorNsPerPkt.Median, r.MachineNsPerPkt.Median,
				fmtRatio(r.PPSVsKernel), fmtRatio(r.ForwarderNsVsKernel), fmtRatio(r.DirectorNsVsKernel), fmtRatio(r.PPSVsFewFlows))
		}
		tw.Flush()
		fmt.Fprintln(w, "fwd: the forwarder's CPU (gvs: its utime+stime; kernel paths: softirq); dir: all the director side costs (gvs: fwd + the receive into its ring);")
		fmt.Fprintln(w, "machine: all CPUs, generator included. CPU figures are ns per delivered packet; ×kernel: ratio to the kernel path at the same size;")
		fmt.Fprintln(w, "×1K flows: a many-flows point's pps over the same path's at the first flow count.")
	}
	if len(rep.Latency) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "Latency at %s frames/s (64-byte frames), generator's sendto to the sink's receive, µs\n", fmtPPS(float64(rep.Config.LatencyRate)))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "path\tp50 (min–max)\tp99 (min–max)\tp99.9\tmax\tlost %\tp50 +kernel\tp99 +kernel\t")
		for _, l := range rep.Latency {
			fmt.Fprintf(tw, "%s\t%.1f (%.1f–%.1f)\t%.1f (%.1f–%.1f)\t%.1f\t%.0f\t%.2f\t%s\t%s\t\n",
				l.Path, l.P50Us.Median, l.P50Us.Min, l.P50Us.Max, l.P99Us.Median, l.P99Us.Min, l.P99Us.Max,
				l.P999Us.Median, l.MaxUs.Max, l.LostPct.Median, fmtAdded(l.AddedP50Us, l.Path), fmtAdded(l.AddedP99Us, l.Path))
		}
		tw.Flush()
		fmt.Fprintln(w, "min–max over the runs; +kernel: added over the kernel path's (same run).")
		if rep.Host.CPUIdle != "" {
			fmt.Fprintf(w, "idle CPUs: %s\n", rep.Host.CPUIdle)
		}
	}
	if len(rep.TCP) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "TCP through the director: %s\n", rep.Config.TCPClient)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "test\tpath\tmedian (min–max)\t×direct\terrors\t")
		for _, t := range rep.TCP {
			fmt.Fprintf(tw, "%s\t%s\t%s (%s–%s) %s\t%s\t%s\t\n", t.Test, t.Path,
				fmtValue(t.Value.Median), fmtValue(t.Value.Min), fmtValue(t.Value.Max), t.Unit, fmtRatio(t.VsDirect), fmtErrors(t.Errors))
		}
		tw.Flush()
		fmt.Fprintln(w, "conn/s: new connections (a request each, keep-alive off); req/s: keep-alive requests; bulk: upload, client to servers; ×direct: ratio to the client going straight to the servers (routed by the director's kernel).")
	}
	if len(rep.Targets) > 0 {
		fmt.Fprintln(w)
		printTargets(w, rep.Targets)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "pinning: generator CPU %d, gvs CPU %d; RPS off; offloads (kernel defaults, unchanged): %s\n",
		rep.Config.GenCPU, rep.Config.FwdCPU, offloadSummary(rep.Config.OffloadsByIface))
	for _, s := range rep.Skipped {
		fmt.Fprintf(w, "%s: skipped: %s\n", s.Path, s.Reason)
	}
	for _, s := range rep.Failed {
		fmt.Fprintf(w, "%s: FAILED: %s\n", s.Path, s.Reason)
	}
	for _, s := range rep.Warnings {
		fmt.Fprintf(w, "WARNING: %s\n", s)
	}
}

// fmtPPS writes packets per second with a unit: 1.23M, 456k, 789.
func fmtPPS(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.3gk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// offloadSummary says what the interfaces' offloads were: once when they
// all agree, else per interface.
func offloadSummary(by map[string]string) string {
	if len(by) == 0 {
		return "not read"
	}
	vals := slices.Sorted(maps.Values(by))
	if vals[0] == vals[len(vals)-1] {
		return vals[0] + " (every interface)"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(by)) {
		parts = append(parts, k+": "+by[k])
	}
	return strings.Join(parts, "; ")
}

// fmtCount writes a count with a unit: 1K (1024), 1M (2^20), 500.
func fmtCount(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dM", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dK", n>>10)
	}
	return fmt.Sprint(n)
}

// fmtValue writes a TCP figure with three significant digits.
func fmtValue(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.3gk", v/1e3)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

func fmtAdded(v float64, path string) string {
	if path == (kernelPath{}).Name() {
		return "-"
	}
	return fmt.Sprintf("%+.1f", v)
}

func fmtErrors(n uint64) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

func fmtRatio(v float64) string {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	return fmt.Sprintf("%.2f", v)
}

// parseSizes checks frame sizes.
func checkSizes(sizes []int, min, max int) error {
	if len(sizes) == 0 {
		return fmt.Errorf("no frame size")
	}
	var bad []string
	for _, s := range sizes {
		if s < min || s > max {
			bad = append(bad, fmt.Sprint(s))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("frame sizes %s not in [%d, %d] (bytes on the wire, FCS included)", strings.Join(bad, ", "), min, max)
	}
	return nil
}
