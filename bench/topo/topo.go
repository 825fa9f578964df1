package topo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/gvs-project/gvs/internal/netns"
)

// The topology's addresses (see the package doc).
var (
	GenAddr    = netip.MustParsePrefix("198.18.0.1/24")
	DirInAddr  = netip.MustParsePrefix("198.18.0.2/24")
	DirOutAddr = netip.MustParsePrefix("198.18.1.1/24")
	SinkAddrs  = []netip.Prefix{netip.MustParsePrefix("198.18.1.11/24"), netip.MustParsePrefix("198.18.1.12/24")}
	VIP        = netip.MustParseAddr("198.18.3.1")
)

// Bridge is the bridge's name in the switch namespace.
const Bridge = "br0"

// SinkMTU is the MTU of the sinks' side (the director's eth1, the bridge,
// the sinks): room for LVS-TUN's 20-byte outer header behind a full
// 1500-byte packet, as a TUN deployment gives its real servers' network
// (the generator's side keeps 1500).
const SinkMTU = 1600

// LocalAddr is the FULLNAT local address: on the sinks' subnet, held by
// gvs (which answers ARP for it), not by the director's kernel.
var LocalAddr = netip.MustParseAddr("198.18.1.200")

// Iface is one interface of the topology.
type Iface struct {
	NS   string       // network namespace
	Name string       // name inside NS
	Addr netip.Prefix // its IPv4 address (invalid for bridge ports)
	MAC  [6]byte
}

// HardwareAddr is MAC as a net.HardwareAddr.
func (i Iface) HardwareAddr() net.HardwareAddr { return net.HardwareAddr(i.MAC[:]) }

func (i Iface) String() string { return i.NS + "/" + i.Name }

// Config configures New.
type Config struct {
	// Prefix starts every namespace name ("gvsb1234" gives gvsb1234-gen
	// and so on). Default: "gvsb" and the pid.
	Prefix string
	// Log receives every command New and Close run, as a shell line;
	// nil means quiet.
	Log io.Writer
	// TCP builds the variant for TCP between real clients and servers
	// (see the package doc): the sinks keep what they receive, the
	// generator and the sinks route through the director, which
	// forwards (ip_forward=1), and the sinks hold the VIP on lo for
	// direct routing.
	TCP bool
}

// Topology is the built network.
type Topology struct {
	Gen    Iface   // the generator's eth0
	DirIn  Iface   // the director's eth0, facing the generator
	DirOut Iface   // the director's eth1, on the bridge
	Sinks  []Iface // each sink's eth0, on the bridge
	Switch string  // the bridge's namespace

	// SinkDrop says how the sinks drop what they receive:
	// SinkDropIngress, or SinkDropRouting where nf_tables is missing.
	SinkDrop string

	cfg     Config
	mu      sync.Mutex
	made    []string // namespaces created, in order
	handles map[string]*netlink.Handle
	closed  bool
}

// macOf derives a fixed, locally administered MAC from an address, so that
// captures read the same from run to run: 02:b0:a.b.c.d.
func macOf(a netip.Addr) [6]byte {
	b := a.As4()
	return [6]byte{0x02, 0xb0, b[0], b[1], b[2], b[3]}
}

// New builds the topology. On error, everything it created is removed.
func New(ctx context.Context, cfg Config) (t *Topology, err error) {
	if cfg.Prefix == "" {
		cfg.Prefix = fmt.Sprintf("gvsb%d", os.Getpid())
	}
	ns := func(role string) string { return cfg.Prefix + "-" + role }
	t = &Topology{
		cfg:     cfg,
		Gen:     Iface{NS: ns("gen"), Name: "eth0", Addr: GenAddr, MAC: macOf(GenAddr.Addr())},
		DirIn:   Iface{NS: ns("dir"), Name: "eth0", Addr: DirInAddr, MAC: macOf(DirInAddr.Addr())},
		DirOut:  Iface{NS: ns("dir"), Name: "eth1", Addr: DirOutAddr, MAC: macOf(DirOutAddr.Addr())},
		Switch:  ns("sw"),
		handles: map[string]*netlink.Handle{},
	}
	for i, a := range SinkAddrs {
		t.Sinks = append(t.Sinks, Iface{NS: ns(fmt.Sprintf("sink%d", i+1)), Name: "eth0", Addr: a, MAC: macOf(a.Addr())})
	}
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	if err := t.build(ctx); err != nil {
		return nil, err
	}
	return t, nil
}

