// Package director is the running gvs daemon: it opens the interfaces,
// builds the virtual-service table, the connection table, the ARP
// resolver, the kernel's ingress filter and the data path's workers, and
// serves the control socket, translating gvsadm's requests into changes of
// the service table and answering its listings. cmd/gvs only parses flags
// and calls Run.
package director

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/gvs-project/gvs/arp"
	"github.com/gvs-project/gvs/conntrack"
	"github.com/gvs-project/gvs/control"
	"github.com/gvs-project/gvs/forward"
	"github.com/gvs-project/gvs/health"
	"github.com/gvs-project/gvs/ingress"
	"github.com/gvs-project/gvs/internal/afpacket"
	"github.com/gvs-project/gvs/service"
	"github.com/gvs-project/gvs/trace"
)

// maxWorkers bounds --workers: each worker holds a receive ring and a
// transmit ring per interface (18 MiB each by default).
const maxWorkers = 64

// directMin is the smallest frame a worker sends from its receive slot
// through the transmit ring's direct socket rather than copying it into a
// transmit slot (afpacket.TX.SendDirect): GSO super-frames of bulk TCP,
// several segments long, where one copy instead of two pays for the
// system call of their own.
const directMin = 8 << 10

// Version is gvs's version.
const Version = "0.1.0"

// IPVSVersion is the version of the kernel's IPVS whose behaviour gvs
// follows, as ipvsadm prints it.
const IPVSVersion = "1.2.1"

// Config configures a Director.
type Config struct {
	// Interfaces are the interfaces gvs serves (gvs -i).
	Interfaces []string
	// Workers is how many data-path workers read each interface (gvs
	// --workers; default 1). With more than one, their receive rings
	// join a PACKET_FANOUT group that spreads flows by hash, and the
	// shared connection table lets any worker see either direction of a
	// NAT or FULLNAT connection.
	Workers int
	// Socket is the control socket's path.
	Socket string
	// SocketGroup, if set, opens the socket to that group (mode 0660):
	// its members may use gvsadm without being root.
	SocketGroup string
	// Conns configures the connection table (nil: defaults).
	Conns *conntrack.Config
	// ARP configures the resolver (nil: defaults).
	ARP *arp.Config
	// FilterTable names gvs's nftables table (default "gvs").
	FilterTable string
	// RXRing is the receive rings' TPACKET version (zero: V2). V3 packs
	// frames into blocks: it holds far more frames when a burst comes or
	// the worker stalls, and costs less CPU per frame at moderate rates,
	// but adds up to a millisecond of latency (internal/afpacket's
	// package documentation has the measurements).
	RXRing afpacket.Version
	// BusyPoll is how long a worker keeps looking at its receive ring
	// before it sleeps (afpacket.RXConfig.BusyPoll; 0: not at all).
	BusyPoll time.Duration
	// NoReceiveFilter lets every frame on gvs's interfaces into the
	// receive rings. By default a classic BPF program on each ring keeps
	// out those gvs would leave to the kernel anyway (other hosts'
	// traffic, a DR service's replies, ...), so that they cost no copy
	// and no wake-up (forward.ReceiveFilter); the verdict counters then
	// see only the frames it lets in.
	NoReceiveFilter bool
	// QdiscBypass sends forwarded frames straight to the driver
	// (PACKET_QDISC_BYPASS): faster, but a full driver queue drops them
	// instead of queueing them, and tc egress rules do not see them.
	QdiscBypass bool
	// ExpireNodestConn and ExpireQuiescentTemplate are the kernel's
	// sysctls of the same names (see forward.Config).
	ExpireNodestConn, ExpireQuiescentTemplate bool
	// MetricsAddr, if set, is where gvs serves Prometheus metrics
	// (MetricsPath; gvs --metrics-addr).
	MetricsAddr string
	// Pprof also serves the Go runtime's profiles (net/http/pprof) under
	// PprofPath on the metrics endpoint (gvs --pprof), for `go tool
	// pprof`. It needs MetricsAddr.
	Pprof bool
	// Log receives the daemon's log (default: slog.Default()).
	Log *slog.Logger
	// Trace configures gvs --trace and --pcap (nil: off, with the trace
	// on standard output when gvsadm --trace switches it on); the
	// interfaces are filled in (trace.go).
	Trace *trace.Config
	// Checks replaces the health checks' clock, dialer and command
	// runner (tests); nil means the real ones.
	Checks *health.Config[*service.Real]
}

