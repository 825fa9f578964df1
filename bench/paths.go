package bench

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gvs-project/gvs/bench/cpustat"
	"github.com/gvs-project/gvs/bench/topo"
)

// A path is one way of getting the generator's frames from the director's
// eth0 to the sinks: one forwarder, configured in the director's namespace.
// New paths (NAT, TUN, FULLNAT, other load balancers) implement it and are
// added to allPaths.
type path interface {
	// Name is the path's short name, as --paths and the table show it.
	Name() string
	// Describe says what the path is, in one line.
	Describe() string
	// Skip returns why the path cannot run on this machine, or "".
	Skip(e *env) string
	// ManyFlows says whether the path is also measured with --many-flows
	// flows (gvs DR and NAT: the connection table's cost with its size).
	ManyFlows() bool
	// Start configures the forwarder. The returned setup says where the
	// generator must send and how to read the forwarder's CPU time.
	Start(ctx context.Context, e *env) (*setup, error)
}

// setup is a started path.
type setup struct {
	// Dsts are the generator's destination addresses (flows alternate).
	Dsts []netip.Addr
	// CPU returns the forwarder's CPU time so far.
	CPU func() (time.Duration, error)
	// CPUSource says what CPU measures.
	CPUSource string
	// Pid is the forwarder's process, if it is one (0: the kernel).
	Pid int
	// Pinning says where the forwarder runs.
	Pinning string
	// Profile, if not nil, takes CPU profiles of the forwarder (gvs
	// with the bench's --profile).
	Profile *profiler
	// Stop undoes Start. It must be safe to call once after any Start
	// that succeeded.
	Stop func() error
	// Exited reports an error if the forwarder died (nil: still fine).
	Exited func() error
}

// env is what paths work with.
type env struct {
	topo   *topo.Topology // the UDP topology (nil during the TCP phase)
	tmp    string         // a private temporary directory
	genCPU int
	fwdCPU int
	log    func(format string, args ...any) // verbose narration
	// missing says why a command a path needs is not there (after
	// trying to install it), by command name; absent: it is there.
	missing map[string]string
	gvsRuns int // gvs processes started, for unique socket names
	// gvsFlags are extra flags for the next gvs started.
	gvsFlags []string
	// profileDir, if set, is where CPU profiles of gvs go (--profile).
	profileDir string

	// gvs binaries: built once, on first use (or given by flags).
	gvsOnce      sync.Once
	gvs, gvsadm  string
	gvsErr       error
	moduleRoot   string
	gvsPrebuilt  bool
	gvsBuildTime time.Duration
}

// allPaths are the paths in the order they are measured. kernel comes
// first: the others are compared with it.
func allPaths() []path {
	return []path{kernelPath{}, nftPath{}, gvsPath{modeDR}, gvsPath{modeNAT}, gvsPath{modeTUN}, gvsPath{modeFullNAT}}
}

// sinkAddrs returns the sinks' addresses.
func sinkAddrs(t *topo.Topology) []netip.Addr {
	var a []netip.Addr
	for _, s := range t.Sinks {
		a = append(a, s.Addr.Addr())
	}
	return a
}

// softirqCPU reads the machine's softirq time: where the kernel's own
// forwarding runs.
func softirqCPU() (time.Duration, error) {
	s, err := cpustat.ReadStat()
	if err != nil {
		return 0, err
	}
	return cpustat.Duration(s.Total.SoftIRQ), nil
}

// kernelPath is the kernel's own IPv4 forwarding: ip_forward=1 in the
// director, the generator's flows alternating between the sinks' addresses.
type kernelPath struct{}

func (kernelPath) Name() string { return "kernel" }
func (kernelPath) Describe() string {
	return "Linux IPv4 forwarding (ip_forward=1), flows alternating between the two sinks' addresses"
}
func (kernelPath) Skip(*env) string { return "" }
func (kernelPath) ManyFlows() bool  { return false }

func (kernelPath) Start(ctx context.Context, e *env) (*setup, error) {
	if err := e.topo.Sysctl(e.topo.DirIn.NS, "net/ipv4/ip_forward", "1"); err != nil {
		return nil, err
	}
	return &setup{
		Dsts:      sinkAddrs(e.topo),
		CPU:       softirqCPU,
		CPUSource: "softirq time of all CPUs (/proc/stat)",
		Pinning:   fmt.Sprintf("softirq on the generator's CPU %d (veth)", e.genCPU),
		Stop: func() error {
			return e.topo.Sysctl(e.topo.DirIn.NS, "net/ipv4/ip_forward", "0")
		},
	}, nil
}

