package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
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
	// defaultManyFlows is a million flows (2^20): 32 source addresses
	// of 32768 ports.
	defaultManyFlows = 1 << 20
	// Latency: a moderate fixed rate (the 50 Kpps), 2 s per run:
	// 100 000 samples, enough for a stable p99, at a fraction of a
	// throughput point's time.
	defaultLatencyRate     = 50000
	defaultLatencyDuration = 2 * time.Second
	quickLatencyDuration   = 500 * time.Millisecond
	// gvs's --busy-poll for the second latency point of each gvs path
	// (the first runs gvs as its defaults have it: no busy polling).
	defaultBusyPoll = 50 * time.Microsecond
	maxBusyPoll     = time.Millisecond
	// TCP: wrk's connections (the reference figures used -c64),
	// and the most a bulk run sends: 64 GiB, more than 5 s carry at 100
	// Gbit/s, so that a run lasts --duration like every other point (with
	// 1 GiB, direct's runs took a quarter of a second and gvs's under one).
	defaultTCPConns  = 64
	defaultBulkBytes = 64 << 30
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
	manyFlows        int
	sizes            []int
	quick, keep      bool
	verbose          bool
	jsonFile         string
	svgFile          string
	profileDir       string
	paths            []string
	tcpPaths         []string
	genCPU, fwdCPU   int
	gvs, gvsadm      string
	selfGvs          string // gvs's own executable, under `gvs bench`
	noInstall        bool

	latencyRate     int
	latencyDuration time.Duration
	busyPoll        time.Duration

	tcpConns int
	bulkMax  int64 // bytes
}

