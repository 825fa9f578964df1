//go:build linux

package arp

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gvs-project/gvs/internal/nstest"
)

// The lab: a switch namespace with a Linux bridge, and three hosts on it,
// each through a veth pair:
//
//	D (director, gvs)  eth0 192.168.150.1/24
//	R (real server)    eth0 192.168.150.2/24, VIP 192.168.150.100/32 on lo,
//	                   arp_ignore=1 and arp_announce=2 (LVS-DR style)
//	C (client)         eth0 192.168.150.3/24
var (
	labD    = netip.MustParseAddr("192.168.150.1")
	labR    = netip.MustParseAddr("192.168.150.2")
	labC    = netip.MustParseAddr("192.168.150.3")
	labVIP  = netip.MustParseAddr("192.168.150.100")
	labNone = netip.MustParseAddr("192.168.150.77") // nobody, at first
)

// safety bounds the waits for kernels to act: never a speed assertion.
const safety = 10 * time.Second

type lab struct {
	sw, d, r, c      *nstest.NS
	dMAC, rMAC, cMAC [6]byte
}

func newLab(t *testing.T) *lab {
	t.Helper()
	nstest.Require(t)
	l := &lab{
		sw: nstest.NewNS(t, "arpsw"),
		d:  nstest.NewNS(t, "arpd"),
		r:  nstest.NewNS(t, "arpr"),
		c:  nstest.NewNS(t, "arpc"),
	}
	// Bridged frames must not go through iptables (only present when
	// br_netfilter is loaded).
	l.sw.MustRun(t, "sh", "-c", "f=/proc/sys/net/bridge/bridge-nf-call-iptables; [ ! -e $f ] || echo 0 > $f")
	l.sw.MustRun(t, "ip", "link", "add", "br0", "type", "bridge")
	l.sw.MustRun(t, "ip", "link", "set", "br0", "up")
	for _, h := range []struct {
		ns   *nstest.NS
		port string
		addr netip.Addr
	}{{l.d, "pd", labD}, {l.r, "pr", labR}, {l.c, "pc", labC}} {
		nstest.Veth(t, h.ns, "eth0", l.sw, h.port)
		l.sw.MustRun(t, "ip", "link", "set", h.port, "master", "br0")
		h.ns.MustRun(t, "ip", "addr", "add", h.addr.String()+"/24", "dev", "eth0")
	}
	// R as an LVS-DR real server: the VIP on lo, and ARP neither answered
	// for it (arp_ignore=1: only for addresses of the receiving interface)
	// nor used as a source (arp_announce=2).
	for _, dev := range []string{"all", "eth0"} {
		l.r.Sysctl(t, "net.ipv4.conf."+dev+".arp_ignore", "1")
		l.r.Sysctl(t, "net.ipv4.conf."+dev+".arp_announce", "2")
	}
	l.r.MustRun(t, "ip", "addr", "add", labVIP.String()+"/32", "dev", "lo")
	l.dMAC = nsMAC(t, l.d)
	l.rMAC = nsMAC(t, l.r)
	l.cMAC = nsMAC(t, l.c)
	return l
}

func nsMAC(t *testing.T, ns *nstest.NS) [6]byte {
	t.Helper()
	hw, err := net.ParseMAC(strings.TrimSpace(ns.MustRun(t, "cat", "/sys/class/net/eth0/address")))
	if err != nil || len(hw) != 6 {
		t.Fatalf("MAC of %s: %q %v", ns.Name, hw, err)
	}
	return [6]byte(hw)
}

// resolver starts gvs's Resolver on D's eth0.
func (l *lab) resolver(t *testing.T, cfg Config) (*Resolver, int, *logSink, *logSink) {
	t.Helper()
	logs, errs := &logSink{}, &logSink{}
	cfg.Logf, cfg.Errorf = logs.f, errs.f
	var r *Resolver
	var ifindex int
	err := l.d.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		ifindex = ifi.Index
		r, err = New([]*net.Interface{ifi}, &cfg)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		t.Logf("gvs logs:\n%s\n%s", logs, errs)
	})
	return r, ifindex, logs, errs
}

