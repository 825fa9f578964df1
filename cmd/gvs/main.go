// Command gvs is the Go Virtual Server director: a user-space layer-4
// load balancer that does what Linux's IPVS does, for hosts without the
// ip_vs module.
//
//	gvs -i IFACE [-i IFACE ...] [--socket PATH] [--trace] [--pcap FILE]
//	                                                 serve the virtual services on these interfaces
//	gvs realserver --vip VIP [--dev IFACE] [--tun [--director ADDR]] [--undo]
//	                                                 make this host an LVS real server for VIP (DR; TUN with --tun)
//	gvs demo                                         run the seed's LVS-DR lab in network namespaces
//	gvs bench [--quick] [flags]                      the forwarding benchmark (make bench; see package bench)
//	gvs version
//
// Configure it with gvsadm, as you would configure IPVS with ipvsadm.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/gvs-project/gvs/conntrack"
	"github.com/gvs-project/gvs/control"
	"github.com/gvs-project/gvs/director"
	"github.com/gvs-project/gvs/internal/afpacket"
	"github.com/gvs-project/gvs/ipvsadm"
	"github.com/gvs-project/gvs/lab"
	"github.com/gvs-project/gvs/realserver"
)

// maxBusyPoll bounds --busy-poll: longer than a millisecond is not a
// latency choice any more, only CPU spent.
const maxBusyPoll = time.Millisecond

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "realserver":
			return realServer(args[1:], stdout, stderr)
		case "demo":
			return demo(args[1:], stdout, stderr)
		case "bench":
			return benchmark(args[1:], stdout, stderr)
		case "version":
			fmt.Fprintf(stdout, "gvs %s (IPVS %s semantics)\n", director.Version, director.IPVSVersion)
			return 0
		}
	}
	return daemon(args, stderr)
}

