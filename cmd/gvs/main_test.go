package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestMetricsAddrChecked: a --metrics-addr that is not HOST:PORT stops gvs
// with usage status 2 and a message naming it, before gvs opens anything
// (no interface named here exists, and no root is needed).
func TestMetricsAddrChecked(t *testing.T) {
	for _, addr := range []string{"foo", "127.0.0.1", "[::1"} {
		var out bytes.Buffer
		if code := run([]string{"-i", "gvs-no-such-if", "--metrics-addr", addr}, &out, &out); code != 2 {
			t.Errorf("--metrics-addr %q: exit %d, want 2\n%s", addr, code, out.String())
		}
		if want := `--metrics-addr "` + addr + `": want HOST:PORT`; !strings.Contains(out.String(), want) {
			t.Errorf("--metrics-addr %q: message %q lacks %q", addr, out.String(), want)
		}
	}
}

// TestHelpNamesMetrics: gvs --help documents --metrics-addr and its path.
func TestHelpNamesMetrics(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"--help"}, &out, &out); code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
	for _, want := range []string{"--metrics-addr ADDR", "http://ADDR/metrics", "GET /metrics"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("gvs --help lacks %q:\n%s", want, out.String())
		}
	}
}