// eventually polls cond until it holds, failing after the safety bound.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(safety)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %s after %v", what, state, safety)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// kernelNeigh returns the lladdr a namespace's kernel has for addr on
// eth0 (zero if none) and the whole `ip neigh` line.
func kernelNeigh(t *testing.T, ns *nstest.NS, addr netip.Addr) ([6]byte, string) {
	t.Helper()
	out := strings.TrimSpace(ns.MustRun(t, "ip", "-4", "neigh", "show", addr.String(), "dev", "eth0"))
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "lladdr" {
			if hw, err := net.ParseMAC(f[i+1]); err == nil && len(hw) == 6 {
				return [6]byte(hw), out
			}
		}
	}
	return [6]byte{}, out
}

// prober is a raw ARP socket in C, to send hand-made requests and see
// every reply.
type prober struct {
	l  *link
	pc *packetConn
}

func (lb *lab) prober(t *testing.T) *prober {
	t.Helper()
	var p prober
	err := lb.c.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		p.l, err = openLink(ifi)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	p.pc = p.l.conn.(*packetConn)
	t.Cleanup(func() { p.pc.Close() })
	return &p
}

func (p *prober) request(t *testing.T, sender, target netip.Addr) {
	t.Helper()
	f := requestFrom(sender, p.l.mac, target)
	b, _ := f.MarshalBinary()
	if err := p.pc.WriteFrame(b); err != nil {
		t.Fatal(err)
	}
}

// repliesUntil reads ARP replies addressed to C until stop returns true,
// and returns them all.
func (p *prober) repliesUntil(t *testing.T, stop func(Frame) bool) []Frame {
	t.Helper()
	if err := p.pc.c.SetReadDeadline(time.Now().Add(safety)); err != nil {
		t.Fatal(err)
	}
	var got []Frame
	buf := make([]byte, readBufLen)
	for {
		n, err := p.pc.ReadFrame(buf)
		if err != nil {
			t.Fatalf("reading replies (have %+v): %v", got, err)
		}
		var f Frame
		if f.UnmarshalBinary(buf[:n]) != nil || f.Op != OpReply || f.TargetMAC != p.l.mac {
			continue
		}
		got = append(got, f)
		if stop(f) {
			return got
		}
	}
}

// TestNSResolveRealServer: gvs resolves an LVS-DR real server's own
// address (which it still answers for despite arp_ignore=1).
func TestNSResolveRealServer(t *testing.T) {
	lb := newLab(t)
	r, ifindex, logs, _ := lb.resolver(t, Config{Retry: 50 * time.Millisecond, Refresh: 100 * time.Millisecond})
	n, err := r.Neighbor(ifindex, labR)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "resolving R", func() (bool, string) { return n.State() == Reachable, n.State().String() })
	if mac, ok := n.MAC(); !ok || mac != lb.rMAC {
		t.Fatalf("MAC %v ok %v, want R's %v", net.HardwareAddr(mac[:]), ok, net.HardwareAddr(lb.rMAC[:]))
	}
	if s := r.Stats(); s.Learned < 1 || s.RequestsSent < 1 || s.Failures != 0 {
		t.Fatalf("stats %+v", s)
	}
	if logs.count("resolved", labR.String()) != 1 {
		t.Fatalf("logs:\n%s", logs)
	}
	// Refreshes go out on the real clock and R answers them.
	eventually(t, "refreshes answered", func() (bool, string) {
		s := r.Stats()
		return s.Learned >= 3, fmt.Sprintf("%+v", s)
	})
	if s := r.Stats(); n.State() != Reachable || s.Failures != 0 {
		t.Fatalf("after refreshes: %v, %+v", n.State(), s)
	}
	// gvs's requests came from D's address: R's kernel learnt D.
	eventually(t, "R learning D from gvs's request", func() (bool, string) {
		mac, line := kernelNeigh(t, lb.r, labD)
		return mac == lb.dMAC, line
	})
}

