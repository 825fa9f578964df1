// Command gvs-bench measures how many packets per second gvs forwards,
// next to the kernel's own forwarding and nftables DNAT measured in the
// same run on the same machine, so that gvs's cost is always read as a
// ratio against a baseline rather than as an absolute number.
//
// # What it measures
//
// One run builds its own network in namespaces (see package
// github.com/gvs-project/gvs/bench/topo for the picture): a generator
// namespace cabled to a director namespace, whose second interface is on a
// bridge with two sink namespaces. Addresses are from 198.18.0.0/15, the
// benchmarking range; no frame leaves the machine. For each forwarding
// path, the director is set up, and for each frame size the generator sends
// for --duration, --repeats times:
//
//	kernel    the kernel's IPv4 forwarding (ip_forward=1), flows alternating between the two sinks' addresses
//	nft-dnat  nftables DNAT of VIP:9 to the two sinks (numgen inc mod 2), if the nft command exists
//	gvs-dr    gvs in direct-routing mode (gvsadm -A -u VIP:9 -s rr; -a -r SINK -g -w 1 for both sinks)
//
// For each point it reports:
//
//   - delivered packets per second: the sum of the sinks' rx_packets
//     deltas (an nftables ingress rule drops the frames right after their
//     eth0 counted them, so the sinks cost next to nothing), divided by the
//     generator's sending time; median and min–max over the repeats;
//   - loss: sent (the generator's eth0 tx_packets plus tx_dropped, which
//     on veth counts frames the director's backlog refused) minus
//     delivered, over sent;
//   - CPU time per delivered packet: the forwarder's ("fwd": for gvs, the
//     gvs process's utime+stime from /proc/<pid>/stat; for the kernel
//     paths, the machine's softirq time from /proc/stat, where their
//     forwarding runs); the whole director side's ("dir": the same for the
//     kernel paths; for gvs, its own time plus the softirq time of the
//     director's receive into gvs's ring, on the generator's CPU), the
//     figure that compares like with like; and the whole machine's busy
//     time (all CPUs, generator included);
//   - ratios of pps and of both CPU figures against the kernel path at the
//     same frame size;
//   - the other load: CPU time that neither this program, nor gvs, nor the
//     kernel's ksoftirqd threads used during the point, in percent of one
//     CPU. Above 10% the point is flagged as unreliable.
//
// The table goes to standard output, progress to standard error, and with
// --json FILE the whole run (every sample, host, pinning, configuration)
// as JSON.
//
// # How
//
// The generator is pure Go (package bench/pktgen): UDP frames written into
// a TPACKET_V2 transmit ring (internal/afpacket) by one thread pinned to
// --gen-cpu (0), 64 frames per sendto, over --flows flows (1024 source
// ports), without a rate limit: every point is a saturation test (when all
// its ring slots are in flight it sleeps 50 µs rather than spin, so that
// softirq work deferred to ksoftirqd on its CPU can free them). Frame
// sizes count the 4-byte FCS, as RFC 2544 does: 64 means 60 bytes in the
// ring, 1518 is a full 1500-byte IP packet. gvs runs under taskset on
// --fwd-cpu (1) (or gets every thread's affinity set if taskset is
// missing). RPS is off on every interface. Before a path's first point the
// generator warms it up until both sinks receive (this also lets gvs
// resolve its real servers by ARP). After each point the sinks' counters
// are read until they stop moving, so frames still queued count.
//
// Offloads keep the kernel's defaults everywhere: no point needed them off
// (the generator sends single, fully checksummed frames, which no offload
// changes). Later bulk and TCP points must keep them on.
//
// # Caveats
//
//   - veth is not a NIC. A frame sent on veth is received by its peer in
//     softirq on the sending CPU, at the end of the sendto. For the kernel
//     paths, the generator, the forwarding, the bridge and the sinks'
//     receive all run on the generator's CPU: their pps is the rate one CPU
//     achieves doing all of it. For gvs, the generator and the director's
//     receive (into gvs's ring) run on CPU 0 and gvs, its transmit, the
//     bridge and the sinks on CPU 1: gvs has two CPUs where the kernel has
//     one, so its pps may exceed the kernel's while it spends more per
//     packet. gvs's utime+stime includes the softirq work (bridge, sinks)
//     that runs at the end of its own sendto calls, as the kernel paths'
//     softirq time includes the same work; it leaves out the director's
//     receive into gvs's ring (tpacket_rcv and gvs's ingress filter), which
//     runs in softirq on CPU 0: the "dir" figure adds it. Frames a path
//     loses still cost the generator and the director's receive, and are
//     charged to the packets it delivered.
//   - On a 2-vCPU VM the hypervisor, the bench tool's own goroutines and
//     anything else running share the two CPUs; a busy machine is warned
//     about (load average above 0.5 per CPU before starting, other load
//     above 10% of a CPU during a point) but not refused.
//   - CPU times are sampled by the scheduler tick (see bench/cpustat):
//     statistical, at 10 ms resolution per CPU, good over seconds.
//   - Read the ratios, not the absolute numbers: they change with the
//     machine, the kernel and the VM, the ratios much less.
//
// # Running
//
//	sudo go run ./bench                       # the full run: 5 s × 3 repeats, 64 and 1500 bytes (a few minutes)
//	sudo go run ./bench --quick               # one 1 s repeat, 64 bytes only (under a minute; what CI runs)
//	sudo go run ./bench --json out.json --paths kernel,gvs-dr --sizes 64,512,1518
//	sudo go run ./bench --keep -v             # print every command and leave the namespaces for a look
//
// It needs root (network namespaces, AF_PACKET), the ip command, and either
// the go command and the source tree (it builds gvs and gvsadm from the
// module it is in) or --gvs and --gvsadm. It removes everything it created
// when it ends, also on Ctrl-C or SIGTERM (a second Ctrl-C kills it at
// once; then `ip netns list | grep gvsb` shows what to delete).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/gvs-project/gvs/bench/cpustat"
	"github.com/gvs-project/gvs/bench/pktgen"
	"github.com/gvs-project/gvs/bench/topo"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Defaults and bounds of the flags.
