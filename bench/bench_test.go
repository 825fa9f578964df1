package bench

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gvs-project/gvs/internal/nstest"
)

// TestQuick runs the tool as CI does (--quick: one short run of 64-byte
// frames per UDP path, a latency run per path, one run of each TCP test)
// in its own namespaces, and checks the numbers are sane: every UDP path
// delivered packets to both sinks, every latency point received stamped
// frames with ordered percentiles, every TCP test moved requests or bytes;
// that every path ran or was skipped with a reason (under CI=true, where
// .ci/run installs nftables, haproxy and wrk, that every path ran); that
// the JSON and SVG files parse and agree with the table; and that no
// namespace is left. It needs root; it takes about a minute (more when
// the build cache is cold).
func TestQuick(t *testing.T) {
	nstest.Require(t)
	if testing.Short() && !nstest.InCI() {
		t.Skip("skipping the end-to-end benchmark in -short mode")
	}
	dir := t.TempDir()
	file, svg := filepath.Join(dir, "out.json"), filepath.Join(dir, "out.svg")
	var stdout, stderr bytes.Buffer
	// --no-install outside CI: a developer's machine is not changed by a
	// test (CI installs the tools in .ci/run).
	prof := filepath.Join(dir, "prof")
	args := []string{"--quick", "--json", file, "--svg", svg, "--profile", prof}
	if !nstest.InCI() {
		args = append(args, "--no-install")
	}
	code := Main(args, &stdout, &stderr, "")
	t.Logf("stdout:\n%s", stdout.String())
	t.Logf("stderr:\n%s", stderr.String())
	if code != 0 {
		t.Fatalf("Main exited with %d", code)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("the JSON does not parse: %v\n%s", err, b)
	}
	if rep.Version != reportVersion || !rep.Config.Quick || len(rep.Failed) != 0 {
		t.Errorf("report: version %d, quick %v, failed %v", rep.Version, rep.Config.Quick, rep.Failed)
	}
	skipped := map[string]string{}
	for _, s := range rep.Skipped {
		if s.Reason == "" {
			t.Errorf("%s skipped without a reason", s.Path)
		}
		skipped[s.Path] = s.Reason
	}
	if nstest.InCI() && len(skipped) > 0 {
		t.Errorf("under CI every path must run (.ci/run installs their tools); skipped: %v", skipped)
	}

	ran := map[string]bool{}
	for _, r := range rep.Results {
		ran[r.Path] = true
		if r.Size != 64 || r.Flows != 1024 || len(r.Samples) != 1 {
			t.Errorf("%s: size %d, %d flows, %d samples; want 64, 1024, 1", r.Path, r.Size, r.Flows, len(r.Samples))
		}
		s := r.Samples[0]
		if r.PPS.Median <= 0 || s.Delivered == 0 || s.LossPct < 0 || s.LossPct > 100 {
			t.Errorf("%s: %v pps, %d delivered, loss %.1f%%: want some, and a loss in [0, 100]", r.Path, r.PPS.Median, s.Delivered, s.LossPct)
		}
		for i, n := range s.PerSink {
			if n == 0 {
				t.Errorf("%s: sink%d received nothing", r.Path, i+1)
			}
		}
		if s.Delivered > s.Sent || s.Sent > s.Generated {
			t.Errorf("%s: delivered %d, sent %d, generated %d: want delivered <= sent <= generated", r.Path, s.Delivered, s.Sent, s.Generated)
		}
		if !strings.Contains(stdout.String(), r.Path) {
			t.Errorf("%s is in the JSON but not in the table", r.Path)
		}
	}
	for _, p := range pathNames() {
		if ran[p] == (skipped[p] != "") {
			t.Errorf("UDP path %s: ran %v, skipped %q: want exactly one", p, ran[p], skipped[p])
		}
	}
	for _, p := range []string{"kernel", "gvs-dr", "gvs-nat", "gvs-tun", "gvs-fullnat"} {
		if !ran[p] {
			t.Errorf("path %s did not run", p)
		}
	}

	lat := map[string]bool{}
	for _, l := range rep.Latency {
		lat[l.Path] = true
		s := l.Samples[0]
		if s.Received == 0 || !(0 < s.P50Us && s.P50Us <= s.P99Us && s.P99Us <= s.MaxUs && s.MaxUs < 1e6) {
			t.Errorf("%s latency: %d received, p50 %v, p99 %v, max %v µs: want some, ordered, under a second", l.Path, s.Received, s.P50Us, s.P99Us, s.MaxUs)
		}
	}
	for p := range ran {
		if !lat[p] {
			t.Errorf("%s has no latency point", p)
		}
	}

	tcp := map[string]bool{}
	for _, r := range rep.TCP {
		tcp[r.Path+" "+r.Test] = true
		if r.Value.Median <= 0 || len(r.Samples) != 1 {
			t.Errorf("tcp %s %s: %v %s over %d runs: want one run, above 0", r.Path, r.Test, r.Value.Median, r.Unit, len(r.Samples))
		}
	}
	for _, p := range allTCPPaths() {
		name := "tcp " + p.Name()
		for _, test := range p.Tests() {
			if tcp[p.Name()+" "+test] {
				continue
			}
			if skipped[name] == "" && (test == testBulk || skipped[name+" conn/s, req/s"] == "") {
				t.Errorf("%s %s neither ran nor was skipped", name, test)
			}
		}
	}

	// --profile: a gzipped CPU profile of gvs for every gvs point.
	var points []string
	for _, r := range rep.Results {
		if strings.HasPrefix(r.Path, "gvs-") {
			points = append(points, fmt.Sprintf("%s %dB 1K flows", r.Path, r.Size))
		}
	}
	for _, r := range rep.TCP {
		if strings.HasPrefix(r.Path, "gvs-") {
			points = append(points, r.Path+" "+r.Test)
		}
	}
	if len(points) == 0 || rep.Config.ProfileDir != prof {
		t.Errorf("no gvs point, or the report's profile_dir %q is not %q", rep.Config.ProfileDir, prof)
	}
	for _, pt := range points {
		b, err := os.ReadFile(filepath.Join(prof, profileFileName(pt)))
		if err != nil {
			t.Errorf("%s: %v", pt, err)
			continue
		}
		if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
			t.Errorf("%s: the profile is not gzipped (%d bytes)", pt, len(b))
		}
	}

	sb, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	for d := xml.NewDecoder(bytes.NewReader(sb)); ; {
		if _, err := d.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("the SVG does not parse: %v", err)
		}
	}

	// Nothing left behind.
	out, _ := exec.Command("ip", "netns", "list").CombinedOutput()
	if strings.Contains(string(out), "gvsb"+strconv.Itoa(os.Getpid())) {
		t.Errorf("namespaces left behind:\n%s", out)
	}
}
