package bench

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gvs-project/gvs/internal/nstest"
)

// TestQuick runs the tool as CI does (--quick, one 1 s point of 64-byte
// frames per path) in its own namespaces, and checks that every path that
// ran delivered packets, that the kernel and gvs paths did run, and that
// the JSON file parses and agrees with the table. It needs root; it takes
// 10 to 30 s (most of it building gvs when the build cache is cold).
func TestQuick(t *testing.T) {
	nstest.Require(t)
	if testing.Short() {
		t.Skip("skipping the end-to-end benchmark in -short mode")
	}
	file := filepath.Join(t.TempDir(), "out.json")
	var stdout, stderr bytes.Buffer
	code := Main([]string{"--quick", "--duration", "1s", "--json", file}, &stdout, &stderr, "")
	t.Logf("stdout:\n%s", stdout.String())
	t.Logf("stderr:\n%s", stderr.String())
	if code != 0 {
		t.Fatalf("run exited with %d", code)
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
	ran := map[string]bool{}
	for _, r := range rep.Results {
		ran[r.Path] = true
		if r.Size != 64 || len(r.Samples) != 1 {
			t.Errorf("%s: size %d with %d samples, want 64 with 1", r.Path, r.Size, len(r.Samples))
		}
		s := r.Samples[0]
		if r.PPS.Median <= 0 || s.Delivered == 0 {
			t.Errorf("%s: %v pps, %d delivered: want some", r.Path, r.PPS.Median, s.Delivered)
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
	for _, p := range []string{"kernel", "gvs-dr"} {
		if !ran[p] {
			t.Errorf("path %s did not run", p)
		}
	}
	for _, s := range rep.Skipped {
		if ran[s.Path] {
			t.Errorf("%s both ran and was skipped", s.Path)
		}
	}
	// Nothing left behind.
	out, _ := exec.Command("ip", "netns", "list").CombinedOutput()
	if strings.Contains(string(out), "gvsb"+strconv.Itoa(os.Getpid())+"-") {
		t.Errorf("namespaces left behind:\n%s", out)
	}
}