const (
	defaultDuration = 5 * time.Second
	defaultRepeats  = 3
	defaultFlows    = 1024
	quickDuration   = time.Second
	// A warm-up round: long enough to prime everything, short enough
	// not to matter next to the points.
	defaultWarmup = time.Second
	quickWarmup   = 300 * time.Millisecond
	// Guards against typos that would run for hours.
	maxDuration = 10 * time.Minute
	maxRepeats  = 100
	// busyLoad is the load average per CPU above which the machine is
	// called busy.
	busyLoad = 0.5
	// noisyOther is the CPU time of other processes, in percent of one
	// CPU, above which a run is called unreliable: a tenth of a CPU
	// taken from the generator or the forwarder moves the result by
	// about as much.
	noisyOther = 10.0
)

var defaultSizes = []int{64, 1500}

type options struct {
	duration, warmup time.Duration
	repeats, flows   int
	sizes            []int
	quick, keep      bool
	verbose          bool
	jsonFile         string
	paths            []string
	genCPU, fwdCPU   int
	gvs, gvsadm      string
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("gvs-bench", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.DurationVar(&o.duration, "duration", defaultDuration, "sending time of each point")
	fs.IntVar(&o.repeats, "repeats", defaultRepeats, "runs of each point (median and min–max are reported)")
	fs.IntSliceVar(&o.sizes, "sizes", defaultSizes, "frame sizes in bytes on the wire, FCS included (64..1518)")
	fs.IntVar(&o.flows, "flows", defaultFlows, "flows (distinct UDP source ports)")
	fs.BoolVar(&o.quick, "quick", false, "one 1 s repeat of 64-byte frames (what CI runs); explicit flags still win")
	fs.StringVar(&o.jsonFile, "json", "", "write the results as JSON to this file")
	fs.BoolVar(&o.keep, "keep", false, "leave the namespaces in place at the end, for debugging")
	fs.StringSliceVar(&o.paths, "paths", nil, "paths to measure (default all: kernel,nft-dnat,gvs-dr)")
	fs.DurationVar(&o.warmup, "warmup", 0, "warm-up round before a path's first point (default 1s, 300ms with --quick)")
	fs.IntVar(&o.genCPU, "gen-cpu", 0, "CPU the generator's thread is pinned to")
	fs.IntVar(&o.fwdCPU, "fwd-cpu", 1, "CPU gvs is pinned to")
	fs.StringVar(&o.gvs, "gvs", "", "gvs binary to use instead of building one (with --gvsadm)")
	fs.StringVar(&o.gvsadm, "gvsadm", "", "gvsadm binary to use instead of building one (with --gvs)")
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "print every command run")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: gvs-bench [flags]   (as root)\n\nMeasures gvs's forwarding against the kernel's, in network namespaces.\n\n%s", fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "gvs-bench: %v\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gvs-bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if o.quick {
		if !fs.Changed("duration") {
			o.duration = quickDuration
		}
		if !fs.Changed("repeats") {
			o.repeats = 1
		}
		if !fs.Changed("sizes") {
			o.sizes = []int{pktgen.MinSize}
		}
	}
	if o.warmup == 0 {
		o.warmup = defaultWarmup
		if o.quick {
			o.warmup = quickWarmup
		}
	}
	if err := o.check(); err != nil {
		fmt.Fprintf(stderr, "gvs-bench: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	go func() {
		// After the first signal, the next one kills at once (the
		// default action) instead of waiting for the clean-up.
		<-ctx.Done()
		stop()
	}()
	rep, err := bench(ctx, o, stderr)
	if rep != nil && len(rep.Results)+len(rep.Skipped)+len(rep.Failed) > 0 {
		fmt.Fprintln(stdout)
		printTable(stdout, rep)
		if o.jsonFile != "" {
			if jerr := writeJSON(o.jsonFile, rep); jerr != nil {
				fmt.Fprintf(stderr, "gvs-bench: %v\n", jerr)
				return 1
			}
			fmt.Fprintf(stderr, "results written to %s\n", o.jsonFile)
		}
	}
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(stderr, "gvs-bench: interrupted")
		return 130
	case err != nil:
		fmt.Fprintf(stderr, "gvs-bench: %v\n", err)
		return 1
	case len(rep.Failed) > 0:
		return 1
	}
	return 0
}

