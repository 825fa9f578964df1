// Package lab builds the LVS lab of the seed notes on one Linux machine, in
// network namespaces: a client, the director node01 and the real servers
// node02 and node03, all on one bridge (the notes' VM network), with the
// notes' addresses:
//
//	client   192.168.150.10    curl http://192.168.150.100/
//	node01   192.168.150.1     the director: gvs, configured with gvsadm   (DIP)
//	node02   192.168.150.12    real server: HTTP "from 192.168.150.12"     (RIP)
//	node03   192.168.150.13    real server: HTTP "from 192.168.150.13"     (RIP)
//	VIP      192.168.150.100   on node01 (eth0:8, as the notes do) or owned by gvs alone
//
// `gvs demo` (make demo) walks through the notes step by step with it, and
// the end-to-end tests drive gvs through it. Every command the lab runs is
// printed as the shell command it is, so a reader can repeat it by hand.
// Everything the lab creates is removed by Close, also after a failure or
// Ctrl-C.
package lab

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gvs-project/gvs/internal/netns"
)

// The seed notes' addresses.
var (
	VIP      = netip.MustParseAddr("192.168.150.100")
	DIP      = netip.MustParseAddr("192.168.150.1")
	ClientIP = netip.MustParseAddr("192.168.150.10")
	RIPs     = []netip.Addr{netip.MustParseAddr("192.168.150.12"), netip.MustParseAddr("192.168.150.13")}
)

// Prefix is the length of the lab's subnets (192.168.150.0/24 and the
// real servers' second subnet).
const Prefix = 24

// Mode is a forwarding method, and the topology its lab has.
type Mode string

// The labs. DR is the seed notes' lab; the others follow the notes'
// descriptions of each method.
const (
	// DR: the real servers on the director's LAN (192.168.150.0/24),
	// the VIP on their loopback.
	DR Mode = "dr"
	// NAT: the real servers on a second subnet, 192.168.10.0/24, behind
	// the director (node01's eth1, 192.168.10.1), their default gateway;
	// they serve on port 8080, which NAT maps the VIP's port 80 to.
	NAT Mode = "nat"
	// TUN: the real servers on another subnet, 192.168.20.0/24, behind a
	// router (192.168.150.254 on the client's LAN, 192.168.20.1, and
	// 192.168.40.254 on its own link to the director's eth1,
	// 192.168.40.1); they decapsulate IPIP with gvs realserver --tun and
	// answer the client through the router.
	TUN Mode = "tun"
	// FullNAT: the real servers on a second subnet, 192.168.30.0/24,
	// with no route back to the client at all; gvs sends from its local
	// address 192.168.30.200.
	FullNAT Mode = "fullnat"
)

// Modes lists the labs.
var Modes = []Mode{DR, NAT, TUN, FullNAT}

// ParseMode checks a mode's name.
func ParseMode(s string) (Mode, error) {
	for _, m := range Modes {
		if string(m) == s {
			return m, nil
		}
	}
	return "", fmt.Errorf("unknown mode %q: one of dr, nat, tun, fullnat", s)
}

// LocalAddr is FULLNAT's local address in the FullNAT lab.
var LocalAddr = netip.MustParseAddr("192.168.30.200")

// realNet is the real servers' subnet of each mode (its .1 is the
// director's or the router's address there, .12 and .13 the servers').
var realNet = map[Mode][3]byte{DR: {192, 168, 150}, NAT: {192, 168, 10}, TUN: {192, 168, 20}, FullNAT: {192, 168, 30}}

func addrIn(net [3]byte, host byte) netip.Addr {
	return netip.AddrFrom4([4]byte{net[0], net[1], net[2], host})
}

// RealPort is the port the real servers serve the VIP's port 80 on.
func (m Mode) RealPort() uint16 {
	if m == NAT {
		return 8080
	}
	return 80
}

// Host is one machine of the lab: a network namespace.
type Host struct {
	Role string // client, node01, node02, node03, router, switch, switch2
	NS   string // network namespace name
	Addr netip.Addr
	MAC  string
}

