package bench

import (
	"fmt"
	"io"
)

// Target is one of the project's performance targets (issue 13), checked
// against this run's figures: all of them ratios between paths measured
// in the same run.
type Target struct {
	What  string  `json:"what"`
	Want  string  `json:"want"`
	Got   float64 `json:"got"`  // the ratio or difference measured
	Unit  string  `json:"unit"` // "×" for a ratio, "µs" for added latency
	Met   bool    `json:"met"`
	Known bool    `json:"known"` // false: a path it needs did not run
}

// targets checks the targets against the report. The pps targets are at
// the smallest frame size with the first flow count.
func targets(rep *Report) []Target {
	pps := func(path string, flows int) float64 {
		size, first := 0, 0
		for _, r := range rep.Results {
			if size == 0 || r.Size < size {
				size = r.Size
			}
			if first == 0 {
				first = r.Flows
			}
		}
		if flows == 0 {
			flows = first
		}
		for _, r := range rep.Results {
			if r.Path == path && r.Size == size && r.Flows == flows {
				return r.PPS.Median
			}
		}
		return 0
	}
	tcp := func(path, test string) float64 {
		for _, t := range rep.TCP {
			if t.Path == path && t.Test == test {
				return t.Value.Median
			}
		}
		return 0
	}
	var out []Target
	ratio := func(what, want string, num, den, min float64) {
		t := Target{What: what, Want: want, Unit: "×"}
		if num > 0 && den > 0 {
			t.Got, t.Known = num/den, true
			t.Met = t.Got >= min
		}
		out = append(out, t)
	}
	ratio("gvs-dr pps / kernel pps (64 B, 1K flows)", "≥ 1.0", pps("gvs-dr", 0), pps("kernel", 0), 1.0)
	ratio("gvs-dr pps / nft-dnat pps (64 B, 1K flows)", "≥ 1.2", pps("gvs-dr", 0), pps("nft-dnat", 0), 1.2)
	ratio("gvs-nat pps / gvs-dr pps", "≥ 0.9", pps("gvs-nat", 0), pps("gvs-dr", 0), 0.9)
	ratio("gvs-tun pps / gvs-dr pps", "≥ 0.85", pps("gvs-tun", 0), pps("gvs-dr", 0), 0.85)
	ratio("gvs-fullnat pps / gvs-dr pps", "≥ 0.85", pps("gvs-fullnat", 0), pps("gvs-dr", 0), 0.85)
	many := rep.Config.ManyFlows
	manyName := "many" // --many-flows 0: the target shows as not measured
	if many > 0 {
		manyName = fmtCount(many)
	}
	for _, p := range []string{"gvs-dr", "gvs-nat"} {
		// pps(p, 0) is the first flow count's: with no many-flows
		// point, there is nothing to compare it with.
		var num float64
		if many > 0 {
			num = pps(p, many)
		}
		ratio(fmt.Sprintf("%s pps with %s flows / with 1K", p, manyName), "≥ 0.8", num, pps(p, 0), 0.8)
	}
	for _, test := range []string{testConn, testReq} {
		ratio("TCP "+test+": gvs-nat / nft-dnat", "≥ 1.0", tcp("gvs-nat", test), tcp("nft-dnat", test), 1.0)
	}
	for _, p := range []string{"gvs-dr", "gvs-nat", "gvs-tun", "gvs-fullnat"} {
		ratio("TCP bulk: "+p+" / direct", "≥ 0.9", tcp(p, testBulk), tcp("direct", testBulk), 0.9)
	}
	kernelLat := false
	for _, l := range rep.Latency {
		kernelLat = kernelLat || l.Path == (kernelPath{}).Name()
	}
	for _, l := range rep.Latency {
		if len(l.Path) < 4 || l.Path[:4] != "gvs-" {
			continue
		}
		t := Target{What: "p99 latency added by " + l.Path + " over kernel at " + fmtPPS(float64(l.RatePPS)) + " pps", Want: "< 100", Unit: "µs"}
		if kernelLat {
			t.Got, t.Known, t.Met = l.AddedP99Us, true, l.AddedP99Us < 100
		}
		out = append(out, t)
	}
	return out
}

// printTargets writes the targets as met, missed or not measured.
func printTargets(w io.Writer, ts []Target) {
	fmt.Fprintln(w, "Targets (ratios in this run):")
	for _, t := range ts {
		verdict, got := "not measured", "-"
		if t.Known {
			verdict = "MISSED"
			if t.Met {
				verdict = "met"
			}
			got = fmt.Sprintf("%.2f%s", t.Got, t.Unit)
			if t.Unit == "µs" {
				got = fmt.Sprintf("%+.1f µs", t.Got)
			}
		}
		fmt.Fprintf(w, "  %-62s want %-7s got %-12s %s\n", t.What, t.Want, got, verdict)
	}
}
