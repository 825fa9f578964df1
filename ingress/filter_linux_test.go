package ingress

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
	"github.com/gvs-project/gvs/internal/nstest"
	"github.com/mdlayher/packet"
)

// Safety bounds. Tests never pass or fail because of them unless
// something is broken: a positive wait ends as soon as its event happens.
const (
	waitFor   = 5 * time.Second       // longest wait for an event that must happen
	quietFor  = 50 * time.Millisecond // read on a socket whose frames are known to be dropped
	pollEvery = 10 * time.Millisecond // how often counters are re-read
)

var (
	aIP = netip.MustParseAddr("192.168.77.1")
	bIP = netip.MustParseAddr("192.168.77.2")
)

// lab is two namespaces joined by a veth: A (client, 192.168.77.1 on eth0)
// and B (director, 192.168.77.2 on eth0).
type lab struct {
	a, b *nstest.NS
}

func newLab(t *testing.T) *lab {
	t.Helper()
	nstest.Require(t)
	l := &lab{a: nstest.NewNS(t, "ingA"), b: nstest.NewNS(t, "ingB")}
	nstest.Veth(t, l.a, "eth0", l.b, "eth0")
	l.a.MustRun(t, "ip", "addr", "add", aIP.String()+"/24", "dev", "eth0")
	l.b.MustRun(t, "ip", "addr", "add", bIP.String()+"/24", "dev", "eth0")
	return l
}

// open opens a filter inside B and closes it when the test ends.
func (l *lab) open(t *testing.T, cfg *Config) *Filter {
	t.Helper()
	f, err := l.tryOpen([]string{"eth0"}, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return f
}

func (l *lab) tryOpen(ifaces []string, cfg *Config) (*Filter, error) {
	var f *Filter
	err := l.b.Do(func() (err error) {
		f, err = Open(ifaces, cfg)
		return err
	})
	return f, err
}

// udpSocket binds a UDP socket to addr:port inside ns.
func udpSocket(t *testing.T, ns *nstest.NS, addr netip.Addr, port uint16) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := ns.Do(func() (err error) {
		c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, port)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func send(t *testing.T, from *net.UDPConn, to netip.Addr, port uint16, payload string) {
	t.Helper()
	if _, err := from.WriteToUDPAddrPort([]byte(payload), netip.AddrPortFrom(to, port)); err != nil {
		t.Fatal(err)
	}
}

// received reports whether c receives a datagram carrying payload before
// the deadline d passes.
func received(t *testing.T, c *net.UDPConn, payload string, d time.Duration) bool {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(d)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	for {
		n, err := c.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		if string(buf[:n]) == payload {
			return true
		}
	}
}

// mustReceive fails t unless c receives payload.
func mustReceive(t *testing.T, c *net.UDPConn, payload string) {
	t.Helper()
	if !received(t, c, payload, waitFor) {
		t.Fatalf("%v: datagram %q not received within %v", c.LocalAddr(), payload, waitFor)
	}
}

// waitDropped waits until the filter's total has reached want.
func waitDropped(t *testing.T, f *Filter, want uint64) map[string]uint64 {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		got, err := f.Dropped()
		if err != nil {
			t.Fatalf("Dropped: %v", err)
		}
		if got[Total] >= want {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("Dropped = %v, want total >= %d within %v", got, want, waitFor)
		}
		time.Sleep(pollEvery)
	}
}

func dropped(t *testing.T, f *Filter) uint64 {
	t.Helper()
	got, err := f.Dropped()
	if err != nil {
		t.Fatalf("Dropped: %v", err)
	}
	return got[Total]
}

// mustDrop sends n datagrams from src to B:port, waits for the filter to
// count them as dropped, and checks that dst (bound to B:port) got none.
func mustDrop(t *testing.T, f *Filter, src, dst *net.UDPConn, port uint16, n int) {
	t.Helper()
	before := dropped(t, f)
	for i := range n {
		send(t, src, bIP, port, fmt.Sprintf("drop-%d-%d", port, i))
	}
	waitDropped(t, f, before+uint64(n))
	// Counted means gone: frames dropped at ingress never reach a socket.
	if err := dst.SetReadDeadline(time.Now().Add(quietFor)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	if n, err := dst.Read(buf); err == nil {
		t.Fatalf("%v received %q although the filter drops it", dst.LocalAddr(), buf[:n])
	}
}

// capture is an ETH_P_ALL packet socket on B's eth0, like gvs's own.
func capture(t *testing.T, ns *nstest.NS) *packet.Conn {
	t.Helper()
	var c *packet.Conn
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		const ethPAll = 0x0003 // ETH_P_ALL, linux/if_ether.h
		c, err = packet.Listen(ifi, packet.Raw, ethPAll, nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// captured reads c until it sees an IPv4 UDP frame to dst:port carrying
// payload.
func captured(t *testing.T, c *packet.Conn, dst netip.Addr, port uint16, payload string) bool {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(waitFor)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65536)
	for {
		n, _, err := c.ReadFrom(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		f := buf[:n]
		const ethLen, udpLen = 14, 8 // Ethernet II header, UDP header
		if len(f) < ethLen+20 || binary.BigEndian.Uint16(f[12:14]) != 0x0800 {
			continue
		}
		ip := f[ethLen:]
		ihl := int(ip[0]&0x0f) * 4
		if ip[9] != ProtoUDP || len(ip) < ihl+udpLen || netip.AddrFrom4([4]byte(ip[16:20])) != dst {
			continue
		}
		udp := ip[ihl:]
		if binary.BigEndian.Uint16(udp[2:4]) == port && bytes.Equal(udp[udpLen:], []byte(payload)) {
			return true
		}
	}
}

// netdevTables lists the netdev-family tables in ns, with nft when it is
// installed and through netlink otherwise.
func netdevTables(t *testing.T, ns *nstest.NS) []string {
	t.Helper()
	var names []string
	if _, err := exec.LookPath("nft"); err == nil {
		out := ns.MustRun(t, "nft", "list", "tables", "netdev")
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) == 3 && f[0] == "table" && f[1] == "netdev" {
				names = append(names, f[2])
			}
		}
		return names
	}
	c := nftConn(t, ns)
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyNetdev)
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		names = append(names, tb.Name)
	}
	slices.Sort(names)
	return names
}