// Director is a running gvs.
type Director struct {
	cfg    Config
	log    *slog.Logger
	ifaces []*net.Interface

	services *service.Table
	conns    *conntrack.Table[*service.Real]
	ports    *forward.PortPools
	est      *estimator
	resolver *arp.Resolver
	filter   *ingress.Filter // nil without nf_tables
	engine   *forward.Engine
	rxs      []*afpacket.RX
	// rxProg is the receive rings' filter (rxfilter.go; nil: none);
	// under applyMu, as is filterTooBig (the services have more
	// addresses than a program holds: logged when it changes).
	rxProg       []afpacket.Instruction
	filterTooBig bool
	txs          []*afpacket.TX
	ctl          *control.Server
	tr           tracing        // gvs --trace, --pcap (trace.go)
	metrics      *metricsServer // nil without Config.MetricsAddr
	checks       *checks

	// applyMu serialises configuration changes: gvsadm's and reloads
	// (which read the table, then change it).
	applyMu  sync.Mutex
	stopping bool // under applyMu: Run is shutting down, no more reloads

	// retired are removed real servers whose flows may still run; their
	// ARP neighbours are released when their last connection ends.
	retiredMu sync.Mutex
	retired   []*service.Real
}

// New opens everything gvs needs. On error, what was opened is closed.
func New(cfg Config) (d *Director, err error) {
	if len(cfg.Interfaces) == 0 {
		return nil, errors.New("no interface to serve: give at least one with -i")
	}
	d = &Director{cfg: cfg, log: cfg.Log}
	if d.log == nil {
		d.log = slog.Default()
	}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	seen := map[string]bool{}
	for _, name := range cfg.Interfaces {
		if seen[name] {
			return nil, fmt.Errorf("interface %s given twice", name)
		}
		seen[name] = true
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return nil, fmt.Errorf("interface %s: %w", name, err)
		}
		if len(ifi.HardwareAddr) != 6 {
			return nil, fmt.Errorf("interface %s is not an Ethernet interface", name)
		}
		d.ifaces = append(d.ifaces, ifi)
	}
	if err := d.openMetrics(); err != nil {
		return nil, err
	}

	d.services = service.New()
	d.checks = newChecks(d.log, cfg.Checks)
	d.est = newEstimator()
	d.ports = forward.NewPortPools()
	ccfg := conntrack.Config{}
	if cfg.Conns != nil {
		ccfg = *cfg.Conns
	}
	ccfg.OnRemove = d.ports.Release
	d.conns = conntrack.New[*service.Real](&ccfg)

	d.resolver, err = arp.New(d.ifaces, d.arpConfig())
	if err != nil {
		return nil, fmt.Errorf("ARP: %w", err)
	}

	d.filter, err = ingress.Open(cfg.Interfaces, &ingress.Config{Table: cfg.FilterTable, Logf: d.logf(slog.LevelDebug)})
	if errors.Is(err, ingress.ErrNotSupported) {
		d.log.Warn("nf_tables is not available: gvs cannot keep the kernel away from the frames it handles. "+
			"Serve only VIPs that are not addresses of this host's kernel, and keep net.ipv4.ip_forward=0.",
			"err", err)
		d.filter, err = nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ingress filter: %w", err)
	}

	d.engine = forward.New(forward.Config{Services: d.services, Conns: d.conns, Ports: d.ports,
		ExpireNodestConn: cfg.ExpireNodestConn, ExpireQuiescentTemplate: cfg.ExpireQuiescentTemplate})
	workers := cfg.Workers
	if workers <= 0 {
		workers = 1
	}
	if workers > maxWorkers {
		return nil, fmt.Errorf("%d workers per interface: at most %d", workers, maxWorkers)
	}
	// Each worker waits for frames in poll(2) on its own locked thread
	// (afpacket.RXConfig.ThreadWait), which keeps its P while it waits: the
	// runtime gets a P for every worker and one for everything else, even
	// on fewer CPUs (gvs pinned to one CPU has GOMAXPROCS 1 by default).
	if n := len(d.ifaces)*workers + 1; runtime.GOMAXPROCS(0) < n {
		d.log.Debug("GOMAXPROCS raised: a P for each worker and one for the rest", "from", runtime.GOMAXPROCS(0), "to", n)
		runtime.GOMAXPROCS(n)
	}
	for _, in := range d.ifaces {
		rcfg := &afpacket.RXConfig{Version: cfg.RXRing, BusyPoll: cfg.BusyPoll, ThreadWait: true}
		if workers > 1 {
			// One fanout group per interface, named so that another gvs
			// in the same namespace does not join it.
			id := uint16(os.Getpid()) ^ uint16(in.Index)<<8
			rcfg.Fanout = &afpacket.Fanout{ID: id, Mode: afpacket.FanoutHash}
		}
		for w := range workers {
			rx, err := afpacket.OpenRX(in.Index, rcfg)
			if err != nil {
				return nil, fmt.Errorf("receive ring on %s: %w", in.Name, err)
			}
			d.rxs = append(d.rxs, rx)
			var egress []forward.Egress
			for _, out := range d.ifaces {
				tx, err := afpacket.OpenTX(out.Index, &afpacket.TXConfig{QdiscBypass: cfg.QdiscBypass, DirectMin: directMin})
				if err != nil {
					return nil, fmt.Errorf("transmit ring on %s: %w", out.Name, err)
				}
				d.txs = append(d.txs, tx)
				egress = append(egress, forward.Egress{Ifindex: out.Index, MAC: [6]byte(out.HardwareAddr),
					Addr: firstIPv4(out), MTU: out.MTU, TX: tx})
			}
			d.engine.AddWorker(fmt.Sprintf("%s/%d", in.Name, w), in.Index, rx, egress)
		}
	}
	// No services yet: the rings take only ICMP until the first apply.
	if err := d.setReceiveFilter(d.receiveFilter(nil)); err != nil {
		return nil, fmt.Errorf("receive rings' filter: %w", err)
	}

	if err := d.openTrace(); err != nil {
		return nil, err
	}

	d.ctl, err = control.Listen(cfg.Socket, &control.ServerConfig{Group: cfg.SocketGroup, Logf: d.logf(slog.LevelWarn)})
	if err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Director) arpConfig() *arp.Config {
	var c arp.Config
	if d.cfg.ARP != nil {
		c = *d.cfg.ARP
	}
	if c.Logf == nil {
		c.Logf = d.logf(slog.LevelInfo)
	}
	if c.Errorf == nil {
		c.Errorf = d.logf(slog.LevelWarn)
	}
	return &c
}

