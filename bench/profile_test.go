package bench

import "testing"

func TestProfileFileName(t *testing.T) {
	for name, want := range map[string]string{
		"gvs-nat conn/s":             "gvs-nat-conn-s.pprof",
		"gvs-dr 64B 1K flows":        "gvs-dr-64B-1K-flows.pprof",
		"gvs-fullnat 1500B 1M flows": "gvs-fullnat-1500B-1M-flows.pprof",
	} {
		if got := profileFileName(name); got != want {
			t.Errorf("profileFileName(%q) = %q, want %q", name, got, want)
		}
	}
}