// nftConn returns a netlink nftables connection into ns.
func nftConn(t *testing.T, ns *nstest.NS) *nftables.Conn {
	t.Helper()
	nsf, err := os.Open("/run/netns/" + ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nsf.Close() })
	c, err := nftables.New(nftables.WithNetNSFd(int(nsf.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// setRules reads back the kernel's dst and src sets of table as rules.
func setRules(t *testing.T, ns *nstest.NS, table string) []Rule {
	t.Helper()
	c := nftConn(t, ns)
	tb := &nftables.Table{Name: table, Family: nftables.TableFamilyNetdev}
	var rules []Rule
	for _, name := range []string{setDst, setSrc} {
		elems, err := c.GetSetElements(&nftables.Set{Table: tb, Name: name})
		if err != nil {
			t.Fatalf("set %s: %v", name, err)
		}
		for _, e := range elems {
			if len(e.Key) != keyLen {
				t.Fatalf("set %s: key %x is %d bytes, want %d", name, e.Key, len(e.Key), keyLen)
			}
			rules = append(rules, Rule{
				Protocol: e.Key[4],
				Addr:     netip.AddrFrom4([4]byte(e.Key[0:4])),
				Port:     binary.BigEndian.Uint16(e.Key[8:10]),
				Source:   name == setSrc,
			})
		}
	}
	sortRules(rules)
	return rules
}

func sortRules(rules []Rule) {
	slices.SortFunc(rules, func(a, b Rule) int { return strings.Compare(a.String(), b.String()) })
}

// cmpAddr compares netip.Addr values, whose fields cmp cannot see.
var cmpAddr = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func udpDst(port uint16) Rule { return Rule{Protocol: ProtoUDP, Addr: bIP, Port: port} }

// TestDropsDestination is the main case: VIP:port frames never reach B's
// stack, other ports do, and gvs's ETH_P_ALL socket still sees them all.
func TestDropsDestination(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	f := l.open(t, nil)
	if err := f.Set([]Rule{udpDst(9000), {Protocol: ProtoTCP, Addr: bIP, Port: 80}}); err != nil {
		t.Fatal(err)
	}

	t.Run("udp", func(t *testing.T) {
		sock9000 := udpSocket(t, l.b, bIP, 9000)
		sock9001 := udpSocket(t, l.b, bIP, 9001)
		cap := capture(t, l.b)
		client := udpSocket(t, l.a, aIP, 0)

		const n = 5 // datagrams to the filtered port
		mustDrop(t, f, client, sock9000, 9000, n)
		send(t, client, bIP, 9001, "pass-9001")
		mustReceive(t, sock9001, "pass-9001")
		if !captured(t, cap, bIP, 9000, fmt.Sprintf("drop-9000-%d", n-1)) {
			t.Errorf("ETH_P_ALL socket did not see the dropped frames to :9000")
		}
		got, err := f.Dropped()
		if err != nil {
			t.Fatal(err)
		}
		if got["eth0"] != got[Total] || got[Total] < n {
			t.Errorf("Dropped = %v, want eth0 == total >= %d", got, n)
		}
	})

	t.Run("tcp", func(t *testing.T) {
		var ln80, ln81 net.Listener
		if err := l.b.Do(func() (err error) {
			if ln80, err = net.Listen("tcp4", netip.AddrPortFrom(bIP, 80).String()); err != nil {
				return err
			}
			ln81, err = net.Listen("tcp4", netip.AddrPortFrom(bIP, 81).String())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln80.Close(); ln81.Close() })

		before := dropped(t, f)
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		// dial runs in A. Dialer.DialContext creates its socket on the
		// calling (pinned) thread, so it is A's.
		dial := func(port uint16) <-chan error {
			errc := make(chan error, 1)
			go func() {
				errc <- l.a.Do(func() error {
					c, err := (&net.Dialer{}).DialContext(ctx, "tcp4", netip.AddrPortFrom(bIP, port).String())
					if err == nil {
						c.Close()
					}
					return err
				})
			}()
			return errc
		}
		err80 := dial(80)
		if err := <-dial(81); err != nil {
			t.Fatalf("connect to unfiltered :81: %v", err)
		}
		// The SYN to :80 was dropped once the counter moves; the next
		// retransmission is a second away (TCP_TIMEOUT_INIT), so the
		// connection cannot have completed when we stop it.
		waitDropped(t, f, before+1)
		cancel()
		if err := <-err80; err == nil {
			t.Fatal("connect to filtered :80 completed; its SYN reached B's stack")
		} else if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("connect to filtered :80: %v, want it still pending (no RST either)", err)
		}
		ln80.(*net.TCPListener).SetDeadline(time.Now().Add(quietFor))
		if c, err := ln80.Accept(); err == nil {
			c.Close()
			t.Fatal("B's listener on :80 accepted a connection")
		}
	})
}

func TestDropsSource(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	f := l.open(t, nil)
	if err := f.Set([]Rule{{Protocol: ProtoUDP, Addr: aIP, Port: 5555, Source: true}}); err != nil {
		t.Fatal(err)
	}
	dst := udpSocket(t, l.b, bIP, 9001)
	from5555 := udpSocket(t, l.a, aIP, 5555)
	from5556 := udpSocket(t, l.a, aIP, 5556)

	// A NAT real server's replies go to clients, addresses that are not
	// B's: B's MAC, another address.
	mac := strings.Fields(l.b.MustRun(t, "cat", "/sys/class/net/eth0/address"))[0]
	l.a.MustRun(t, "ip", "route", "add", natClient.String()+"/32", "dev", "eth0")
	l.a.MustRun(t, "ip", "neigh", "replace", natClient.String(), "lladdr", mac, "dev", "eth0", "nud", "permanent")
	before := dropped(t, f)
	for i := range 3 {
		send(t, from5555, natClient, 40000, fmt.Sprintf("reply-%d", i))
	}
	waitDropped(t, f, before+3)
	// Its answers to B's own connections (a health check) reach B.
	send(t, from5555, bIP, 9001, "to-the-director")
	mustReceive(t, dst, "to-the-director")
	send(t, from5556, bIP, 9001, "from-5556")
	mustReceive(t, dst, "from-5556")
	if got := dropped(t, f); got != before+3 {
		t.Fatalf("dropped %d frames, want %d", got-before, 3)
	}
}

// natClient is a client of a NAT service, as B's frames see it.
var natClient = netip.MustParseAddr("192.168.88.10")

// TestDropsEveryPort: a port-0 rule (an IPVS port-0 service) drops the
// protocol's frames to every port of the address, and nothing else.
func TestDropsEveryPort(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	f := l.open(t, nil)
	if err := f.Set([]Rule{{Protocol: ProtoUDP, Addr: bIP}}); err != nil {
		t.Fatal(err)
	}
	from := udpSocket(t, l.a, aIP, 0)
	for _, port := range []uint16{9001, 1, 65535} {
		dst := udpSocket(t, l.b, bIP, port)
		mustDrop(t, f, from, dst, port, 2)
	}
	if err := f.Set([]Rule{{Protocol: ProtoTCP, Addr: bIP}}); err != nil {
		t.Fatal(err)
	}
	dst := udpSocket(t, l.b, bIP, 9002)
	send(t, from, bIP, 9002, "udp-passes")
	mustReceive(t, dst, "udp-passes")
}

func TestSetReplaces(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	var logged []string
	f := l.open(t, &Config{Logf: func(format string, args ...any) { logged = append(logged, fmt.Sprintf(format, args...)) }})
	s9000 := udpSocket(t, l.b, bIP, 9000)
	s9002 := udpSocket(t, l.b, bIP, 9002)
	client := udpSocket(t, l.a, aIP, 0)

	first := []Rule{udpDst(9000)}
	if err := f.Set(first); err != nil {
		t.Fatal(err)
	}
	mustDrop(t, f, client, s9000, 9000, 2)

	second := []Rule{udpDst(9002), {Protocol: ProtoTCP, Addr: bIP, Port: 9000}}
	if err := f.Set(second); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(second, f.Rules(), cmpAddr); diff != "" {
		t.Errorf("Rules() (-want +got):\n%s", diff)
	}
	want := slices.Clone(second)
	sortRules(want)
	if diff := cmp.Diff(want, setRules(t, l.b, DefaultTable), cmpAddr); diff != "" {
		t.Errorf("kernel sets (-want +got):\n%s", diff)
	}
	send(t, client, bIP, 9000, "again-9000") // UDP :9000 is no longer dropped
	mustReceive(t, s9000, "again-9000")
	mustDrop(t, f, client, s9002, 9002, 2)

	// An empty list drops nothing.
	if err := f.Set(nil); err != nil {
		t.Fatal(err)
	}
	if got := setRules(t, l.b, DefaultTable); len(got) != 0 {
		t.Errorf("kernel sets after Set(nil) = %v, want empty", got)
	}
	send(t, client, bIP, 9002, "again-9002")
	mustReceive(t, s9002, "again-9002")
	if len(logged) == 0 {
		t.Error("Config.Logf was never called")
	}
}

// TestSetMany installs more elements than one netlink message carries.
func TestSetMany(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	f := l.open(t, nil)
	var rules []Rule
	for port := uint16(1); len(rules) < 2*maxElemsPerMsg+10; port++ {
		rules = append(rules, Rule{Protocol: ProtoUDP, Addr: bIP, Port: port})
	}
	if err := f.Set(rules); err != nil {
		t.Fatal(err)
	}
	if got := setRules(t, l.b, DefaultTable); len(got) != len(rules) {
		t.Fatalf("kernel holds %d elements, want %d", len(got), len(rules))
	}
}

func TestInvalidRulesChangeNothing(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	f := l.open(t, nil)
	good := []Rule{udpDst(9000), {Protocol: ProtoTCP, Addr: aIP, Port: 80, Source: true}}
	if err := f.Set(good); err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(good)
	sortRules(want)

	tests := []struct {
		name     string
		bad      Rule
		wantText string
	}{
		{"ipv6", Rule{Protocol: ProtoTCP, Addr: netip.MustParseAddr("2001:db8::1"), Port: 80}, "2001:db8::1"},
		{"icmp", Rule{Protocol: 1, Addr: bIP, Port: 80}, "protocol"},
		{"no address", Rule{Protocol: ProtoUDP, Port: 53}, "not set"},
		{"source port 0", Rule{Protocol: ProtoUDP, Addr: bIP, Source: true}, "port 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := f.Set([]Rule{udpDst(9005), tt.bad})
			var re *RuleError
			if !errors.As(err, &re) || !errors.Is(err, ErrInvalidRule) {
				t.Fatalf("Set = %v, want a *RuleError", err)
			}
			if re.Index != 1 || !strings.Contains(err.Error(), "rule 1") || !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not name rule 1 with %q", err, tt.wantText)
			}
			if diff := cmp.Diff(want, setRules(t, l.b, DefaultTable), cmpAddr); diff != "" {
				t.Errorf("kernel sets changed (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(good, f.Rules(), cmpAddr); diff != "" {
				t.Errorf("Rules() changed (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnknownInterface(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	f, err := l.tryOpen([]string{"eth0", "nosuch0"}, nil)
	if err == nil {
		f.Close()
		t.Fatal("Open succeeded on a missing interface")
	}
	if !strings.Contains(err.Error(), `"nosuch0"`) {
		t.Errorf("error %q does not name the interface", err)
	}
	if got := netdevTables(t, l.b); len(got) != 0 {
		t.Errorf("tables after failed Open = %v, want none", got)
	}
	if _, err := l.tryOpen(nil, nil); err == nil {
		t.Error("Open with no interfaces succeeded")
	}
}

// TestOpenReplacesStale simulates a crashed run: its table stays behind
// with rules in it, and the next Open must start from a clean table.
func TestOpenReplacesStale(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	const table = "gvstest"
	crashed, err := l.tryOpen([]string{"eth0"}, &Config{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	if err := crashed.Set([]Rule{udpDst(9000)}); err != nil {
		t.Fatal(err)
	}
	s9000 := udpSocket(t, l.b, bIP, 9000)
	client := udpSocket(t, l.a, aIP, 0)
	mustDrop(t, crashed, client, s9000, 9000, 1)
	// The crashed process never closes: let go of the handle without
	// deleting the table.
	crashed.mu.Lock()
	crashed.closed = true
	crashed.nsFile.Close()
	crashed.mu.Unlock()

	f, err := l.tryOpen([]string{"eth0"}, &Config{Table: table})
	if err != nil {
		t.Fatalf("second Open over a stale table: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	if got := netdevTables(t, l.b); !slices.Equal(got, []string{table}) {
		t.Errorf("netdev tables = %v, want exactly [%s]", got, table)
	}
	if got := setRules(t, l.b, table); len(got) != 0 {
		t.Errorf("new table still holds the stale rules %v", got)
	}
	if n := dropped(t, f); n != 0 {
		t.Errorf("new table's counters = %d, want 0", n)
	}
	send(t, client, bIP, 9000, "after-restart")
	mustReceive(t, s9000, "after-restart")
	// The new filter works.
	if err := f.Set([]Rule{udpDst(9000)}); err != nil {
		t.Fatal(err)
	}
	mustDrop(t, f, client, s9000, 9000, 1)
}

func TestCloseRestoresTraffic(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	f, err := l.tryOpen([]string{"eth0", "eth0"}, nil) // duplicates are merged
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Interfaces(); !slices.Equal(got, []string{"eth0"}) {
		t.Errorf("Interfaces() = %v, want [eth0]", got)
	}
	if err := f.Set([]Rule{udpDst(9000)}); err != nil {
		t.Fatal(err)
	}
	s9000 := udpSocket(t, l.b, bIP, 9000)
	client := udpSocket(t, l.a, aIP, 0)
	mustDrop(t, f, client, s9000, 9000, 1)

	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := netdevTables(t, l.b); len(got) != 0 {
		t.Errorf("tables after Close = %v, want none", got)
	}
	send(t, client, bIP, 9000, "after-close")
	mustReceive(t, s9000, "after-close")
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := f.Set(nil); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Set after Close = %v, want net.ErrClosed", err)
	}
	if _, err := f.Dropped(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Dropped after Close = %v, want net.ErrClosed", err)
	}
}

// TestCloseToleratesDeletedTable: an administrator's "nft delete table"
// (or flush ruleset) must not make Close fail.
func TestCloseToleratesDeletedTable(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	f, err := l.tryOpen([]string{"eth0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := nftConn(t, l.b)
	c.DelTable(&nftables.Table{Name: DefaultTable, Family: nftables.TableFamilyNetdev})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("Close after external delete: %v", err)
	}
}

func TestClassify(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EPROTONOSUPPORT, syscall.EOPNOTSUPP, syscall.EAFNOSUPPORT, syscall.ENOENT} {
		err := classify(fmt.Errorf("conn.Receive: %w", &net.OpError{Op: "receive", Err: errno}))
		if !errors.Is(err, ErrNotSupported) || !errors.Is(err, errno) {
			t.Errorf("classify(%v) = %v, want ErrNotSupported wrapping it", errno, err)
		}
	}
	if err := classify(syscall.EPERM); errors.Is(err, ErrNotSupported) || !errors.Is(err, os.ErrPermission) {
		t.Errorf("classify(EPERM) = %v, want a permission error", err)
	}
}

// TestFragmentsPass documents the fragment limit: the first fragment of a
// datagram to a filtered port is dropped, the others carry no ports, pass,
// and sit in B's reassembly queue, which never completes.
func TestFragmentsPass(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	f := l.open(t, nil)
	if err := f.Set([]Rule{udpDst(9000)}); err != nil {
		t.Fatal(err)
	}
	s9000 := udpSocket(t, l.b, bIP, 9000)
	client := udpSocket(t, l.a, aIP, 0)

	// 3000 bytes over the veth's 1500-byte MTU: A fragments it into
	// three (1480 + 1480 + 48 bytes of IP payload; RFC 791 section 2.3).
	const size, frags = 3000, 3
	big := strings.Repeat("x", size)
	reasm0 := reasmReqds(t, l.b)
	before := dropped(t, f)
	send(t, client, bIP, 9000, big)
	waitDropped(t, f, before+1)
	for deadline := time.Now().Add(waitFor); reasmReqds(t, l.b)-reasm0 < frags-1; time.Sleep(pollEvery) {
		if time.Now().After(deadline) {
			t.Fatalf("B's stack got %d fragments for reassembly, want %d (all but the first)", reasmReqds(t, l.b)-reasm0, frags-1)
		}
	}
	if got := dropped(t, f) - before; got != 1 {
		t.Errorf("dropped %d frames of a %d-fragment datagram, want 1 (the first)", got, frags)
	}
	if got := reasmReqds(t, l.b) - reasm0; got != frags-1 {
		t.Errorf("B's stack got %d fragments for reassembly, want %d", got, frags-1)
	}
	if received(t, s9000, big, quietFor) {
		t.Fatal("the fragmented datagram was reassembled and delivered")
	}
}

// reasmReqds reads Ip: ReasmReqds (fragments received for reassembly,
// RFC 2011 ipReasmReqds) from ns's /proc/net/snmp.
func reasmReqds(t *testing.T, ns *nstest.NS) uint64 {
	t.Helper()
	lines := strings.Split(ns.MustRun(t, "cat", "/proc/net/snmp"), "\n")
	for i := 0; i+1 < len(lines); i++ {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != "Ip:" || len(values) != len(names) {
			continue
		}
		if j := slices.Index(names, "ReasmReqds"); j > 0 {
			var n uint64
			if _, err := fmt.Sscan(values[j], &n); err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Ip: ReasmReqds in /proc/net/snmp")
	return 0
}