func (o *options) check() error {
	switch {
	case o.duration <= 0 || o.duration > maxDuration:
		return fmt.Errorf("--duration %v not in (0, %v]", o.duration, maxDuration)
	case o.warmup < 0 || o.warmup > maxDuration:
		return fmt.Errorf("--warmup %v not in [0, %v]", o.warmup, maxDuration)
	case o.repeats < 1 || o.repeats > maxRepeats:
		return fmt.Errorf("--repeats %d not in [1, %d]", o.repeats, maxRepeats)
	case o.flows < 1 || basePort+o.flows-1 > 0xffff:
		return fmt.Errorf("--flows %d not in [1, %d]", o.flows, 0xffff-basePort+1)
	case (o.gvs == "") != (o.gvsadm == ""):
		return errors.New("--gvs and --gvsadm go together")
	case o.genCPU < 0 || o.fwdCPU < 0:
		return errors.New("--gen-cpu and --fwd-cpu must not be negative")
	}
	if err := checkSizes(o.sizes, pktgen.MinSize, pktgen.MaxSize); err != nil {
		return err
	}
	known := map[string]bool{}
	for _, p := range allPaths() {
		known[p.Name()] = true
	}
	for _, p := range o.paths {
		if !known[p] {
			var names []string
			for _, p := range allPaths() {
				names = append(names, p.Name())
			}
			return fmt.Errorf("--paths: unknown path %q (known: %s)", p, strings.Join(names, ", "))
		}
	}
	return nil
}