func daemon(args []string, stderr io.Writer) int {
	fs := pflag.NewFlagSet("gvs", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage:
  gvs -i IFACE [-i IFACE ...] [options]       run the director
  gvs realserver --vip VIP [--dev IFACE] [--tun [--director ADDR]] [--undo]
  gvs demo [--mode dr|nat|tun|fullnat] [--trace] [--keep]  the seed's LVS lab in network namespaces (root)
  gvs bench [--quick] [flags]                  the forwarding benchmark in network namespaces (root)
  gvs version

Options:
%s
Configure the virtual services with gvsadm (ipvsadm's commands).
With --metrics-addr, GET /metrics gives gvs's counters in Prometheus's format
(the README's "Metrics" section lists them); with --pprof too,
go tool pprof http://ADDR/debug/pprof/profile?seconds=10 profiles gvs's CPU.
SIGTERM or SIGINT stop gvs cleanly; SIGHUP reloads the --rules file.
`, fs.FlagUsages())
	}
	ifaces := fs.StringArrayP("interface", "i", nil, "serve on this interface (repeatable)")
	socket := fs.String("socket", "", "control socket path (default $GVS_SOCKET or "+control.DefaultSocket+")")
	socketGroup := fs.String("socket-group", "", "let this group's members use the control socket (mode 0660)")
	maxConns := fs.Int("conn-max", conntrack.DefaultMaxEntries, "the most connection entries the table holds")
	workers := fs.Int("workers", 1, "data-path workers per interface (PACKET_FANOUT by flow hash)")
	rules := fs.String("rules", "", "load this rules file (gvsadm -S / ipvsadm -S format) at start, and again on SIGHUP")
	metricsAddr := fs.String("metrics-addr", "", "serve Prometheus metrics at http://`ADDR`/metrics (HOST:PORT, e.g. 127.0.0.1:9610; off by default)")
	pprofOn := fs.Bool("pprof", false, "also serve Go's runtime profiles at http://ADDR/debug/pprof/ on the --metrics-addr endpoint (for go tool pprof)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "text or json")
	filterTable := fs.String("filter-table", "gvs", "name of gvs's nftables table (netdev family)")
	expireNodest := fs.Bool("expire-nodest-conn", false, "drop a removed real server's connections at their next packet (IPVS expire_nodest_conn)")
	rxRing := fs.String("rx-ring", "v2", "receive ring: v2 (a slot per frame, lowest latency) or v3 (frames packed in blocks: absorbs bursts, adds up to 1 ms of latency)")
	qdiscBypass := fs.Bool("qdisc-bypass", true, "send forwarded frames straight to the driver, past the interface's qdisc (PACKET_QDISC_BYPASS); =false to queue them through tc")
	receiveFilter := fs.Bool("receive-filter", true, "let into the receive rings only frames gvs may handle (a BPF filter rebuilt with the services: to their addresses, from NAT real servers, ICMP); =false to take every frame on the interfaces")
	busyPoll := fs.Duration("busy-poll", 0, "how long a worker keeps looking for frames before it sleeps (e.g. 50us): lower latency, more CPU; 0: sleep at once")
	expireQuiescent := fs.Bool("expire-quiescent-template", false, "reschedule persistent clients of a weight-0 real server (IPVS expire_quiescent_template)")
	tf := traceFlags(fs)
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gvs: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	if len(*ifaces) == 0 {
		fmt.Fprintln(stderr, "gvs: no interface given: serve at least one with -i IFACE")
		fs.Usage()
		return 2
	}
	if *metricsAddr != "" {
		if _, _, err := net.SplitHostPort(*metricsAddr); err != nil {
			fmt.Fprintf(stderr, "gvs: --metrics-addr %q: want HOST:PORT, e.g. 127.0.0.1:9610 (%v)\n", *metricsAddr, err)
			return 2
		}
	} else if *pprofOn {
		fmt.Fprintln(stderr, "gvs: --pprof serves the profiles on the metrics endpoint: give --metrics-addr HOST:PORT too")
		return 2
	}
	ringVersion, err := afpacket.ParseVersion(*rxRing)
	if err != nil {
		fmt.Fprintf(stderr, "gvs: --rx-ring %q: want v2 or v3\n", *rxRing)
		return 2
	}
	if *busyPoll < 0 || *busyPoll > maxBusyPoll {
		fmt.Fprintf(stderr, "gvs: --busy-poll %v: want 0 to %v\n", *busyPoll, maxBusyPoll)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "gvs: --log-level %q: %v\n", *logLevel, err)
		return 2
	}
	hopts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch *logFormat {
	case "text":
		h = slog.NewTextHandler(stderr, hopts)
	case "json":
		h = slog.NewJSONHandler(stderr, hopts)
	default:
		fmt.Fprintf(stderr, "gvs: --log-format %q: want text or json\n", *logFormat)
		return 2
	}
	log := slog.New(h)
	tcfg, err := tf.config(fs)
	if err != nil {
		fmt.Fprintf(stderr, "gvs: %v\n", err)
		return 2
	}

	// Read and check the rules file before opening anything: a bad file
	// must stop gvs with a clear reason, not leave it half configured.
	var batch *control.Request
	var lines []int
	if *rules != "" {
		b, err := os.ReadFile(*rules)
		if err != nil {
			log.Error("gvs cannot start: reading the rules file", "err", err)
			return 1
		}
		batch, lines, err = ipvsadm.ParseRestore(string(b), &ipvsadm.SystemNames{})
		if err != nil {
			log.Error("gvs cannot start: rules file "+*rules, "err", err)
			return 1
		}
	}

	// From here on, SIGINT and SIGTERM stop gvs cleanly (a signal during
	// start-up stops it as soon as it serves) and SIGHUP reloads --rules.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	d, err := director.New(director.Config{
		Interfaces:      *ifaces,
		Workers:         *workers,
		Socket:          control.SocketPath(*socket),
		SocketGroup:     *socketGroup,
		Conns:           &conntrack.Config{MaxEntries: *maxConns},
		FilterTable:     *filterTable,
		QdiscBypass:     *qdiscBypass,
		RXRing:          ringVersion,
		NoReceiveFilter: !*receiveFilter,
		BusyPoll:        *busyPoll,

		ExpireNodestConn:        *expireNodest,
		ExpireQuiescentTemplate: *expireQuiescent,
		MetricsAddr:             *metricsAddr,
		Pprof:                   *pprofOn,
		Log:                     log,
		Trace:                   tcfg,
	})
	if err != nil {
		log.Error("gvs cannot start", "err", err)
		return 1
	}
	if batch != nil && len(batch.Commands) > 0 {
		if rep := d.Handle(batch); rep.Error != nil {
			where := ""
			if i := rep.Error.Index; i >= 0 && i < len(lines) {
				where = fmt.Sprintf(" line %d", lines[i])
			}
			log.Error(fmt.Sprintf("gvs cannot start: rules file %s%s: %s", *rules, where, rep.Error.Message))
			d.Close()
			return 1
		}
		log.Info("rules loaded", "file", *rules, "commands", len(batch.Commands))
	}
	// Everything that needs root's powers is open: keep only what the
	// running daemon needs (see director/privs.go).
	if p, err := d.DropPrivileges(); err != nil {
		log.Warn("gvs could not drop its capabilities", "err", err)
	} else {
		log.Info("capabilities dropped", "kept", p.String())
	}
	go reloadOnHangup(ctx, hup, d, *rules, log)
	if err := d.Run(ctx); err != nil {
		return 1
	}
	return 0
}

// reloadOnHangup reloads the rules file at each SIGHUP until ctx is done.
func reloadOnHangup(ctx context.Context, hup <-chan os.Signal, d *director.Director, rules string, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		if rules == "" {
			log.Warn("SIGHUP: no rules file to reload: start gvs with --rules FILE")
			continue
		}
		res, err := d.Reload(rules)
		if err != nil {
			log.Error("rules not reloaded; the running configuration is unchanged", "err", err)
			continue
		}
		log.Info("rules reloaded", "file", rules, "commands", res.Commands, "changes", res.Ops)
	}
}

func realServer(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("gvs realserver", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	vipArgs := fs.StringSlice("vip", nil, "a virtual IP this real server serves (required; repeatable, or comma-separated)")
	dev := fs.String("dev", "", "the interface facing the director (default: every non-loopback interface)")
	undo := fs.Bool("undo", false, "undo what an earlier run did")
	tun := fs.Bool("tun", false, "LVS-TUN: decapsulate the director's IPIP in user space, in the foreground until stopped")
	dirArgs := fs.StringSlice("director", nil, "with --tun: accept tunnelled packets only from this address (repeatable; default: any)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: gvs realserver --vip VIP [--vip VIP ...] [--dev IFACE] [--undo]
       gvs realserver --tun --vip VIP [--vip VIP ...] [--dev IFACE] [--director ADDR ...]
       gvs realserver --tun --undo --vip VIP [--vip VIP ...]

Makes this host an LVS real server for each VIP, as the LVS notes do by hand:
arp_ignore=1 and arp_announce=2 (on conf/all and the interface), and the VIP as
a /32 on lo. That is all direct routing (DR) needs; --undo restores the earlier
values and removes the VIPs.

With --tun, for tunnelling (TUN) on a kernel without the ipip module, it also
decapsulates the director's IPIP packets in user space: a raw IPIP socket takes
them (so the kernel sends no ICMP protocol-unreachable) and the inner packets
for a VIP go to the kernel through a TUN device (gvstun0), with rp_filter off
where needed. It runs until SIGINT or SIGTERM, logging counters at most every
10 s, then undoes everything it set. --tun --undo cleans up after a run that
was killed. On a kernel with ipip, use tunl0 instead (see the README).

%s`, fs.FlagUsages())
	}
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gvs realserver: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if len(*vipArgs) == 0 {
		fmt.Fprintln(stderr, "gvs realserver: --vip is required")
		return 2
	}
	var vips, directors []netip.Addr
	for _, v := range *vipArgs {
		a, err := netip.ParseAddr(v)
		if err != nil || !a.Is4() {
			fmt.Fprintf(stderr, "gvs realserver: --vip %q is not an IPv4 address\n", v)
			return 2
		}
		vips = append(vips, a)
	}
	for _, v := range *dirArgs {
		a, err := netip.ParseAddr(v)
		if err != nil || !a.Is4() {
			fmt.Fprintf(stderr, "gvs realserver: --director %q is not an IPv4 address\n", v)
			return 2
		}
		directors = append(directors, a)
	}
	if len(directors) > 0 && (!*tun || *undo) {
		fmt.Fprintln(stderr, "gvs realserver: --director goes with --tun (and without --undo)")
		return 2
	}
	var err error
	switch {
	case *tun && !*undo:
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		log := slog.New(slog.NewTextHandler(stderr, nil))
		err = realserver.Serve(ctx, stdout, log, realserver.TunnelConfig{VIPs: vips, Dev: *dev, Directors: directors})
	case *undo:
		var errs []error
		for _, a := range vips {
			errs = append(errs, realserver.Undo(stdout, a, *dev))
		}
		if *tun {
			errs = append(errs, realserver.UndoTunnel(stdout, ""))
		}
		err = errors.Join(errs...)
	default:
		for _, a := range vips {
			if err = realserver.Setup(stdout, a, *dev); err != nil {
				break
			}
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "gvs realserver: %v\n", err)
		return 1
	}
	return 0
}

func demo(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("gvs demo", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	keep := fs.Bool("keep", false, "leave the lab running at the end, until Ctrl-C")
	mode := fs.String("mode", "dr", "the forwarding method to show: dr (the seed notes' lab), nat, tun or fullnat")
	gvsadm := fs.String("gvsadm", "", "path of the gvsadm binary (default: next to gvs, else $PATH)")
	traceOn := fs.Bool("trace", false, "run gvs with --trace and show what it did to the first connection's frames")
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	m, err := lab.ParseMode(*mode)
	if err != nil {
		fmt.Fprintf(stderr, "gvs demo: --mode: %v\n", err)
		return 2
	}
	if err := lab.Demo(ctx, lab.DemoConfig{Mode: m, Out: stdout, Keep: *keep, Gvsadm: *gvsadm, Trace: *traceOn}); err != nil {
		fmt.Fprintf(stderr, "gvs demo: %v\n", err)
		return 1
	}
	return 0
}

// parseFlags parses a command's flags. On -h it reports exit status 0; on
// a bad flag or value it prints what was wrong and the usage, and reports
// exit status 2 (pflag's ContinueOnError prints nothing itself).
func parseFlags(fs *pflag.FlagSet, args []string, stderr io.Writer) (code int, ok bool) {
	err := fs.Parse(args)
	switch {
	case err == nil:
		return 0, true
	case errors.Is(err, pflag.ErrHelp):
		return 0, false
	}
	fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
	fmt.Fprintf(stderr, "Try '%s --help' for more information.\n", fs.Name())
	return 2, false
}
