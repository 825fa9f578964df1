package main

import (
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/gvs-project/gvs/trace"
)

// tflags are gvs's --trace and --pcap options.
type tflags struct {
	trace        *bool
	rate         *int
	pcap         *string
	maxBytes     *int64
	servicesOnly *bool
	sample       *int
}

func traceFlags(fs *pflag.FlagSet) *tflags {
	return &tflags{
		trace: fs.Bool("trace", false, "print each packet of the virtual services, rate-limited: the fields gvs changed and why "+
			"(gvsadm --trace on|off switches it while gvs runs)"),
		rate: fs.Int("trace-rate", trace.DefaultRate, "trace at most `N` packets a second (the rest are counted)"),
		pcap: fs.String("pcap", "", "write every frame gvs receives and sends to the pcapng file `FILE` (Wireshark, tcpdump)"),
		maxBytes: fs.Int64("pcap-max-bytes", trace.DefaultPcapMaxBytes,
			"stop the capture (the file stays complete) before it grows past `N` bytes"),
		servicesOnly: fs.Bool("pcap-services-only", false, "capture only frames of the virtual services and the frames gvs sends"),
		sample:       fs.Int("pcap-sample", 1, "capture one received frame in `N`, with the frames gvs sent for it"),
	}
}

// config checks the options and returns the trace's configuration (the
// trace goes to standard output).
func (f *tflags) config(fs *pflag.FlagSet) (*trace.Config, error) {
	if *f.rate < 1 {
		return nil, fmt.Errorf("--trace-rate %d: want at least 1 packet a second", *f.rate)
	}
	if *f.maxBytes < 1 {
		return nil, fmt.Errorf("--pcap-max-bytes %d: want a positive size", *f.maxBytes)
	}
	if *f.sample < 1 {
		return nil, fmt.Errorf("--pcap-sample %d: want 1 (every frame) or more", *f.sample)
	}
	if *f.pcap == "" {
		for _, name := range []string{"pcap-max-bytes", "pcap-services-only", "pcap-sample"} {
			if fs.Changed(name) {
				return nil, fmt.Errorf("--%s goes with --pcap FILE", name)
			}
		}
	}
	return &trace.Config{Out: os.Stdout, On: *f.trace, Rate: *f.rate, Pcap: *f.pcap, PcapMaxBytes: *f.maxBytes,
		PcapServicesOnly: *f.servicesOnly, PcapSample: *f.sample}, nil
}
