package docs

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSplice(t *testing.T) {
	doc := "# Guide\n\nBefore.\n\n<!-- gvs:excerpt dr/ln -->\nold text\n<!-- gvs:end -->\n\nBetween.\n" +
		"<!-- gvs:excerpt dr/lnc -->\n<!-- gvs:end -->\nAfter.\n"
	ex := map[string]string{"dr/ln": "node01# gvsadm -Ln\n    listing\n", "dr/lnc": "rows\n"}
	want := "# Guide\n\nBefore.\n\n<!-- gvs:excerpt dr/ln -->\n```text\nnode01# gvsadm -Ln\n    listing\n```\n<!-- gvs:end -->\n\nBetween.\n" +
		"<!-- gvs:excerpt dr/lnc -->\n```text\nrows\n```\n<!-- gvs:end -->\nAfter.\n"
	got, err := splice(doc, ex)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("(-want +got):\n%s", cmp.Diff(want, got))
	}
	again, err := splice(got, ex)
	if err != nil || again != got {
		t.Fatalf("splicing again changed the guide (%v):\n%s", err, cmp.Diff(got, again))
	}
	ms, err := findMarked(got)
	if err != nil {
		t.Fatal(err)
	}
	wantMarked := []marked{{"dr/ln", 5, fenced(ex["dr/ln"])}, {"dr/lnc", 13, fenced(ex["dr/lnc"])}}
	if diff := cmp.Diff(wantMarked, ms, cmp.AllowUnexported(marked{})); diff != "" {
		t.Errorf("findMarked (-want +got):\n%s", diff)
	}
}

func TestSpliceErrors(t *testing.T) {
	ex := map[string]string{"dr/ln": "x\n"}
	for _, tt := range []struct{ name, doc, want string }{
		{"unknown excerpt", "a\n<!-- gvs:excerpt dr/nope -->\n<!-- gvs:end -->\n", `line 2: no excerpt "dr/nope"`},
		{"no end", "a\n<!-- gvs:excerpt dr/ln -->\nb\n", "line 2: excerpt marker without <!-- gvs:end -->"},
		{"end alone", "a\n<!-- gvs:end -->\n", "line 2: <!-- gvs:end --> without an excerpt marker before it"},
		{"nested", "<!-- gvs:excerpt dr/ln -->\n<!-- gvs:excerpt dr/ln -->\n<!-- gvs:end -->\n", "line 2: excerpt marker inside the excerpt opened on line 1"},
		{"malformed", "<!-- gvs:excerpt DR ln -->\n", "line 1: malformed marker"},
		{"indented", "- item\n  <!-- gvs:excerpt dr/ln -->\n  <!-- gvs:end -->\n", "line 2: malformed marker"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := splice(tt.doc, ex)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("splice: %q, %v; want an error containing %q", got, err, tt.want)
			}
		})
	}
}
