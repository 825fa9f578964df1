package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestBenchSubcommand checks that `gvs bench` is the bench tool: its help,
// and its refusal of a bad flag before it touches anything.
func TestBenchSubcommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"bench", "--help"}, &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "--quick") || !strings.Contains(stderr.String(), "--svg") {
		t.Errorf("gvs bench --help: exit %d, stderr:\n%s", code, stderr.String())
	}
	stderr.Reset()
	if code := run([]string{"bench", "--sizes", "9000"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "frame sizes 9000") {
		t.Errorf("gvs bench --sizes 9000: exit %d, stderr %q; want 2 and the bad size named", code, stderr.String())
	}
}