// Config configures a lab.
type Config struct {
	// Mode is the forwarding method whose topology to build (default DR).
	Mode Mode
	// Prefix makes the lab's namespace names unique ("gvsdemo1234"
	// gives gvsdemo1234-node01 and so on).
	Prefix string
	// Out receives the narration: every command, as a shell line, and
	// what it printed. nil means quiet.
	Out io.Writer
	// VIPOnDirector puts the VIP on node01's eth0 as the notes do
	// (ifconfig eth0:8 192.168.150.100/24); otherwise gvs owns it alone
	// and answers ARP for it.
	VIPOnDirector bool
	// IPForward sets net.ipv4.ip_forward=1 on node01.
	IPForward bool
	// DirectorMTU, if set, is the MTU of node01's eth0 (the TUN lab
	// tests fragmentation-needed with it).
	DirectorMTU int
	// Workers is gvs --workers (0: gvs's default, 1).
	Workers int
	// GvsArgs are more options for gvs.
	GvsArgs []string
	// Gvs and Gvsadm are the binaries to run.
	Gvs, Gvsadm string
	// Socket is gvs's control socket (default: under os.TempDir()).
	Socket string
}

// Lab is a running lab.
type Lab struct {
	cfg      Config
	Switches []*Host // the client's LAN, and the real servers' for NAT, TUN, FullNAT
	Client   *Host
	Director *Host
	Router   *Host // TUN only
	Reals    []*Host

	mu      sync.Mutex
	servers []*http.Server
	udp     []net.PacketConn
	gvs     *exec.Cmd
	gvsDone chan struct{} // closed when gvs has exited
	gvsErr  error         // its exit status, once gvsDone is closed
	gvsLog  *bytes.Buffer
	bg      []*exec.Cmd // gvs realserver --tun
	closed  bool
	made    []string // namespaces created
}