// nftTable is the table nftPath creates in the director's namespace.
const nftTable = "gvsbench"

// nftPath is load balancing with nftables DNAT: a numgen inc mod 2 map
// over the two sinks, per connection (conntrack keeps a flow on its
// first choice), as people use nftables instead of IPVS.
type nftPath struct{}

func (nftPath) Name() string { return "nft-dnat" }
func (nftPath) Describe() string {
	return "nftables DNAT of VIP:9 to the two sinks (numgen inc mod 2 map, per conntrack flow), ip_forward=1"
}

func (nftPath) Skip(e *env) string { return e.missing["nft"] }
func (nftPath) ManyFlows() bool    { return false }

func (nftPath) Start(ctx context.Context, e *env) (_ *setup, err error) {
	ns := e.topo.DirIn.NS
	script := fmt.Sprintf(`table ip %s {
	chain prerouting {
		type nat hook prerouting priority -100; policy accept;
		ip daddr %s udp dport %d dnat to numgen inc mod 2 map { 0 : %s, 1 : %s }
	}
}
`, nftTable, topo.VIP, servicePort, e.topo.Sinks[0].Addr.Addr(), e.topo.Sinks[1].Addr.Addr())
	file := filepath.Join(e.tmp, "nft-dnat.nft")
	if err := os.WriteFile(file, []byte(script), 0o600); err != nil {
		return nil, err
	}
	e.log("nft script %s:\n%s", file, script)
	if _, err := e.topo.Run(ctx, ns, "nft", "-f", file); err != nil {
		return nil, err
	}
	stop := func() error {
		_, err1 := e.topo.Run(context.Background(), ns, "nft", "delete", "table", "ip", nftTable)
		err2 := e.topo.Sysctl(ns, "net/ipv4/ip_forward", "0")
		return errors.Join(err1, err2)
	}
	if err := e.topo.Sysctl(ns, "net/ipv4/ip_forward", "1"); err != nil {
		stop()
		return nil, err
	}
	return &setup{
		Dsts:      []netip.Addr{topo.VIP},
		CPU:       softirqCPU,
		CPUSource: "softirq time of all CPUs (/proc/stat)",
		Pinning:   fmt.Sprintf("softirq on the generator's CPU %d (veth)", e.genCPU),
		Stop:      stop,
	}, nil
}

// servicePort is the virtual service's UDP port (discard).
const servicePort = 9

// gvsPath is gvs in one forwarding mode: gvs serves the director's eth0
// (where the generator's frames arrive) and eth1 (where the sinks, its real
// servers, are on-link), with a round-robin UDP service on VIP:9.
type gvsPath struct{ mode gvsMode }

func (p gvsPath) Name() string { return "gvs-" + p.mode.name }
func (p gvsPath) Describe() string {
	r := "SINK"
	if p.mode.withPort {
		r = "SINK:9"
	}
	d := fmt.Sprintf("gvs -i eth0 -i eth1, gvsadm -A -u VIP:9 -s rr, -a -r %s %s -w 1 per sink", r, p.mode.flag)
	switch p.mode {
	case modeTUN:
		d += " (IPIP to the sinks, counted as they arrive)"
	case modeFullNAT:
		d += ", -P -u VIP:9 -z " + topo.LocalAddr.String()
	}
	return d + " (ip_forward=0)"
}
func (gvsPath) Skip(*env) string  { return "" }
func (p gvsPath) ManyFlows() bool { return p.mode == modeDR || p.mode == modeNAT }

func (p gvsPath) Start(ctx context.Context, e *env) (*setup, error) {
	ns := e.topo.DirIn.NS
	if err := e.topo.Sysctl(ns, "net/ipv4/ip_forward", "0"); err != nil {
		return nil, err
	}
	g, err := e.startGvs(ctx, ns, e.topo, serviceCommands("-u", servicePort, sinkAddrs(e.topo), p.mode))
	if err != nil {
		return nil, err
	}
	return &setup{
		Dsts:      []netip.Addr{topo.VIP},
		CPU:       g.CPU,
		CPUSource: "gvs process utime+stime (/proc/<pid>/stat)",
		Pid:       g.Pid,
		Pinning:   g.Pinning,
		Profile:   g.Profile,
		Stop:      g.Stop,
		Exited:    g.Exited,
	}, nil
}