// Main runs the tool with its command-line arguments (without the program
// name), writing the table to stdout and progress to stderr, and returns
// the exit status: 0, 1 when a path failed or the run could not be done, 2
// for bad arguments, 130 when interrupted. gvs is the gvs binary to
// benchmark when the caller is gvs itself (`gvs bench`: its own
// executable), or "" to build one from the source tree; --gvs wins.
func Main(args []string, stdout, stderr io.Writer, gvs string) int {
	fs := pflag.NewFlagSet("gvs-bench", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.DurationVar(&o.duration, "duration", defaultDuration, "sending time of each point")
	fs.IntVar(&o.repeats, "repeats", defaultRepeats, "runs of each point (median and min–max are reported)")
	fs.IntSliceVar(&o.sizes, "sizes", defaultSizes, "frame sizes in bytes on the wire, FCS included (64..1518)")
	fs.IntVar(&o.flows, "flows", defaultFlows, "flows (distinct UDP source ports)")
	fs.IntVar(&o.manyFlows, "many-flows", defaultManyFlows, "flows of the extra gvs-dr and gvs-nat points at the smallest size (0: none; default 0 with --quick)")
	fs.BoolVar(&o.quick, "quick", false, "one short repeat of every path at 64 bytes, no many-flows point (what CI runs); explicit flags still win")
	fs.StringVar(&o.jsonFile, "json", "", "write the results as JSON to this file")
	fs.StringVar(&o.svgFile, "svg", "", "write a bar chart of pps per path and frame size as SVG to this file")
	fs.StringVar(&o.profileDir, "profile", "", "write a CPU profile of gvs for the first run of each gvs point to this directory (go tool pprof; gvs --pprof)")
	fs.BoolVar(&o.keep, "keep", false, "leave the namespaces in place at the end, for debugging")
	fs.StringSliceVar(&o.paths, "paths", nil, "UDP paths to measure (default all: "+strings.Join(pathNames(), ",")+"; none: -)")
	fs.StringSliceVar(&o.tcpPaths, "tcp-paths", nil, "TCP paths to measure (default all: "+strings.Join(tcpPathNames(), ",")+"; none: -)")
	fs.IntVar(&o.latencyRate, "latency-rate", defaultLatencyRate, "frames per second of the latency points (0: no latency points)")
	fs.DurationVar(&o.latencyDuration, "latency-duration", defaultLatencyDuration, "sending time of each latency run (default 2s, 500ms with --quick)")
	fs.DurationVar(&o.busyPoll, "busy-poll", defaultBusyPoll, "gvs --busy-poll of a second latency point of each gvs path (0: none; default none with --quick)")
	fs.IntVar(&o.tcpConns, "tcp-conns", defaultTCPConns, "concurrent connections of the TCP request points (wrk -c)")
	fs.Int64Var(&o.bulkMax, "bulk-bytes", defaultBulkBytes, "bytes a bulk TCP run sends at most (it also stops after --duration)")
	fs.BoolVar(&o.noInstall, "no-install", false, "do not apt-get install missing tools (nftables, haproxy, wrk); skip their paths instead")
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
		if !fs.Changed("many-flows") {
			o.manyFlows = 0
		}
		if !fs.Changed("latency-duration") {
			o.latencyDuration = quickLatencyDuration
		}
		if !fs.Changed("busy-poll") {
			o.busyPoll = 0
		}
	}
	o.selfGvs = gvs
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
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			fmt.Fprintf(stderr, "gvs-bench: --profile %q: %v\n", o.profileDir, err)
			return 2
		}
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
	if rep != nil && len(rep.Results)+len(rep.Latency)+len(rep.TCP)+len(rep.Skipped)+len(rep.Failed) > 0 {
		fmt.Fprintln(stdout)
		printTable(stdout, rep)
		if o.svgFile != "" {
			if serr := writeSVG(o.svgFile, rep); serr != nil {
				fmt.Fprintf(stderr, "gvs-bench: %v\n", serr)
				return 1
			}
			fmt.Fprintf(stderr, "chart written to %s\n", o.svgFile)
		}
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
	case o.manyFlows < 0 || o.manyFlows > maxManyFlows:
		return fmt.Errorf("--many-flows %d not in [0, %d]", o.manyFlows, maxManyFlows)
	case o.latencyRate < 0 || o.latencyRate > maxLatencyRate:
		return fmt.Errorf("--latency-rate %d not in [0, %d]", o.latencyRate, maxLatencyRate)
	case o.latencyDuration <= 0 || o.latencyDuration > maxDuration:
		return fmt.Errorf("--latency-duration %v not in (0, %v]", o.latencyDuration, maxDuration)
	case o.busyPoll < 0 || o.busyPoll > maxBusyPoll:
		return fmt.Errorf("--busy-poll %v not in [0, %v]", o.busyPoll, maxBusyPoll)
	case o.tcpConns < 2 || o.tcpConns > maxTCPConns:
		return fmt.Errorf("--tcp-conns %d not in [2, %d]", o.tcpConns, maxTCPConns)
	case o.bulkMax < 1<<20:
		return fmt.Errorf("--bulk-bytes %d below 1 MiB", o.bulkMax)
	case (o.gvs == "") != (o.gvsadm == ""):
		return errors.New("--gvs and --gvsadm go together")
	case o.genCPU < 0 || o.fwdCPU < 0:
		return errors.New("--gen-cpu and --fwd-cpu must not be negative")
	}
	if err := checkSizes(o.sizes, pktgen.MinSize, pktgen.MaxSize); err != nil {
		return err
	}
	if err := checkNames("--paths", o.paths, pathNames()); err != nil {
		return err
	}
	return checkNames("--tcp-paths", o.tcpPaths, tcpPathNames())
}

// Bounds of the new flags: against typos, not against the machine.
const (
	maxManyFlows   = pktgen.MaxSrcs * 32768
	maxLatencyRate = 1000000
	maxTCPConns    = 10000
)

// checkNames checks the names given to a --paths flag ("-" alone: none).
func checkNames(flag string, given, known []string) error {
	if len(given) == 1 && given[0] == "-" {
		return nil
	}
	for _, p := range given {
		if !slices.Contains(known, p) {
			return fmt.Errorf("%s: unknown path %q (known: %s)", flag, p, strings.Join(known, ", "))
		}
	}
	return nil
}

// selected returns the names in known that the flag's value selects.
func selected(given, known []string) []string {
	if len(given) == 0 {
		return known
	}
	if len(given) == 1 && given[0] == "-" {
		return nil
	}
	var out []string
	for _, k := range known {
		if slices.Contains(given, k) {
			out = append(out, k)
		}
	}
	return out
}

func pathNames() []string {
	var n []string
	for _, p := range allPaths() {
		n = append(n, p.Name())
	}
	return n
}