// macOf gives each host a fixed, locally administered MAC derived from
// its address, so that traces and listings repeat from run to run.
func macOf(a netip.Addr) string {
	b := a.As4()
	return fmt.Sprintf("02:42:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3])
}

// Mode returns the lab's mode.
func (l *Lab) Mode() Mode { return l.cfg.Mode }

// RealAddrs returns the real servers' addresses.
func (l *Lab) RealAddrs() []netip.Addr {
	var out []netip.Addr
	for _, h := range l.Reals {
		out = append(out, h.Addr)
	}
	return out
}

// New builds the lab's network: namespaces, bridges, links and
// addresses, and prepares the real servers for the mode. It does not
// start gvs or the HTTP servers (see StartServers and StartGvs).
func New(ctx context.Context, cfg Config) (l *Lab, err error) {
	if cfg.Mode == "" {
		cfg.Mode = DR
	}
	if _, err := ParseMode(string(cfg.Mode)); err != nil {
		return nil, err
	}
	if cfg.Prefix == "" {
		cfg.Prefix = fmt.Sprintf("gvslab%d", os.Getpid())
	}
	if cfg.Socket == "" {
		cfg.Socket = filepath.Join(os.TempDir(), cfg.Prefix+".sock")
	}
	lab := &Lab{cfg: cfg}
	l = lab
	defer func() {
		if err != nil {
			lab.Close() // l is nil by now
		}
	}()
	mode := cfg.Mode
	host := func(role string, addr netip.Addr) *Host {
		h := &Host{Role: role, NS: cfg.Prefix + "-" + role, Addr: addr}
		if addr.IsValid() {
			h.MAC = macOf(addr)
		}
		return h
	}
	rn := realNet[mode]
	l.Switches = []*Host{host("switch", netip.Addr{})}
	if mode != DR {
		l.Switches = append(l.Switches, host("switch2", netip.Addr{}))
	}
	l.Client = host("client", ClientIP)
	l.Director = host("node01", DIP)
	l.Reals = []*Host{host("node02", addrIn(rn, 12)), host("node03", addrIn(rn, 13))}
	if mode == TUN {
		l.Router = host("router", netip.MustParseAddr("192.168.150.254"))
	}

	l.step(fmt.Sprintf("Create the machines of the %s lab: one network namespace each, and one per switch", strings.ToUpper(string(mode))))
	for _, h := range l.hosts(true) {
		if err := l.sh(ctx, "", "ip", "netns", "add", h.NS); err != nil {
			return nil, err
		}
		l.made = append(l.made, h.NS)
		if err := l.sh(ctx, h.NS, "ip", "link", "set", "lo", "up"); err != nil {
			return nil, err
		}
	}
	l.step("The switches: a bridge each (netfilter hooks off, as on a plain switch)")
	for _, sw := range l.Switches {
		for _, args := range [][]string{
			{"ip", "link", "add", "br0", "type", "bridge"},
			{"ip", "link", "set", "br0", "up"},
		} {
			if err := l.sh(ctx, sw.NS, args...); err != nil {
				return nil, err
			}
		}
		if err := l.sysctlIfPresent(ctx, sw.NS, "net/bridge/bridge-nf-call-iptables", "0"); err != nil {
			return nil, err
		}
	}
	lanA, lanB := l.Switches[0], l.Switches[len(l.Switches)-1]
	l.step("Cable the machines to the switches, with the notes' addresses")
	cable := func(h *Host, dev string, sw *Host, addr netip.Addr) error {
		return l.cable(ctx, h, dev, sw, addr)
	}
	if err := cable(l.Client, "eth0", lanA, ClientIP); err != nil {
		return nil, err
	}
	if err := cable(l.Director, "eth0", lanA, DIP); err != nil {
		return nil, err
	}
	for _, h := range l.Reals {
		if err := cable(h, "eth0", lanB, h.Addr); err != nil {
			return nil, err
		}
	}
	switch mode {
	case NAT, FullNAT:
		if err := cable(l.Director, "eth1", lanB, addrIn(rn, 1)); err != nil {
			return nil, err
		}
	case TUN:
		if err := cable(l.Router, "eth0", lanA, l.Router.Addr); err != nil {
			return nil, err
		}
		if err := cable(l.Router, "eth1", lanB, addrIn(rn, 1)); err != nil {
			return nil, err
		}
		// The director's own link to the router, towards the real
		// servers (its MTU can be made smaller than the clients').
		if err := l.wire(ctx, l.Director, "eth1", tunnelLinkDirector, l.Router, "eth2", tunnelLinkRouter); err != nil {
			return nil, err
		}
	}
	if cfg.DirectorMTU != 0 {
		dev := l.GvsInterfaces()[len(l.GvsInterfaces())-1]
		if err := l.sh(ctx, l.Director.NS, "ip", "link", "set", dev, "mtu", strconv.Itoa(cfg.DirectorMTU)); err != nil {
			return nil, err
		}
	}

	switch mode {
	case NAT:
		l.step("node02, node03: the director is their default gateway (LVS-NAT needs the replies to come back through it)")
		for _, h := range l.Reals {
			if err := l.sh(ctx, h.NS, "ip", "route", "add", "default", "via", addrIn(rn, 1).String()); err != nil {
				return nil, err
			}
		}
	case TUN:
		l.step("The router between the LANs, and the routes through it (LVS-TUN works across routers)")
		for _, args := range [][]string{
			{"sysctl", "-qw", "net.ipv4.ip_forward=1"},
			{"sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"},
		} {
			if err := l.sh(ctx, l.Router.NS, args...); err != nil {
				return nil, err
			}
		}
		if err := l.sh(ctx, l.Director.NS, "ip", "route", "add", addrIn(rn, 0).String()+"/24", "via", tunnelLinkRouter.String()); err != nil {
			return nil, err
		}
		for _, h := range l.Reals {
			if err := l.sh(ctx, h.NS, "ip", "route", "add", "default", "via", addrIn(rn, 1).String()); err != nil {
				return nil, err
			}
		}
	case FullNAT:
		l.step("node02, node03: no route to the client at all; they answer FULLNAT's local address, on their own LAN")
	}

	if cfg.VIPOnDirector {
		l.step("node01: the VIP on the director's interface, as the notes do (ifconfig eth0:8 192.168.150.100/24)")
		if err := l.sh(ctx, l.Director.NS, "ip", "addr", "add", VIP.String()+"/24", "dev", "eth0", "label", "eth0:8"); err != nil {
			return nil, err
		}
	} else {
		l.step("node01: the VIP is not an address of node01's kernel: gvs alone owns it and answers ARP for it")
	}
	if cfg.IPForward {
		if err := l.sh(ctx, l.Director.NS, "sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
			return nil, err
		}
	}
	switch mode {
	case DR:
		l.step("node02, node03: hide the VIP on lo and keep quiet about it in ARP (gvs realserver does the notes' echo/ifconfig lines)")
		for _, h := range l.Reals {
			if err := l.sh(ctx, h.NS, cfg.Gvs, "realserver", "--vip", VIP.String(), "--dev", "eth0"); err != nil {
				return nil, err
			}
		}
	case TUN:
		l.step("node02, node03: unwrap the director's IPIP packets and answer from the VIP (this kernel has no ipip module: gvs realserver --tun does it in user space)")
		for _, h := range l.Reals {
			if err := l.startTunnel(ctx, h); err != nil {
				return nil, err
			}
		}
	}
	return l, nil
}

// cable connects h's interface dev to switch sw with a veth pair, and
// gives it addr/24 and a MAC derived from addr.
func (l *Lab) cable(ctx context.Context, h *Host, dev string, sw *Host, addr netip.Addr) error {
	port := h.Role
	if dev != "eth0" {
		port = h.Role + "-" + dev
	}
	tmp := fmt.Sprintf("gvs%d%s", os.Getpid()%100000, strings.ReplaceAll(port, "node", "n"))
	if len(tmp) > 15 {
		tmp = tmp[:15]
	}
	if err := l.sh(ctx, "", "ip", "link", "add", tmp, "netns", h.NS, "address", macOf(addr), "type", "veth",
		"peer", "name", port, "netns", sw.NS); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"ip", "link", "set", tmp, "name", dev},
		{"ip", "addr", "add", addr.String() + "/" + strconv.Itoa(Prefix), "dev", dev},
		{"ip", "link", "set", dev, "up"},
	} {
		if err := l.sh(ctx, h.NS, args...); err != nil {
			return err
		}
	}
	for _, args := range [][]string{
		{"ip", "link", "set", port, "master", "br0"},
		{"ip", "link", "set", port, "up"},
	} {
		if err := l.sh(ctx, sw.NS, args...); err != nil {
			return err
		}
	}
	return nil
}