func (d *Director) logf(level slog.Level) func(string, ...any) {
	return func(format string, args ...any) {
		d.log.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}

// Run serves until ctx is done, then shuts down: the control socket
// first, then the workers, then the filter and ARP.
func (d *Director) Run(ctx context.Context) error {
	defer d.close()
	var names []string
	for _, in := range d.ifaces {
		names = append(names, in.Name)
	}
	d.log.Info("gvs serving", "interfaces", names, "socket", d.ctl.Path(), "version", Version,
		"filter", d.filter != nil)

	errc := make(chan error, len(d.engine.Workers())+2)
	var wg sync.WaitGroup
	for _, w := range d.engine.Workers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.Run(); err != nil {
				errc <- err
			}
		}()
	}
	go func() {
		if err := d.ctl.Serve(d); err != nil {
			errc <- err
		}
	}()
	d.serveMetrics(errc)
	stop := make(chan struct{})
	var reaper sync.WaitGroup
	reaper.Add(1)
	go func() {
		defer reaper.Done()
		d.reap(stop)
	}()

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		d.log.Error("gvs stopping", "err", err)
	}
	d.ctl.Close()
	d.ctl = nil
	d.stopReloads()
	for _, rx := range d.rxs {
		rx.Close()
	}
	d.rxs = nil
	wg.Wait()
	close(stop)
	reaper.Wait()
	d.log.Info("gvs stopped")
	return err
}

