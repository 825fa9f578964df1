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

// TestBadFlagsSaySo: a flag gvs does not know, or a value it cannot parse,
// ends with status 2 and a message naming it, for every subcommand.
func TestBadFlagsSaySo(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--bogus"}, "gvs: unknown flag: --bogus"},
		{[]string{"-i", "eth0", "--conn-max", "lots"}, `gvs: invalid argument "lots" for "--conn-max" flag`},
		{[]string{"-i", "eth0", "--rx-ring", "v4"}, `gvs: --rx-ring "v4": want v2 or v3`},
		{[]string{"-i", "eth0", "--busy-poll", "2ms"}, `gvs: --busy-poll 2ms: want 0 to 1ms`},
		{[]string{"-i", "eth0", "--busy-poll", "-1us"}, `gvs: --busy-poll -1µs: want 0 to 1ms`},
		{[]string{"-i", "eth0", "--busy-poll", "soon"}, `gvs: invalid argument "soon" for "--busy-poll" flag`},
		{[]string{"-i", "eth0", "--pprof"}, "gvs: --pprof serves the profiles on the metrics endpoint: give --metrics-addr HOST:PORT too"},
		{[]string{"demo", "--bogus"}, "gvs demo: unknown flag: --bogus"},
		{[]string{"realserver", "--undo=maybe"}, `gvs realserver: invalid argument "maybe" for "--undo" flag`},
	} {
		var out bytes.Buffer
		if code := run(tc.args, &out, &out); code != 2 {
			t.Errorf("gvs %v: exit %d, want 2\n%s", tc.args, code, out.String())
		}
		if !strings.Contains(out.String(), tc.want) {
			t.Errorf("gvs %v: output lacks %q:\n%s", tc.args, tc.want, out.String())
		}
	}
}