// The TUN lab's link between the director's eth1 and the router.
var (
	tunnelLinkDirector = netip.MustParseAddr("192.168.40.1")
	tunnelLinkRouter   = netip.MustParseAddr("192.168.40.254")
)

// wire connects a's interface aDev and b's bDev with a veth pair.
func (l *Lab) wire(ctx context.Context, a *Host, aDev string, aAddr netip.Addr, b *Host, bDev string, bAddr netip.Addr) error {
	tmp := fmt.Sprintf("gvs%dw%s", os.Getpid()%100000, aDev)
	if err := l.sh(ctx, "", "ip", "link", "add", tmp, "netns", a.NS, "address", macOf(aAddr), "type", "veth",
		"peer", "name", bDev, "netns", b.NS, "address", macOf(bAddr)); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"ip", "link", "set", tmp, "name", aDev},
		{"ip", "addr", "add", aAddr.String() + "/" + strconv.Itoa(Prefix), "dev", aDev},
		{"ip", "link", "set", aDev, "up"},
	} {
		if err := l.sh(ctx, a.NS, args...); err != nil {
			return err
		}
	}
	for _, args := range [][]string{
		{"ip", "addr", "add", bAddr.String() + "/" + strconv.Itoa(Prefix), "dev", bDev},
		{"ip", "link", "set", bDev, "up"},
	} {
		if err := l.sh(ctx, b.NS, args...); err != nil {
			return err
		}
	}
	return nil
}

// startTunnel starts gvs realserver --tun on a real server and waits for
// its TUN device.
func (l *Lab) startTunnel(ctx context.Context, h *Host) error {
	args := []string{"netns", "exec", h.NS, l.cfg.Gvs, "realserver", "--vip", VIP.String(), "--tun", "--dev", "eth0"}
	l.printf("%s%s realserver --vip %s --tun --dev eth0 &\n", l.prompt(h.NS), l.cfg.Gvs, VIP)
	cmd := exec.Command("ip", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return err
	}
	l.mu.Lock()
	l.bg = append(l.bg, cmd)
	l.mu.Unlock()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if err := exec.CommandContext(ctx, "ip", "netns", "exec", h.NS, "ip", "link", "show", "gvstun0").Run(); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s: gvs realserver --tun did not bring up gvstun0 within 15 s", h.Role)
}

// GvsInterfaces are the interfaces gvs serves on node01 in the lab.
func (l *Lab) GvsInterfaces() []string {
	if l.cfg.Mode == DR {
		return []string{"eth0"}
	}
	return []string{"eth0", "eth1"}
}