// reapInterval is how often the background sweep catches up on the
// connection table's expiry when the workers, which take the sweep's
// steps between batches, have been idle (conntrack.Table.ReapDue); it
// takes at most reapCatchUp steps (about 16 entries each) at a time, so
// that with a million connections it holds the CPU for a few milliseconds
// at most.
const (
	reapInterval = 100 * time.Millisecond
	reapCatchUp  = 1024
)

func (d *Director) reap(stop <-chan struct{}) {
	t := time.NewTicker(reapInterval)
	defer t.Stop()
	est := time.NewTicker(estimateInterval * time.Second)
	defer est.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			d.conns.ReapDue(conntrack.Now(), reapCatchUp)
			d.releaseRetired()
		case <-est.C:
			d.est.update(d.services.Services())
		}
	}
}

// releaseRetired releases the ARP neighbours of removed real servers that
// no longer have connections.
func (d *Director) releaseRetired() {
	d.retiredMu.Lock()
	defer d.retiredMu.Unlock()
	keep := d.retired[:0]
	for _, r := range d.retired {
		if r.Active()+r.Inactive() > 0 {
			keep = append(keep, r)
			continue
		}
		d.releaseLink(r.Link())
	}
	clear(d.retired[len(keep):])
	d.retired = keep
}

// releaseLink gives back the ARP neighbour of a link no longer used.
func (d *Director) releaseLink(l *service.Link) {
	if l == nil || d.resolver == nil {
		return
	}
	if n, ok := l.Hop.(*arp.Neighbor); ok {
		d.resolver.Release(n)
	}
}

// firstIPv4 returns an interface's first IPv4 address, or zero.
func firstIPv4(ifi *net.Interface) [4]byte {
	addrs, err := ifi.Addrs()
	if err != nil {
		return [4]byte{}
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if v4 := ipn.IP.To4(); v4 != nil {
				return [4]byte(v4)
			}
		}
	}
	return [4]byte{}
}

// Close releases everything New opened, for a Director that will not Run.
func (d *Director) Close() { d.close() }

// close releases everything New opened, in reverse order.
func (d *Director) close() {
	if d.checks != nil {
		d.checks.close()
	}
	if d.ctl != nil {
		d.ctl.Close()
	}
	d.closeMetrics()
	for _, rx := range d.rxs {
		rx.Close()
	}
	for _, tx := range d.txs {
		tx.Close()
	}
	d.closeTrace()
	if d.filter != nil {
		if err := d.filter.Close(); err != nil {
			d.log.Warn("removing the ingress filter", "err", err)
		}
	}
	if d.resolver != nil {
		d.resolver.Close()
	}
}

// Services returns the service table (for tests and listings).
func (d *Director) Services() *service.Table { return d.services }

// Conns returns the connection table.
func (d *Director) Conns() *conntrack.Table[*service.Real] { return d.conns }

// Engine returns the data path.
func (d *Director) Engine() *forward.Engine { return d.engine }

// onLink returns the gvs interface on which addr is directly reachable:
// the one with an IPv4 prefix that contains it. An interface without any
// IPv4 address (gvs may own every address on it) is taken when it is the
// only one gvs serves.
func (d *Director) onLink(addr netip.Addr) (*net.Interface, error) {
	unnumbered := []*net.Interface{}
	for _, ifi := range d.ifaces {
		addrs, err := ifi.Addrs()
		if err != nil {
			return nil, fmt.Errorf("addresses of %s: %w", ifi.Name, err)
		}
		v4 := 0
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.To4() == nil {
				continue
			}
			v4++
			p, err := netip.ParsePrefix(ipn.String())
			if err != nil || p.Bits() == 32 {
				continue
			}
			if p.Masked().Contains(addr) {
				return ifi, nil
			}
		}
		if v4 == 0 {
			unnumbered = append(unnumbered, ifi)
		}
	}
	if len(unnumbered) == 1 && len(d.ifaces) == 1 {
		return unnumbered[0], nil
	}
	var names []string
	for _, ifi := range d.ifaces {
		names = append(names, ifi.Name)
	}
	return nil, fmt.Errorf("real server %v is not on a network attached to a gvs interface (%v): "+
		"direct routing needs the real server on the director's LAN", addr, names)
}
