package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestTraceFlagErrors: bad --trace and --pcap options stop gvs before it
// opens anything, with a message naming the option.
func TestTraceFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--trace-rate", "0"}, "gvs: --trace-rate 0: want at least 1 packet a second\n"},
		{[]string{"--pcap", "x.pcapng", "--pcap-max-bytes", "-5"}, "gvs: --pcap-max-bytes -5: want a positive size\n"},
		{[]string{"--pcap", "x.pcapng", "--pcap-sample", "0"}, "gvs: --pcap-sample 0: want 1 (every frame) or more\n"},
		{[]string{"--pcap-sample", "10"}, "gvs: --pcap-sample goes with --pcap FILE\n"},
		{[]string{"--pcap-services-only"}, "gvs: --pcap-services-only goes with --pcap FILE\n"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"-i", "gvs-no-such-if0"}, tc.args...), &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tc.msg) {
			t.Errorf("gvs %v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr.String(), tc.msg)
		}
	}
}