// bench does the run. The report it returns holds whatever was measured,
// also when it returns an error.
func bench(ctx context.Context, o options, stderr io.Writer) (*Report, error) {
	start := time.Now()
	progress := func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }
	if os.Geteuid() != 0 {
		return nil, errors.New("needs root: network namespaces and AF_PACKET sockets (run with sudo)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, errors.New("the ip command (iproute2) is missing")
	}
	genCPU, fwdCPU, shared := pickCPUs(o.genCPU, o.fwdCPU)
	rep := &Report{
		Version: reportVersion,
		Started: start.Format(time.RFC3339),
		Host:    hostInfo(),
		Config: RunConfig{
			DurationS: o.duration.Seconds(), WarmupS: o.warmup.Seconds(), Repeats: o.repeats,
			Sizes: o.sizes, Flows: o.flows, Quick: o.quick,
			GenCPU: genCPU, FwdCPU: fwdCPU,
			GenBatch: pktgen.DefaultBatch, GenRing: pktgen.DefaultRingFrames,
			Offloads:     "kernel defaults on every veth (unchanged)",
			RPS:          "off (rps_cpus=0 on every interface)",
			SizeNote:     "frame sizes count the 4-byte FCS (RFC 2544): the ring holds size-4 bytes",
			TopologyNote: "gen eth0 -> dir eth0 | dir eth1 -> bridge -> sink1, sink2 (veth, 198.18.0.0/15)",
			GvsPrebuilt:  o.gvs != "",
		},
		Footnotes: []string{
			"veth: receive work runs in softirq on the sending CPU; the kernel paths do all their work on the generator's CPU, gvs adds a second CPU",
			"CPU times are tick-sampled (USER_HZ 100); forwarder ns/pkt is gvs utime+stime for gvs and machine softirq for the kernel paths",
			"compare ratios, not absolute numbers",
		},
	}
	warn := func(format string, args ...any) {
		w := fmt.Sprintf(format, args...)
		rep.Warnings = append(rep.Warnings, w)
		progress("WARNING: %s", w)
	}
	if shared {
		warn("only %d CPU(s): the generator and gvs share CPU %d, so gvs's numbers are not comparable", runtime.NumCPU(), genCPU)
	}
	if l := rep.Host.LoadAvg1; l > busyLoad*float64(rep.Host.CPUs) {
		warn("the machine is busy: load average %.2f on %d CPUs (above %.1f per CPU); numbers will be noisy", l, rep.Host.CPUs, busyLoad)
	}

	var paths []path
	for _, p := range allPaths() {
		if len(o.paths) == 0 || slices.Contains(o.paths, p.Name()) {
			paths = append(paths, p)
		}
	}

	tmp, err := os.MkdirTemp("", "gvs-bench-")
	if err != nil {
		return rep, err
	}
	defer os.RemoveAll(tmp)
	e := &env{tmp: tmp, genCPU: genCPU, fwdCPU: fwdCPU, log: func(string, ...any) {}}
	if o.verbose {
		e.log = progress
	}
	if o.gvs != "" {
		e.gvs, e.gvsadm, e.gvsPrebuilt = o.gvs, o.gvsadm, true
	}
	if slices.ContainsFunc(paths, func(p path) bool { return p.Name() == (gvsDRPath{}).Name() }) && !e.gvsPrebuilt {
		wd, _ := os.Getwd()
		if e.moduleRoot, err = moduleRoot(wd); err != nil {
			return rep, err
		}
		progress("building gvs and gvsadm (%s)", e.moduleRoot)
		if err := e.buildGvs(ctx); err != nil {
			return rep, err
		}
		rep.Config.GvsBuildS = e.gvsBuildTime.Seconds()
	}

	var tlog io.Writer
	if o.verbose {
		tlog = stderr
	}
	progress("building the topology (namespaces gvsb%d-*)", os.Getpid())
	t, err := topo.New(ctx, topo.Config{Prefix: fmt.Sprintf("gvsb%d", os.Getpid()), Log: tlog})
	if err != nil {
		return rep, err
	}
	e.topo = t
	rep.Config.Sinks = "delivered = sum of the sinks' eth0 rx_packets deltas; the sinks drop with " + t.SinkDrop
	if o.keep {
		defer func() {
			progress("--keep: the namespaces stay: %s\nremove them with: for n in %s; do ip netns del $n; done",
				strings.Join(t.Namespaces(), " "), strings.Join(t.Namespaces(), " "))
		}()
	} else {
		defer t.Close()
	}
	gen, err := openGenerator(t, genCPU)
	if err != nil {
		return rep, err
	}
	defer gen.Close()
	r := &runner{e: e, gen: gen}
	if r.ksoftirqd, err = cpustat.PIDsByComm("ksoftirqd/"); err != nil {
		return rep, err
	}

	for _, p := range paths {
		if why := p.Skip(); why != "" {
			rep.Skipped = append(rep.Skipped, Skipped{Path: p.Name(), Reason: why})
			progress("%s: skipped: %s", p.Name(), why)
			continue
		}
		rep.Paths = append(rep.Paths, PathDoc{Name: p.Name(), Description: p.Describe()})
		results, err := r.runPath(ctx, p, o, progress)
		rep.Results = append(rep.Results, results...)
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			rep.Failed = append(rep.Failed, Skipped{Path: p.Name(), Reason: err.Error()})
			progress("%s: FAILED: %v", p.Name(), err)
		}
	}
	noisy, total, worst := 0, 0, 0.0
	for _, res := range rep.Results {
		for _, sm := range res.Samples {
			total++
			if sm.OtherCPUPct > noisyOther {
				noisy++
			}
			worst = max(worst, sm.OtherCPUPct)
		}
	}
	if noisy > 0 {
		warn("other processes used more than %.0f%% of a CPU during %d of %d runs (up to %.0f%%): those numbers are unreliable; rerun on a quiet machine",
			noisyOther, noisy, total, worst)
	}
	ratios(rep.Results)
	rep.ElapsedS = time.Since(start).Seconds()
	return rep, ctx.Err()
}