// ServiceCommands are the gvsadm commands that set up the lab's service:
// the VIP's port 80 over both real servers, with the mode's forwarding
// method (and for FULLNAT a local address).
//
// proto is "-t" (TCP, the web servers) or "-u" (UDP, their echo
// servers on the same port).
func (l *Lab) ServiceCommands(proto, sched string) [][]string {
	svc := VIP.String() + ":80"
	cmds := [][]string{{"-A", proto, svc, "-s", sched}}
	for _, h := range l.Reals {
		switch l.cfg.Mode {
		case DR:
			cmds = append(cmds, []string{"-a", proto, svc, "-r", h.Addr.String(), "-g", "-w", "1"})
		case NAT:
			cmds = append(cmds, []string{"-a", proto, svc, "-r", h.Addr.String() + ":8080", "-m", "-w", "1"})
		case TUN:
			cmds = append(cmds, []string{"-a", proto, svc, "-r", h.Addr.String(), "-i", "-w", "1"})
		case FullNAT:
			cmds = append(cmds, []string{"-a", proto, svc, "-r", h.Addr.String() + ":80", "--fullnat", "-w", "1"})
		}
	}
	if l.cfg.Mode == FullNAT {
		cmds = append(cmds, []string{"-P", proto, svc, "-z", LocalAddr.String()})
	}
	return cmds
}

// hosts returns the lab's hosts, with the switches first if asked.
func (l *Lab) hosts(withSwitches bool) []*Host {
	var hs []*Host
	if withSwitches {
		hs = append(hs, l.Switches...)
	}
	hs = append(hs, l.Client, l.Director)
	if l.Router != nil {
		hs = append(hs, l.Router)
	}
	return append(hs, l.Reals...)
}

// Socket returns gvs's control socket path.
func (l *Lab) Socket() string { return l.cfg.Socket }

func (l *Lab) printf(format string, args ...any) {
	if l.cfg.Out != nil {
		fmt.Fprintf(l.cfg.Out, format, args...)
	}
}

// step announces the next step of the narration.
func (l *Lab) step(title string) { l.printf("\n### %s\n", title) }

// Step is step for callers outside the package (the demo).
func (l *Lab) Step(title string) { l.step(title) }

// Printf writes to the narration.
func (l *Lab) Printf(format string, args ...any) { l.printf(format, args...) }

// prompt is how a command run in a namespace is shown.
func (l *Lab) prompt(ns string) string {
	for _, h := range l.hosts(true) {
		if h.NS == ns {
			return h.Role + "# "
		}
	}
	return "# "
}

// sh runs a command, in namespace ns if not empty, printing it and its
// output to the narration.
func (l *Lab) sh(ctx context.Context, ns string, args ...string) error {
	_, err := l.Output(ctx, ns, nil, args...)
	return err
}