// TestNSOwnedVIP: with the VIP owned by gvs (and not held by D's kernel),
// the client's kernel resolves it to D, and R (which holds the VIP on lo)
// never answers for it.
func TestNSOwnedVIP(t *testing.T) {
	lb := newLab(t)
	r, _, _, _ := lb.resolver(t, Config{})
	r.SetOwned([]netip.Addr{labVIP})
	if got := r.Owned(); !got[labVIP] {
		t.Fatalf("Owned() = %v, want gvs answering for %v", got, labVIP)
	}

	// The client's kernel resolves the VIP when it has a datagram for it.
	err := lb.c.Do(func() error {
		conn, err := net.Dial("udp4", netip.AddrPortFrom(labVIP, 9).String())
		if err != nil {
			return err
		}
		defer conn.Close()
		_, err = conn.Write([]byte("resolve me"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "C resolving the VIP", func() (bool, string) {
		mac, line := kernelNeigh(t, lb.c, labVIP)
		return mac == lb.dMAC, line
	})

	// Raw requests: the VIP, then R's own address as a barrier. R handles
	// requests in order, so had it answered for the VIP, that reply would
	// be in before its reply for its own address.
	// The answer that resolved C is counted after its write returns, which
	// can be after C's kernel has taken it in: wait for the count first.
	eventually(t, "gvs counting its answer to C", func() (bool, string) {
		n := r.Stats().AnswersSent
		return n >= 1, fmt.Sprintf("AnswersSent = %d", n)
	})
	p := lb.prober(t)
	before := r.Stats().AnswersSent
	p.request(t, labC, labVIP)
	p.request(t, labC, labR)
	var fromD, fromR int
	barrier := false
	replies := p.repliesUntil(t, func(f Frame) bool {
		if f.SenderIP == labVIP && f.SenderMAC == lb.dMAC {
			fromD++
		}
		barrier = barrier || f.SenderIP == labR
		return fromD > 0 && barrier
	})
	for _, f := range replies {
		if f.SenderIP == labVIP && f.SenderMAC != lb.dMAC {
			fromR++
			t.Errorf("VIP answered by %v (R is %v)", net.HardwareAddr(f.SenderMAC[:]), net.HardwareAddr(lb.rMAC[:]))
		}
	}
	if fromD != 1 || fromR != 0 {
		t.Fatalf("VIP replies: %d from D, %d from others: %+v", fromD, fromR, replies)
	}
	eventually(t, "gvs counting its answer to the prober", func() (bool, string) {
		n := r.Stats().AnswersSent - before
		return n >= 1, fmt.Sprintf("%d answers counted", n)
	})
	if got := r.Stats().AnswersSent - before; got != 1 {
		t.Fatalf("gvs answered %d times to one request", got)
	}
}

// TestNSKernelHeldVIP: when D's kernel holds the VIP, gvs stays silent
// and exactly one reply (the kernel's) answers a request.
func TestNSKernelHeldVIP(t *testing.T) {
	lb := newLab(t)
	lb.d.MustRun(t, "ip", "addr", "add", labVIP.String()+"/32", "dev", "eth0")
	r, _, _, _ := lb.resolver(t, Config{})
	r.SetOwned([]netip.Addr{labVIP})
	if got := r.Owned(); len(got) != 1 || got[labVIP] {
		t.Fatalf("Owned() = %v, want the kernel to answer for %v", got, labVIP)
	}
	if s := r.Stats(); s.GratuitousSent != 0 {
		t.Fatalf("announced a kernel-held VIP: %+v", s)
	}

	p := lb.prober(t)
	seen := r.Stats().Received
	p.request(t, labC, labVIP)
	// Wait until gvs has handled that request (it reads every broadcast
	// ARP frame) before the barrier, a request for D's own address.
	eventually(t, "gvs reading the request", func() (bool, string) {
		got := r.Stats().Received
		return got > seen, fmt.Sprint(got)
	})
	p.request(t, labC, labD)
	replies := p.repliesUntil(t, func(f Frame) bool { return f.SenderIP == labD })
	vipReplies := 0
	for _, f := range replies {
		if f.SenderIP == labVIP {
			vipReplies++
			if f.SenderMAC != lb.dMAC {
				t.Errorf("VIP answered by %v", net.HardwareAddr(f.SenderMAC[:]))
			}
		}
	}
	if vipReplies != 1 {
		t.Fatalf("%d replies for the VIP, want exactly the kernel's: %+v", vipReplies, replies)
	}
	if s := r.Stats(); s.AnswersSent != 0 {
		t.Fatalf("gvs answered for a kernel-held VIP: %+v", s)
	}
}

// TestNSFailedNeighbor: an address nobody has becomes Failed after
// MaxProbes, is counted and logged once, counts drops, and recovers when
// a host takes the address.
func TestNSFailedNeighbor(t *testing.T) {
	lb := newLab(t)
	r, ifindex, logs, errs := lb.resolver(t, Config{Retry: 20 * time.Millisecond, MaxProbes: 3, MaxRetry: 40 * time.Millisecond})
	n, err := r.Neighbor(ifindex, labNone)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "failing", func() (bool, string) { return n.State() == Failed, n.State().String() })
	if s := r.Stats(); s.Failures != 1 || s.RequestsSent < 3 {
		t.Fatalf("stats %+v", s)
	}
	if errs.count("failed", labNone.String(), "eth0") != 1 {
		t.Fatalf("errors:\n%s", errs)
	}
	for range 5 {
		if _, ok := n.MAC(); !ok {
			n.Drop()
		}
	}
	if s := r.Stats(); s.Drops != 5 || n.Drops() != 5 {
		t.Fatalf("drops: stats %d, neighbour %d", s.Drops, n.Drops())
	}

	// R takes the address; the backoff probes find it.
	lb.r.MustRun(t, "ip", "addr", "add", labNone.String()+"/24", "dev", "eth0")
	eventually(t, "recovering", func() (bool, string) { return n.State() == Reachable, n.State().String() })
	if mac, _ := n.MAC(); mac != lb.rMAC {
		t.Fatalf("recovered to %v, want R's %v", net.HardwareAddr(mac[:]), net.HardwareAddr(lb.rMAC[:]))
	}
	if logs.count("reachable again", labNone.String()) != 1 || r.Stats().Failures != 1 {
		t.Fatalf("logs:\n%s\nerrors:\n%s", logs, errs)
	}
}

// TestNSGratuitousUpdatesClient: gratuitous ARP for a newly owned VIP
// moves a client's existing neighbour entry to D, without arp_accept.
func TestNSGratuitousUpdatesClient(t *testing.T) {
	lb := newLab(t)
	const elsewhere = "02:00:00:00:00:99"
	lb.c.MustRun(t, "ip", "neigh", "replace", labVIP.String(), "lladdr", elsewhere, "dev", "eth0", "nud", "stale")
	if accept := strings.TrimSpace(lb.c.MustRun(t, "cat", "/proc/sys/net/ipv4/conf/eth0/arp_accept")); accept != "0" {
		t.Fatalf("client arp_accept = %s, want the default 0", accept)
	}
	if mac, line := kernelNeigh(t, lb.c, labVIP); net.HardwareAddr(mac[:]).String() != elsewhere {
		t.Fatalf("client entry not set up: %q", line)
	}
	r, _, _, _ := lb.resolver(t, Config{})
	r.SetOwned([]netip.Addr{labVIP})
	eventually(t, "client entry moving to D", func() (bool, string) {
		mac, line := kernelNeigh(t, lb.c, labVIP)
		return mac == lb.dMAC, line
	})
	if s := r.Stats(); s.GratuitousSent < 2 {
		t.Fatalf("stats %+v", s)
	}
}
