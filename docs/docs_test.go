package docs

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gvs-project/gvs/internal/nstest"
	"github.com/gvs-project/gvs/lab"
)

var update = flag.Bool("update", false, "rewrite the guides' excerpts with what the labs print now (make docs)")

// guides are the files with excerpts, relative to this folder.
func guides(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, pat := range []string{"*.md", "modes/*.md"} {
		m, err := filepath.Glob(pat)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	sort.Strings(files)
	if len(files) == 0 {
		t.Fatal("no guides found")
	}
	return files
}

// buildBinaries builds gvs and gvsadm as make build does.
func buildBinaries(t *testing.T) Binaries {
	t.Helper()
	dir := t.TempDir()
	bins := Binaries{Gvs: filepath.Join(dir, "gvs"), Gvsadm: filepath.Join(dir, "gvsadm")}
	for bin, pkg := range map[string]string{bins.Gvs: "../cmd/gvs", bins.Gvsadm: "../cmd/gvsadm"} {
		cmd := exec.Command("go", "build", "-o", bin, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", pkg, err, out)
		}
	}
	return bins
}

// TestExcerpts runs each mode's lab once and checks that every excerpt in
// the guides is what the lab prints now, after normalisation; with
// -update (make docs) it writes them instead.
func TestExcerpts(t *testing.T) {
	nstest.Require(t)
	bins := buildBinaries(t)
	runs := map[lab.Mode]*Run{}
	var mu sync.Mutex
	t.Run("labs", func(t *testing.T) {
		for _, m := range lab.Modes {
			t.Run(string(m), func(t *testing.T) {
				t.Parallel()
				r, err := RunMode(context.Background(), bins, m, nstest.Name("gvdoc"), t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				runs[m] = r
				mu.Unlock()
			})
		}
	})
	if t.Failed() {
		return
	}
	if err := checkFacts(runs); err != nil {
		t.Errorf("what the guides say about the labs is no longer true:\n%v", err)
	}
	excerpts, err := Excerpts(runs)
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range guides(t) {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		doc := string(b)
		if *update {
			newDoc, err := splice(doc, excerpts)
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if newDoc != doc {
				if err := os.WriteFile(file, []byte(newDoc), 0o644); err != nil {
					t.Fatal(err)
				}
				t.Logf("%s: excerpts updated", file)
			}
			continue
		}
		ms, err := findMarked(doc)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, m := range ms {
			ex, ok := excerpts[m.name]
			if !ok {
				t.Errorf("docs/%s:%d: no excerpt %q (see registry in docs/excerpts.go)", file, m.line, m.name)
				continue
			}
			if want := fenced(ex); m.inner != want {
				t.Errorf("docs/%s:%d: excerpt %s is not what the lab prints now (-guide +lab):\n%s\n"+
					"Run `make docs` (as root) to regenerate the guides' excerpts, and read the change.",
					file, m.line, m.name, cmp.Diff(m.inner, want))
			}
		}
	}
}

// TestGuidesUseEveryExcerpt: every excerpt a guide marks is one the
// generator makes, and every one it makes is quoted somewhere.
func TestGuidesUseEveryExcerpt(t *testing.T) {
	known := map[string]bool{}
	for _, e := range registry() {
		if known[e.name] {
			t.Errorf("excerpt %s registered twice", e.name)
		}
		known[e.name] = true
	}
	used := map[string]bool{}
	for _, file := range guides(t) {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		ms, err := findMarked(string(b))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, m := range ms {
			if !known[m.name] {
				t.Errorf("%s:%d: no excerpt %q in the registry", file, m.line, m.name)
			}
			used[m.name] = true
		}
	}
	var unused []string
	for name := range known {
		if !used[name] {
			unused = append(unused, name)
		}
	}
	slices.Sort(unused)
	if len(unused) > 0 {
		t.Errorf("excerpts no guide quotes (remove them from the registry or quote them): %v", unused)
	}
}