// bench does the run. The report it returns holds whatever was measured,
// also when it returns an error.
func bench(ctx context.Context, o options, stderr io.Writer) (*Report, error) {
	start := time.Now()
	progress := func(format string, args ...any) {
		fmt.Fprintf(stderr, "[%5.1fs] "+format+"\n", append([]any{time.Since(start).Seconds()}, args...)...)
	}
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
			Sizes: o.sizes, Flows: o.flows, ManyFlows: o.manyFlows, Quick: o.quick,
			GenCPU: genCPU, FwdCPU: fwdCPU,
			GenBatch: pktgen.DefaultBatch, GenRing: pktgen.DefaultRingFrames,
			Offloads:         "kernel defaults on every veth (unchanged; read with SIOCETHTOOL, see offloads_by_interface)",
			RPS:              "off (rps_cpus=0 on every interface)",
			SizeNote:         "frame sizes count the 4-byte FCS (RFC 2544): the ring holds size-4 bytes",
			TopologyNote:     "gen eth0 -> dir eth0 | dir eth1 -> bridge -> sink1, sink2 (veth, 198.18.0.0/15; sinks' side MTU 1600)",
			GvsPrebuilt:      o.gvs != "" || o.selfGvs != "",
			LatencyRate:      o.latencyRate,
			LatencyDurationS: o.latencyDuration.Seconds(),
			TCPConns:         o.tcpConns,
			BulkBytes:        o.bulkMax,
			ProfileDir:       o.profileDir,
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
	for _, name := range selected(o.paths, pathNames()) {
		for _, p := range allPaths() {
			if p.Name() == name {
				paths = append(paths, p)
			}
		}
	}
	var tcps []tcpPath
	for _, name := range selected(o.tcpPaths, tcpPathNames()) {
		for _, p := range allTCPPaths() {
			if p.Name() == name {
				tcps = append(tcps, p)
			}
		}
	}

	tmp, err := os.MkdirTemp("", "gvs-bench-")
	if err != nil {
		return rep, err
	}
	defer os.RemoveAll(tmp)
	e := &env{tmp: tmp, genCPU: genCPU, fwdCPU: fwdCPU, log: func(string, ...any) {}, missing: map[string]string{},
		profileDir: o.profileDir}
	if o.verbose {
		e.log = progress
	}

	// The tools of the baselines: installed with apt-get when missing
	// (as root, which the run is), or their paths are skipped.
	need := map[string]string{} // command -> Debian package
	for _, p := range paths {
		if p.Name() == (nftPath{}).Name() {
			need["nft"] = "nftables"
		}
	}
	for _, p := range tcps {
		for _, c := range p.Needs() {
			need[c] = debianPackage[c]
		}
		if slices.Contains(p.Tests(), testConn) || slices.Contains(p.Tests(), testReq) {
			need["wrk"] = debianPackage["wrk"]
		}
	}
	for _, c := range slices.Sorted(maps.Keys(need)) {
		if why := ensureCommand(ctx, c, need[c], !o.noInstall, progress); why != "" {
			e.missing[c] = why
		}
	}

	if o.gvs != "" {
		e.gvs, e.gvsadm, e.gvsPrebuilt = o.gvs, o.gvsadm, true
	} else if o.selfGvs != "" {
		// gvs bench: gvs is this program; gvsadm is its neighbour, or
		// on $PATH.
		adm := filepath.Join(filepath.Dir(o.selfGvs), "gvsadm")
		if _, err := os.Stat(adm); err != nil {
			adm, _ = exec.LookPath("gvsadm")
		}
		if adm != "" {
			e.gvs, e.gvsadm, e.gvsPrebuilt = o.selfGvs, adm, true
		}
	}
	usesGvs := slices.ContainsFunc(paths, func(p path) bool { return strings.HasPrefix(p.Name(), "gvs-") }) ||
		slices.ContainsFunc(tcps, func(p tcpPath) bool { return strings.HasPrefix(p.Name(), "gvs-") })
	if usesGvs && !e.gvsPrebuilt {
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
	rep.Config.Gvs = e.gvs

	var tlog io.Writer
	if o.verbose {
		tlog = stderr
	}
	r := &runner{e: e}
	if r.ksoftirqd, err = cpustat.PIDsByComm("ksoftirqd/"); err != nil {
		return rep, err
	}
	if len(paths) > 0 {
		if err := r.udpPhase(ctx, o, rep, paths, tlog, progress); err != nil {
			return rep, err
		}
	}
	if len(tcps) > 0 && ctx.Err() == nil {
		if err := r.tcpPhase(ctx, o, rep, tcps, tlog, progress); err != nil {
			return rep, err
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
	latencyRatios(rep.Latency)
	tcpRatios(rep.TCP)
	rep.Targets = targets(rep)
	rep.ElapsedS = time.Since(start).Seconds()
	return rep, ctx.Err()
}

// udpPhase builds the UDP topology and measures the paths on it.
func (r *runner) udpPhase(ctx context.Context, o options, rep *Report, paths []path, tlog io.Writer, progress func(string, ...any)) error {
	progress("building the topology (namespaces gvsb%d-*)", os.Getpid())
	t, err := topo.New(ctx, topo.Config{Prefix: fmt.Sprintf("gvsb%d", os.Getpid()), Log: tlog})
	if err != nil {
		return err
	}
	r.e.topo = t
	defer func() { r.e.topo = nil }()
	rep.Config.Sinks = "delivered = sum of the sinks' eth0 rx_packets deltas; the sinks drop with " + t.SinkDrop
	rep.Config.OffloadsByIface = map[string]string{}
	for _, i := range append([]topo.Iface{t.Gen, t.DirIn, t.DirOut}, t.Sinks...) {
		if off, err := t.Offloads(i); err == nil {
			rep.Config.OffloadsByIface[i.String()] = off
		}
	}
	if o.keep {
		defer func() {
			progress("--keep: the namespaces stay: %s\nremove them with: for n in %s; do ip netns del $n; done",
				strings.Join(t.Namespaces(), " "), strings.Join(t.Namespaces(), " "))
		}()
	} else {
		defer t.Close()
	}
	gen, err := openGenerator(t, r.e.genCPU)
	if err != nil {
		return err
	}
	defer gen.Close()
	r.gen = gen

	for _, p := range paths {
		if why := p.Skip(r.e); why != "" {
			rep.Skipped = append(rep.Skipped, Skipped{Path: p.Name(), Reason: why})
			progress("%s: skipped: %s", p.Name(), why)
			continue
		}
		rep.Paths = append(rep.Paths, PathDoc{Name: p.Name(), Description: p.Describe()})
		results, lat, err := r.runPath(ctx, p, o, progress)
		rep.Results = append(rep.Results, results...)
		rep.Latency = append(rep.Latency, lat...)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			rep.Failed = append(rep.Failed, Skipped{Path: p.Name(), Reason: err.Error()})
			progress("%s: FAILED: %v", p.Name(), err)
		}
	}
	return nil
}

// runPath starts a path, warms it up and measures its points: every size
// with --flows flows, the smallest with --many-flows flows if the path
// takes them, and the latency point.
func (r *runner) runPath(ctx context.Context, p path, o options, progress func(string, ...any)) (results []Result, lats []LatencyResult, err error) {
	progress("%s: starting", p.Name())
	s, err := p.Start(ctx, r.e)
	if err != nil {
		return nil, nil, fmt.Errorf("start: %w", err)
	}
	defer func() {
		if serr := s.Stop(); serr != nil {
			err = errors.Join(err, fmt.Errorf("stop: %w", serr))
		}
	}()
	wf, err := r.frames(s, slices.Min(o.sizes), o.flows)
	if err != nil {
		return nil, nil, err
	}
	if err := r.warmup(ctx, s, wf, o.warmup); err != nil {
		return nil, nil, err
	}
	type point struct{ size, flows int }
	var points []point
	for _, size := range o.sizes {
		points = append(points, point{size, o.flows})
	}
	if o.manyFlows > 0 && p.ManyFlows() {
		points = append(points, point{slices.Min(o.sizes), o.manyFlows})
	}
	for _, pt := range points {
		f, err := r.frames(s, pt.size, pt.flows)
		if err != nil {
			return results, nil, err
		}
		if pt.flows != o.flows {
			// Every flow once before measuring: the connection
			// table holds them all, as it would under steady load.
			progress("%s: %s flows: sending each once before measuring", p.Name(), fmtCount(pt.flows))
			if err := r.prime(ctx, f); err != nil {
				return results, nil, err
			}
		}
		res := Result{Path: p.Name(), Size: pt.size, Flows: pt.flows, CPUSource: s.CPUSource, Pinning: s.Pinning}
		for i := range o.repeats {
			profiled := profilePoint(ctx, s.Profile, i, o.duration, fmt.Sprintf("%s %dB %s flows", p.Name(), pt.size, fmtCount(pt.flows)), progress)
			sm, err := r.measure(ctx, s, f, o.duration)
			profiled()
			if err != nil {
				return results, nil, err
			}
			res.Samples = append(res.Samples, sm)
			progress("%s %dB %s flows run %d/%d: %s pps delivered of %s sent (loss %.1f%%), ns/pkt: forwarder %.0f, director %.0f, machine %.0f; CPU busy %s, other load %.0f%%",
				p.Name(), pt.size, fmtCount(pt.flows), i+1, o.repeats, fmtPPS(sm.PPS), fmtPPS(sm.SentPPS), sm.LossPct,
				sm.ForwarderNsPerPkt, sm.DirectorNsPerPkt, sm.MachineNsPerPkt, fmtPcts(sm.CPUBusyPct), sm.OtherCPUPct)
		}
		res.summarize()
		results = append(results, res)
	}
	if o.latencyRate > 0 {
		lr, err := r.latency(ctx, p, s, o, progress)
		if err != nil {
			return results, nil, fmt.Errorf("latency: %w", err)
		}
		lats = append(lats, lr)
	}
	if _, isGvs := p.(gvsPath); isGvs && o.latencyRate > 0 && o.busyPoll > 0 {
		// gvs again, with --busy-poll: its workers keep looking at
		// their rings for a while instead of sleeping at once, which
		// trades CPU for the wake-up that is most of gvs's latency.
		lr, err := r.busyPollLatency(ctx, p, &s, o, progress)
		if err != nil {
			return results, lats, fmt.Errorf("latency with --busy-poll: %w", err)
		}
		lats = append(lats, lr)
	}
	return results, lats, nil
}

// busyPollLatency restarts the gvs of path p (*s) with --busy-poll and
// measures its latency point again. *s is the new setup, for the caller
// to stop.
func (r *runner) busyPollLatency(ctx context.Context, p path, s **setup, o options, progress func(string, ...any)) (LatencyResult, error) {
	name := fmt.Sprintf("%s busy-poll %v", p.Name(), o.busyPoll)
	progress("%s: restarting gvs with --busy-poll %v", p.Name(), o.busyPoll)
	err := (*s).Stop()
	*s = &setup{Stop: func() error { return nil }} // stopped: the caller's Stop does nothing
	if err != nil {
		return LatencyResult{}, err
	}
	r.e.gvsFlags = []string{"--busy-poll", o.busyPoll.String()}
	ns, err := p.Start(ctx, r.e)
	r.e.gvsFlags = nil
	if err != nil {
		return LatencyResult{}, err
	}
	*s = ns
	wf, err := r.frames(ns, pktgen.MinSize, o.flows)
	if err != nil {
		return LatencyResult{}, err
	}
	if err := r.warmup(ctx, ns, wf, o.warmup); err != nil {
		return LatencyResult{}, err
	}
	return r.latency(ctx, named{p, name}, ns, o, progress)
}

// named is a path under another name.
type named struct {
	path
	name string
}

func (n named) Name() string { return n.name }

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
	h.CPUIdle = cpuIdle(readSys)
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

// readSys returns a sysfs file's content without its trailing newline,
// or "" when it cannot be read.
func readSys(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// cpuIdle says how the machine's idle CPUs wait, from sysfs (read through
// read): the cpuidle driver and governor, and for the haltpoll driver of
// KVM-style guests its guest_halt_poll_ns. A gvs worker sleeps on an idle
// CPU between batches (without --busy-poll), and a CPU that halts at once
// is woken through the hypervisor: that wake-up is most of the latency gvs
// adds by default (here: +18-22 us at p50 and +70-90 us at p99 with
// guest_halt_poll_ns 0, +11-15 and +49-60 with 200000, same session).
// "" when sysfs says nothing.
func cpuIdle(read func(string) string) string {
	const dir = "/sys/devices/system/cpu/cpuidle/"
	driver := read(dir + "current_driver")
	if driver == "" {
		return ""
	}
	governor := read(dir + "current_governor")
	if governor == "" {
		governor = read(dir + "current_governor_ro")
	}
	s := "cpuidle driver " + driver
	if governor != "" {
		s += ", governor " + governor
	}
	if driver != "haltpoll" {
		return s
	}
	ns := read("/sys/module/haltpoll/parameters/guest_halt_poll_ns")
	if ns == "" {
		return s
	}
	s += ", guest_halt_poll_ns " + ns
	if ns == "0" {
		s += " (an idle CPU halts at once and is woken through the hypervisor: most of what gvs adds without --busy-poll)"
	}
	return s
}

// goroot is the Go installation that built this program.
func goroot() string {
	if g := os.Getenv("GOROOT"); g != "" {
		return g
	}
	return runtime.GOROOT() //nolint:staticcheck // a hint only; $PATH comes first
}