// Namespaces lists the namespaces the topology created.
func (t *Topology) Namespaces() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.made...)
}

func (t *Topology) build(ctx context.Context) error {
	all := []string{t.Gen.NS, t.DirIn.NS}
	for _, s := range t.Sinks {
		all = append(all, s.NS)
	}
	all = append(all, t.Switch)
	for _, ns := range all {
		if err := t.run(ctx, "", "ip", "netns", "add", ns); err != nil {
			return err
		}
		t.mu.Lock()
		t.made = append(t.made, ns)
		t.mu.Unlock()
		// Before any interface exists: no IPv6 means no link-local
		// address, no DAD, no router solicitation, no MLD report.
		for _, kv := range [][2]string{
			{"net/ipv6/conf/all/disable_ipv6", "1"},
			{"net/ipv6/conf/default/disable_ipv6", "1"},
			{"net/ipv4/conf/all/rp_filter", "0"},
			{"net/ipv4/conf/default/rp_filter", "0"},
			{"net/ipv4/ip_forward", "0"},
		} {
			if err := t.Sysctl(ns, kv[0], kv[1]); err != nil {
				return err
			}
		}
		if err := t.run(ctx, ns, "ip", "link", "set", "lo", "up"); err != nil {
			return err
		}
	}

	// The switch: a bridge whose frames netfilter never sees.
	if err := t.runAll(ctx, t.Switch,
		[]string{"ip", "link", "add", Bridge, "type", "bridge", "stp_state", "0", "mcast_snooping", "0"},
		[]string{"ip", "link", "set", Bridge, "up"},
	); err != nil {
		return err
	}
	for _, key := range []string{"bridge-nf-call-iptables", "bridge-nf-call-ip6tables", "bridge-nf-call-arptables"} {
		// Present only when br_netfilter is loaded (per namespace
		// since Linux 5.3); absent means the hooks do not exist.
		if err := t.Sysctl(t.Switch, "net/bridge/"+key, "0"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}

	// Cables.
	pid := os.Getpid() % 100000
	tmp := func(tag string) string { return fmt.Sprintf("gb%d%s", pid, tag) }
	if err := t.veth(ctx, t.Gen, t.DirIn, tmp("g"), tmp("d")); err != nil {
		return err
	}
	ports := []Iface{{NS: t.Switch, Name: "pdir", MAC: macOf(netip.MustParseAddr("198.18.255.1"))}}
	if err := t.veth(ctx, t.DirOut, ports[0], tmp("o"), tmp("po")); err != nil {
		return err
	}
	for i, s := range t.Sinks {
		p := Iface{NS: t.Switch, Name: fmt.Sprintf("psink%d", i+1), MAC: macOf(netip.AddrFrom4([4]byte{198, 18, 255, byte(11 + i)}))}
		ports = append(ports, p)
		if err := t.veth(ctx, s, p, tmp(fmt.Sprintf("s%d", i+1)), tmp(fmt.Sprintf("p%d", i+1))); err != nil {
			return err
		}
	}
	behind := append([]Iface{t.DirOut}, t.Sinks...) // the host behind ports[i]
	for i, p := range ports {
		if err := t.runAll(ctx, t.Switch,
			[]string{"ip", "link", "set", p.Name, "master", Bridge},
			[]string{"ip", "link", "set", p.Name, "up"},
			[]string{"bridge", "fdb", "replace", behind[i].HardwareAddr().String(), "dev", p.Name, "master", "static"},
		); err != nil {
			return err
		}
	}

	// The sinks' side gets room for an outer header.
	for _, p := range ports {
		if err := t.run(ctx, t.Switch, "ip", "link", "set", p.Name, "mtu", fmt.Sprint(SinkMTU)); err != nil {
			return err
		}
	}
	if err := t.run(ctx, t.Switch, "ip", "link", "set", Bridge, "mtu", fmt.Sprint(SinkMTU)); err != nil {
		return err
	}

	// Addresses, MTUs, links up.
	for _, ifc := range append([]Iface{t.Gen, t.DirIn, t.DirOut}, t.Sinks...) {
		mtu := 1500
		if ifc != t.Gen && ifc != t.DirIn {
			mtu = SinkMTU
		}
		if err := t.runAll(ctx, ifc.NS,
			[]string{"ip", "addr", "add", ifc.Addr.String(), "dev", ifc.Name},
			[]string{"ip", "link", "set", ifc.Name, "mtu", fmt.Sprint(mtu)},
			[]string{"ip", "link", "set", ifc.Name, "up"},
		); err != nil {
			return err
		}
	}

	// Neighbours: nothing to resolve during a measurement.
	neigh := func(on Iface, of Iface) []string {
		return []string{"ip", "neigh", "replace", of.Addr.Addr().String(), "lladdr", of.HardwareAddr().String(), "dev", on.Name, "nud", "permanent"}
	}
	cmds := [][]string{neigh(t.DirIn, t.Gen)}
	for _, s := range t.Sinks {
		cmds = append(cmds, neigh(t.DirOut, s))
	}
	if err := t.runAll(ctx, t.DirIn.NS, cmds...); err != nil {
		return err
	}
	if err := t.run(ctx, t.Gen.NS, neigh(t.Gen, t.DirIn)...); err != nil {
		return err
	}
	for _, s := range t.Sinks {
		if err := t.run(ctx, s.NS, neigh(s, t.DirOut)...); err != nil {
			return err
		}
	}

	if t.cfg.TCP {
		if err := t.tcp(ctx); err != nil {
			return err
		}
	}

	// The sinks swallow IPv4 at ingress.
	t.SinkDrop = SinkDropIngress
	for _, sk := range t.Sinks {
		if t.cfg.TCP {
			t.SinkDrop = SinkKeep
			break
		}
		err := netns.Do(sk.NS, func() error { return sinkDrop(sk.Name) })
		if err == nil {
			t.logf(sk.NS, []string{"nft", "add", "table", "netdev", sinkTable, "{ chain in { type filter hook ingress device", sk.Name, "priority 0; policy accept; meta protocol ip drop; }; }"})
			continue
		}
		// Without nf_tables the sinks' IP layer drops the frames, at
		// a higher cost (see SinkDropStack).
		t.SinkDrop = SinkDropStack + " (nf_tables: " + err.Error() + ")"
		break
	}

	// RPS off: receive work stays on the CPU that sent the frame. sysfs
	// shows the namespace it was mounted in, hence ip netns exec (which
	// mounts a fresh one) rather than a write from this process.
	for _, ns := range all {
		if err := t.run(ctx, ns, "sh", "-c", "for f in /sys/class/net/*/queues/rx-*/rps_cpus; do echo 0 > $f; done"); err != nil {
			return err
		}
	}

	for _, ns := range all {
		var h *netlink.Handle
		if err := netns.Do(ns, func() error {
			var err error
			h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
			return err
		}); err != nil {
			return fmt.Errorf("netlink in %s: %w", ns, err)
		}
		t.mu.Lock()
		t.handles[ns] = h
		t.mu.Unlock()
	}
	return nil
}

// veth cables a to b: one veth pair, created under temporary names unique
// to this process and renamed inside the namespaces.
func (t *Topology) veth(ctx context.Context, a, b Iface, tmpA, tmpB string) error {
	if err := t.run(ctx, "", "ip", "link", "add", tmpA, "netns", a.NS, "address", a.HardwareAddr().String(), "type", "veth",
		"peer", "name", tmpB, "netns", b.NS, "address", b.HardwareAddr().String()); err != nil {
		return err
	}
	if err := t.run(ctx, a.NS, "ip", "link", "set", tmpA, "name", a.Name); err != nil {
		return err
	}
	return t.run(ctx, b.NS, "ip", "link", "set", tmpB, "name", b.Name)
}

// Command returns a command that runs args inside namespace ns (through
// `ip netns exec`, which execs it: the process's pid is the command's), or
// in the caller's namespace if ns is empty.
func Command(ctx context.Context, ns string, args ...string) *exec.Cmd {
	if ns != "" {
		args = append([]string{"ip", "netns", "exec", ns}, args...)
	}
	return exec.CommandContext(ctx, args[0], args[1:]...)
}

// Run runs a command in namespace ns (see Command), logs it, and returns
// its combined output.
func (t *Topology) Run(ctx context.Context, ns string, args ...string) (string, error) {
	t.logf(ns, args)
	cmd := Command(ctx, ns, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		where := ""
		if ns != "" {
			where = " (in " + ns + ")"
		}
		return out.String(), fmt.Errorf("%s%s: %w: %s", strings.Join(args, " "), where, err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

func (t *Topology) run(ctx context.Context, ns string, args ...string) error {
	_, err := t.Run(ctx, ns, args...)
	return err
}

func (t *Topology) runAll(ctx context.Context, ns string, cmds ...[]string) error {
	for _, c := range cmds {
		if err := t.run(ctx, ns, c...); err != nil {
			return err
		}
	}
	return nil
}

func (t *Topology) logf(ns string, args []string) {
	if t.cfg.Log == nil {
		return
	}
	prompt := "#"
	if ns != "" {
		prompt = ns + "#"
	}
	fmt.Fprintf(t.cfg.Log, "%s %s\n", prompt, strings.Join(args, " "))
}

// Sysctl writes value to /proc/sys/<key> inside namespace ns (key with
// slashes, "net/ipv4/ip_forward"). A missing key gives an error matching
// os.ErrNotExist.
func (t *Topology) Sysctl(ns, key, value string) error {
	if t.cfg.Log != nil {
		fmt.Fprintf(t.cfg.Log, "%s# sysctl -w %s=%s\n", ns, strings.ReplaceAll(key, "/", "."), value)
	}
	return netns.Do(ns, func() error {
		if err := os.WriteFile("/proc/sys/"+key, []byte(value), 0); err != nil {
			return fmt.Errorf("sysctl %s in %s: %w", key, ns, err)
		}
		return nil
	})
}

// Counters are an interface's packet counters (struct rtnl_link_stats64).
type Counters struct {
	RxPackets, TxPackets, RxDropped, TxDropped uint64
}

// Sub returns c - o.
func (c Counters) Sub(o Counters) Counters {
	return Counters{c.RxPackets - o.RxPackets, c.TxPackets - o.TxPackets, c.RxDropped - o.RxDropped, c.TxDropped - o.TxDropped}
}

// Counters reads the interface's counters through a netlink socket that
// lives in its namespace.
func (t *Topology) Counters(i Iface) (Counters, error) {
	t.mu.Lock()
	h := t.handles[i.NS]
	t.mu.Unlock()
	if h == nil {
		return Counters{}, fmt.Errorf("counters of %s: no netlink handle (topology closed?)", i)
	}
	l, err := h.LinkByName(i.Name)
	if err != nil {
		return Counters{}, fmt.Errorf("counters of %s: %w", i, err)
	}
	s := l.Attrs().Statistics
	if s == nil {
		return Counters{}, fmt.Errorf("counters of %s: the kernel sent no statistics", i)
	}
	return Counters{RxPackets: s.RxPackets, TxPackets: s.TxPackets, RxDropped: s.RxDropped, TxDropped: s.TxDropped}, nil
}

// Ifindex returns the interface's index in its namespace.
func (t *Topology) Ifindex(i Iface) (int, error) {
	t.mu.Lock()
	h := t.handles[i.NS]
	t.mu.Unlock()
	if h == nil {
		return 0, fmt.Errorf("ifindex of %s: no netlink handle (topology closed?)", i)
	}
	l, err := h.LinkByName(i.Name)
	if err != nil {
		return 0, fmt.Errorf("ifindex of %s: %w", i, err)
	}
	return l.Attrs().Index, nil
}

// Close deletes every namespace New created (their interfaces go with
// them). It is safe to call more than once and from a signal handler's
// goroutine.
func (t *Topology) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	made := t.made
	for _, h := range t.handles {
		h.Close()
	}
	t.handles = nil
	t.mu.Unlock()
	var errs []error
	for i := len(made) - 1; i >= 0; i-- {
		if err := t.run(context.Background(), "", "ip", "netns", "del", made[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