// runPath starts a path, warms it up and measures its points.
func (r *runner) runPath(ctx context.Context, p path, o options, progress func(string, ...any)) (results []Result, err error) {
	progress("%s: starting", p.Name())
	s, err := p.Start(ctx, r.e)
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	defer func() {
		if serr := s.Stop(); serr != nil {
			err = errors.Join(err, fmt.Errorf("stop: %w", serr))
		}
	}()
	wf, err := r.frames(s, slices.Min(o.sizes), o.flows)
	if err != nil {
		return nil, err
	}
	if err := r.warmup(ctx, s, wf, o.warmup); err != nil {
		return nil, err
	}
	for _, size := range o.sizes {
		f, err := r.frames(s, size, o.flows)
		if err != nil {
			return results, err
		}
		res := Result{Path: p.Name(), Size: size, CPUSource: s.CPUSource, Pinning: s.Pinning}
		for i := range o.repeats {
			sm, err := r.measure(ctx, s, f, o.duration)
			if err != nil {
				return results, err
			}
			res.Samples = append(res.Samples, sm)
			progress("%s %dB run %d/%d: %s pps delivered of %s sent (loss %.1f%%), ns/pkt: forwarder %.0f, director %.0f, machine %.0f; CPU busy %s, other load %.0f%%",
				p.Name(), size, i+1, o.repeats, fmtPPS(sm.PPS), fmtPPS(sm.SentPPS), sm.LossPct,
				sm.ForwarderNsPerPkt, sm.DirectorNsPerPkt, sm.MachineNsPerPkt, fmtPcts(sm.CPUBusyPct), sm.OtherCPUPct)
		}
		res.summarize()
		results = append(results, res)
	}
	return results, nil
}

func fmtPcts(v []float64) string {
	var s []string
	for _, p := range v {
		s = append(s, fmt.Sprintf("%.0f%%", p))
	}
	return strings.Join(s, "/")
}

// hostInfo describes the machine.
func hostInfo() Host {
	h := Host{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		h.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	h.LoadAvg1, _ = cpustat.LoadAvg()
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				h.CPUModel = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return h
}

// goroot is the Go installation that built this program.
func goroot() string {
	if g := os.Getenv("GOROOT"); g != "" {
		return g
	}
	return runtime.GOROOT() //nolint:staticcheck // a hint only; $PATH comes first
}