// Output runs a command (in ns if not empty, with extra environment
// variables env), prints it and its output, and returns the output.
func (l *Lab) Output(ctx context.Context, ns string, env []string, args ...string) (string, error) {
	shown := strings.Join(args, " ")
	if len(env) > 0 {
		shown = strings.Join(env, " ") + " " + shown
	}
	if ns != "" {
		l.printf("%s%s\n", l.prompt(ns), shown)
		args = append([]string{"ip", "netns", "exec", ns}, args...)
	} else {
		l.printf("# %s\n", shown)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if len(out) > 0 {
		l.printf("%s", indent(string(out)))
	}
	if err != nil {
		return string(out), fmt.Errorf("%s: %w", shown, err)
	}
	return string(out), nil
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	return "    " + strings.ReplaceAll(s, "\n", "\n    ") + "\n"
}

func (l *Lab) sysctlIfPresent(ctx context.Context, ns, key, value string) error {
	var present bool
	netns.Do(ns, func() error {
		_, err := os.Stat("/proc/sys/" + key)
		present = err == nil
		return nil
	})
	if !present {
		return nil
	}
	return l.sh(ctx, ns, "sysctl", "-qw", strings.ReplaceAll(key, "/", ".")+"="+value)
}

// StartServers starts an HTTP server on port 80 of each real server,
// answering GET / with "from <its address>". GET /bytes?n=N streams N
// bytes; POST /sum answers with the SHA-256 of the body. They run in this
// process, on sockets that live in the real servers' namespaces.
func (l *Lab) StartServers() error {
	port := l.cfg.Mode.RealPort()
	l.step(fmt.Sprintf("node02, node03: start the web servers on port %d (the notes' httpd, answering \"from <its address>\")", port))
	for _, h := range l.Reals {
		var ln net.Listener
		if err := netns.Do(h.NS, func() error {
			var err error
			ln, err = net.Listen("tcp4", fmt.Sprintf(":%d", port))
			return err
		}); err != nil {
			return fmt.Errorf("%s: listening on :%d: %w", h.Role, port, err)
		}
		srv := &http.Server{Handler: handler("from " + h.Addr.String()), ReadHeaderTimeout: 10 * time.Second}
		l.mu.Lock()
		l.servers = append(l.servers, srv)
		l.mu.Unlock()
		go srv.Serve(ln)
		l.printf("%shttpd listening on *:%d, index.html: from %s\n", l.prompt(h.NS), port, h.Addr)
		// A UDP server answers from the address it is bound to: in DR
		// and TUN the client asked the VIP, so the echo server binds the
		// VIP (on the real server's lo), as a DR UDP service must.
		bind := ""
		if l.cfg.Mode == DR || l.cfg.Mode == TUN {
			bind = VIP.String()
		}
		var pc net.PacketConn
		if err := netns.Do(h.NS, func() error {
			var err error
			pc, err = net.ListenPacket("udp4", fmt.Sprintf("%s:%d", bind, port))
			return err
		}); err != nil {
			return fmt.Errorf("%s: listening on udp :%d: %w", h.Role, port, err)
		}
		l.mu.Lock()
		l.udp = append(l.udp, pc)
		l.mu.Unlock()
		go udpEcho(pc, "from "+h.Addr.String())
	}
	return nil
}

// udpEcho answers each datagram with "<name>: <datagram>".
func udpEcho(pc net.PacketConn, name string) {
	buf := make([]byte, 65536)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		pc.WriteTo(append([]byte(name+": "), buf[:n]...), from)
	}
}

// handler is a real server's web server.
func handler(name string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, name+"\n")
	})
	mux.HandleFunc("GET /bytes", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil || n < 0 || n > 1<<30 {
			http.Error(w, "bad n", http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Server", name)
		w.Header().Set("Content-Length", strconv.Itoa(n))
		io.Copy(w, io.LimitReader(&Pattern{}, int64(n)))
	})
	mux.HandleFunc("POST /sum", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%s %d %s\n", name, n, hex.EncodeToString(h.Sum(nil)))
	})
	return mux
}

// Pattern is an endless deterministic byte stream (byte i is i*7+i>>9
// mod 256): the bytes the web servers send and tests upload, so that both
// ends can check a transfer by its hash.
type Pattern struct{ off int64 }

func (p *Pattern) Read(b []byte) (int, error) {
	for i := range b {
		o := p.off + int64(i)
		b[i] = byte(o*7 + o>>9)
	}
	p.off += int64(len(b))
	return len(b), nil
}

// StartGvs starts gvs on node01's eth0 and waits until its control
// socket answers.
func (l *Lab) StartGvs(ctx context.Context, extra ...string) error {
	var ifs []string
	for _, i := range l.GvsInterfaces() {
		ifs = append(ifs, "-i", i)
	}
	l.step("node01: start the director, gvs, on " + strings.Join(l.GvsInterfaces(), " and "))
	args := append(append([]string{"netns", "exec", l.Director.NS, l.cfg.Gvs}, ifs...), "--socket", l.cfg.Socket)
	if l.cfg.Workers > 0 {
		extra = append([]string{"--workers", strconv.Itoa(l.cfg.Workers)}, extra...)
	}
	extra = append(slices.Clone(l.cfg.GvsArgs), extra...)
	args = append(args, extra...)
	l.printf("%s%s %s --socket %s %s&\n", l.prompt(l.Director.NS), l.cfg.Gvs, strings.Join(ifs, " "), l.cfg.Socket, strings.Join(extra, " "))
	cmd := exec.Command("ip", args...)
	l.gvsLog = &bytes.Buffer{}
	logw := &lockedWriter{w: l.gvsLog, mu: &l.mu}
	cmd.Stdout, cmd.Stderr = logw, logw
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting gvs: %w", err)
	}
	l.mu.Lock()
	l.gvs = cmd
	l.mu.Unlock()
	done := make(chan struct{})
	l.gvsDone = done
	go func() {
		l.gvsErr = cmd.Wait()
		close(done)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c, err := net.Dial("unix", l.cfg.Socket); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("gvs exited at start: %v\n%s", l.gvsErr, l.GvsLog())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gvs did not open %s within 15 s\n%s", l.cfg.Socket, l.GvsLog())
		}
	}
}

// GvsExited reports whether gvs has exited, and how.
func (l *Lab) GvsExited() (bool, error) {
	select {
	case <-l.gvsDone:
		return true, l.gvsErr
	default:
		return false, nil
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(b)
}

// GvsLog returns what gvs has logged so far.
func (l *Lab) GvsLog() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gvsLog == nil {
		return ""
	}
	return l.gvsLog.String()
}

// Gvsadm runs gvsadm against the lab's gvs, printing the command as the
// notes print ipvsadm's, and returns its output.
func (l *Lab) Gvsadm(ctx context.Context, args ...string) (string, error) {
	l.printf("%sgvsadm %s\n", l.prompt(l.Director.NS), strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, l.cfg.Gvsadm, args...)
	cmd.Env = append(os.Environ(), "GVS_SOCKET="+l.cfg.Socket)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if out.Len() > 0 {
		l.printf("%s", indent(out.String()))
	}
	if err != nil {
		return out.String(), fmt.Errorf("gvsadm %s: %w", strings.Join(args, " "), err)
	}
	return out.String(), nil
}

// Dial opens a TCP connection from the client to addr (in the client's
// namespace).
func (l *Lab) Dial(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
	var c net.Conn
	err := netns.Do(l.Client.NS, func() error {
		var err error
		d := net.Dialer{Timeout: 5 * time.Second}
		c, err = d.DialContext(ctx, "tcp", addr.String())
		return err
	})
	return c, err
}

// HTTPClient returns an HTTP client whose connections are made in the
// client's namespace. keepAlive keeps connections for reuse.
func (l *Lab) HTTPClient(keepAlive bool) *http.Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			ap, err := netip.ParseAddrPort(addr)
			if err != nil {
				return nil, err
			}
			return l.Dial(ctx, ap)
		},
		DisableKeepAlives: !keepAlive,
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// Get fetches http://VIP/ from the client on a new connection and returns
// the answer's body.
func (l *Lab) Get(ctx context.Context) (string, error) {
	c := l.HTTPClient(false)
	defer c.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+VIP.String()+"/", nil)
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b)), err
}

// Close stops gvs and the web servers and removes every namespace the
// lab created (their links go with them).
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	servers := l.servers
	gvs := l.gvs
	l.mu.Unlock()
	for _, s := range servers {
		s.Close()
	}
	l.mu.Lock()
	for _, pc := range l.udp {
		pc.Close()
	}
	l.mu.Unlock()
	var errs []error
	l.mu.Lock()
	bg := l.bg
	l.mu.Unlock()
	for _, c := range bg {
		c.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- c.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			c.Process.Kill()
			<-done
			errs = append(errs, errors.New("gvs realserver --tun did not stop within 10 s of SIGTERM; killed"))
		}
	}
	if gvs != nil && gvs.Process != nil {
		gvs.Process.Signal(syscall.SIGTERM)
		select {
		case <-l.gvsDone:
		case <-time.After(10 * time.Second):
			gvs.Process.Kill()
			<-l.gvsDone
			errs = append(errs, errors.New("gvs did not stop within 10 s of SIGTERM; killed"))
		}
	}
	if l.cfg.Mode == DR {
		for _, h := range l.Reals {
			if h == nil {
				continue
			}
			// Undo gvs realserver's state file (its sysctls and
			// address go with the namespace).
			exec.Command("ip", "netns", "exec", h.NS, l.cfg.Gvs, "realserver", "--vip", VIP.String(), "--undo", "--dev", "eth0").Run()
		}
	}
	for _, ns := range l.made {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip netns del %s: %v: %s", ns, err, out))
		}
	}
	os.Remove(l.cfg.Socket)
	return errors.Join(errs...)
}

// mustRun runs a command in the host's namespace for a test.
func (h *Host) mustRun(t interface {
	Helper()
	Fatalf(string, ...any)
}, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", append([]string{"netns", "exec", h.NS}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %v: %s", h.Role, args, err, out)
	}
}
