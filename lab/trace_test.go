package lab

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/gvs-project/gvs/internal/nstest"
)

// newTracedLab builds a mode's lab with gvs started with extra options
// (--trace, --pcap) and the TCP service of the lab configured, rr.
func newTracedLab(t *testing.T, mode Mode, gvsArgs ...string) *Lab {
	t.Helper()
	nstest.Require(t)
	ctx := context.Background()
	l := buildLab(t, Config{Mode: mode}, "gvt")
	if err := l.StartServers(); err != nil {
		t.Fatal(err)
	}
	if err := l.StartGvs(ctx, gvsArgs...); err != nil {
		t.Fatal(err)
	}
	for _, args := range l.ServiceCommands("-t", "rr") {
		if _, err := l.Gvsadm(ctx, args...); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// capFrame is one packet of gvs's capture, decoded.
type capFrame struct {
	seq     int
	out     bool
	iface   string // eth0, eth1
	verdict string // of a received frame
	partial bool   // its L4 checksum was left to offload
	data    []byte
	eth     *layers.Ethernet
	ips     []*layers.IPv4 // outer first
	tcp     *layers.TCP
}

var capComment = regexp.MustCompile(`^gvs #(\d+) (in|out) (\w+)(?:: (\w+))?`)

// readCapture reads gvs's pcapng file with pcapgo and groups its packets
// by the received frame they belong to.
func readCapture(t *testing.T, path string) (map[int][]*capFrame, []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatalf("pcapgo cannot read %s: %v", path, err)
	}
	groups := map[int][]*capFrame{}
	for {
		data, ci, opts, err := r.ReadPacketDataWithOptions()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading %s: %v", path, err)
		}
		if len(opts.Comments) != 1 {
			t.Fatalf("packet without its comment: %+v", opts)
		}
		m := capComment.FindStringSubmatch(opts.Comments[0])
		if m == nil {
			t.Fatalf("comment %q", opts.Comments[0])
		}
		intf, _ := r.Interface(ci.InterfaceIndex)
		if want := m[3] + "-" + m[2]; intf.Name != want {
			t.Fatalf("packet %q on interface %s, want %s", opts.Comments[0], intf.Name, want)
		}
		seq, _ := strconv.Atoi(m[1])
		cf := &capFrame{seq: seq, out: m[2] == "out", iface: m[3], verdict: m[4],
			partial: strings.Contains(opts.Comments[0], "csum partial"), data: bytes.Clone(data)}
		p := gopacket.NewPacket(cf.data, layers.LayerTypeEthernet, gopacket.Default)
		for _, l := range p.Layers() {
			switch l := l.(type) {
			case *layers.Ethernet:
				cf.eth = l
			case *layers.IPv4:
				cf.ips = append(cf.ips, l)
			case *layers.TCP:
				cf.tcp = l
			}
		}
		groups[seq] = append(groups[seq], cf)
	}
	// The reader learns the interfaces as it meets their blocks.
	var ifnames []string
	for i := range r.NInterfaces() {
		intf, _ := r.Interface(i)
		ifnames = append(ifnames, intf.Name)
	}
	return groups, ifnames
}

// inner returns the frame's innermost IPv4 header.
func (c *capFrame) inner() *layers.IPv4 { return c.ips[len(c.ips)-1] }

// sum16 is RFC 1071's sum (not complemented), folded.
func sum16(b []byte, s uint32) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return s
}

// checkSums checks a frame's IP header checksums (every IPv4 header:
// never left to offload) and its TCP checksum: complete and valid, or,
// where the frame left it to offload (the comment says "csum partial",
// from the virtio-net header's NeedsCsum, TP_STATUS_CSUMNOTREADY on
// receive), exactly the pseudo-header sum the kernel completes.
func checkSums(c *capFrame) error {
	for _, ip := range c.ips {
		hdr := ip.Contents
		if s := sum16(hdr, 0); s != 0xffff {
			return fmt.Errorf("IPv4 header checksum %#04x of %v > %v is wrong", ip.Checksum, ip.SrcIP, ip.DstIP)
		}
	}
	ip := c.inner()
	l4 := ip.Payload
	if int(ip.Length) < int(ip.IHL)*4 || len(l4) < int(ip.Length)-int(ip.IHL)*4 {
		return fmt.Errorf("truncated segment")
	}
	l4 = l4[:int(ip.Length)-int(ip.IHL)*4]
	var ph [12]byte
	copy(ph[0:4], ip.SrcIP.To4())
	copy(ph[4:8], ip.DstIP.To4())
	ph[9] = byte(ip.Protocol)
	binary.BigEndian.PutUint16(ph[10:], uint16(len(l4)))
	pseudo := sum16(ph[:], 0)
	field := binary.BigEndian.Uint16(l4[16:18])
	if c.partial {
		if uint32(field) != pseudo {
			return fmt.Errorf("partial TCP checksum %#04x, want the pseudo-header sum %#04x", field, pseudo)
		}
		return nil
	}
	if s := sum16(l4, pseudo); s != 0xffff {
		return fmt.Errorf("TCP checksum %#04x is wrong (sum %#04x)", field, s)
	}
	return nil
}

// TestCheckSumsCanFail: the capture's checksum check finds a wrong IP
// or TCP checksum, complete or partial.
func TestCheckSumsCanFail(t *testing.T) {
	eth := &layers.Ethernet{SrcMAC: []byte{2, 0, 0, 0, 0, 1}, DstMAC: []byte{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: ClientIP.AsSlice(), DstIP: VIP.AsSlice()}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, SYN: true, Window: 1000}
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}, eth, ip, tcp,
		gopacket.Payload("hello")); err != nil {
		t.Fatal(err)
	}
	frame := func(mutate func([]byte), partial bool) *capFrame {
		b := bytes.Clone(buf.Bytes())
		mutate(b)
		c := &capFrame{data: b, partial: partial}
		p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
		c.ips = []*layers.IPv4{p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)}
		return c
	}
	if err := checkSums(frame(func([]byte) {}, false)); err != nil {
		t.Fatalf("a good frame: %v", err)
	}
	for name, c := range map[string]*capFrame{
		"IP checksum":          frame(func(b []byte) { b[14+10] ^= 1 }, false),
		"TCP payload":          frame(func(b []byte) { b[14+20+20] ^= 1 }, false),
		"partial, not the sum": frame(func([]byte) {}, true),
	} {
		if checkSums(c) == nil {
			t.Errorf("%s: wrong checksum not found", name)
		}
	}
}

// TestTracePcap runs each mode's lab with gvs --trace --pcap, makes real
// TCP connections from the client's kernel, stops gvs and reads the
// capture with pcapgo: every forwarded frame of the client's is there
// before and after gvs rewrote it, changed exactly as the mode changes it
// (DR: the MACs and the TTL, with the IP checksum that goes with it; NAT:
// also the destination address and port; FULLNAT: both addresses and
// ports; TUN: an outer IPv4 header, protocol 4), NAT's and FULLNAT's
// replies rewritten back, and every checksum valid or, where a frame left
// it to offload, the pseudo-header sum. The trace holds the decisions: a
// new connection NONE -> SYN_RECV, the scheduler's reason, the next hop
// and how its MAC was learnt, and the mode's changed fields.
func TestTracePcap(t *testing.T) {
	const conns = 3
	for _, mode := range Modes {
		t.Run(string(mode), func(t *testing.T) {
			pcap := filepath.Join(t.TempDir(), "gvs.pcapng")
			l := newTracedLab(t, mode, "--trace", "--trace-rate", "1000", "--pcap", pcap)
			ctx := context.Background()
			for i := range conns {
				ans, err := l.Get(ctx)
				if err != nil || !strings.HasPrefix(ans, "from ") {
					t.Fatalf("request %d: %q, %v", i, ans, err)
				}
			}
			st := counters(t, l)
			if st["trace.traced"] == 0 || st["pcap.dropped"] != 0 || st["trace.lost"] != 0 {
				t.Fatalf("counters: traced %d, pcap dropped %d, trace lost %d", st["trace.traced"], st["pcap.dropped"], st["trace.lost"])
			}
			if err := l.StopGvs(); err != nil {
				t.Fatalf("stopping gvs: %v", err)
			}
			groups, ifnames := readCapture(t, pcap)
			wantIfs := []string{"eth0-in", "eth0-out"}
			if mode != DR {
				wantIfs = append(wantIfs, "eth1-in", "eth1-out")
			}
			if strings.Join(ifnames, " ") != strings.Join(wantIfs, " ") {
				t.Fatalf("interfaces %v, want %v", ifnames, wantIfs)
			}
			syns, replies, checked, partial := checkModeFrames(t, l, groups)
			if syns < conns {
				t.Errorf("%d SYNs found before and after the rewrite, want %d", syns, conns)
			}
			if (mode == NAT || mode == FullNAT) && replies < conns {
				t.Errorf("%d SYN-ACK replies found rewritten back, want %d", replies, conns)
			}
			t.Logf("%s: %d frame pairs checked (%d SYNs, %d SYN-ACK replies); %d sent with the checksum left to offload",
				mode, checked, syns, replies, partial)

			// The trace: the decisions and the mode's changes.
			blocks := TraceBlocks(l.GvsLog())
			all := strings.Join(blocks, "")
			rn := realNet[mode]
			wants := []string{
				"  conn   new entry: NONE -> SYN_RECV\n",
				"  conn   found: SYN_RECV -> ESTABLISHED\n",
				fmt.Sprintf("  sched  rr: %d.%d.%d.1", rn[0], rn[1], rn[2]),
				", learned from ",
			}
			if mode != TUN {
				wants = append(wants, "           ip.ttl       64 -> 63\n")
			}
			switch mode {
			case DR:
				wants = append(wants, "           eth.dst      02:42:c0:a8:96:01 -> 02:42:c0:a8:96:0")
			case NAT:
				wants = append(wants, "           ip.dst       192.168.150.100 -> 192.168.10.1", "           tcp.dport    80 -> 8080\n",
					"  conn   found by its reply key: ", "           ip.src       192.168.10.1", "           tcp.sport    8080 -> 80\n")
			case FullNAT:
				wants = append(wants, "           ip.src       192.168.150.10 -> 192.168.30.200\n",
					"           ip.dst       192.168.150.100 -> 192.168.30.1", "  local  192.168.30.200:",
					"  conn   found by its reply key: ", "           ip.dst       192.168.30.200 -> 192.168.150.10\n")
			case TUN:
				wants = append(wants, "           + outer IPv4  192.168.40.1 > 192.168.20.1", " proto 4 (IPIP) ttl 63 ",
					"           inner ip.ttl 64 -> 63\n", "(was partial: completed by gvs)")
			}
			for _, w := range wants {
				if !strings.Contains(all, w) {
					t.Errorf("the trace lacks %q; it printed:\n%s", w, all)
				}
			}
		})
	}
}

// checkModeFrames checks every received frame gvs forwarded, with the
// frames it sent for it, against what the lab's mode does. It returns
// the SYNs and SYN-ACK replies seen and the pairs checked.
func checkModeFrames(t *testing.T, l *Lab, groups map[int][]*capFrame) (syns, replies, checked, partial int) {
	t.Helper()
	mode := l.Mode()
	rn := realNet[mode]
	reals := map[string]bool{}
	realMACs := map[string]bool{}
	for _, h := range l.Reals {
		reals[h.Addr.String()] = true
		realMACs[h.MAC] = true
	}
	dirMAC := map[string]string{"eth0": macOf(DIP), "eth1": macOf(addrIn(rn, 1))}
	if mode == TUN {
		dirMAC["eth1"] = macOf(tunnelLinkDirector)
	}
	for seq, g := range groups {
		in := g[0]
		if in.out || in.verdict != "forwarded" || in.tcp == nil || len(in.ips) != 1 {
			continue
		}
		if err := checkSums(in); err != nil {
			t.Errorf("#%d as received: %v", seq, err)
		}
		outs := g[1:]
		if len(outs) != 1 {
			t.Errorf("#%d: %d frames sent for one forwarded segment", seq, len(outs))
			continue
		}
		out := outs[0]
		checked++
		if out.partial {
			partial++
		}
		if err := checkSums(out); err != nil {
			t.Errorf("#%d as sent: %v", seq, err)
		}
		ip, oip := in.ips[0], out.inner()
		if out.tcp == nil {
			t.Errorf("#%d: no TCP in the frame sent", seq)
			continue
		}
		fail := func(format string, args ...any) {
			t.Errorf("#%d %v:%d > %v:%d: %s", seq, ip.SrcIP, in.tcp.SrcPort, ip.DstIP, in.tcp.DstPort, fmt.Sprintf(format, args...))
		}
		if out.eth.SrcMAC.String() != dirMAC[out.iface] {
			fail("sent from MAC %v on %s, want the director's %s", out.eth.SrcMAC, out.iface, dirMAC[out.iface])
		}
		if oip.TTL != ip.TTL-1 {
			fail("TTL %d -> %d", ip.TTL, oip.TTL)
		}
		toVIP := ip.DstIP.String() == VIP.String() && in.tcp.DstPort == 80
		if !toVIP {
			// A real server's reply (NAT, FULLNAT): back to the client,
			// from the VIP.
			if mode != NAT && mode != FullNAT || !reals[ip.SrcIP.String()] {
				fail("forwarded, but neither to the VIP nor a reply")
				continue
			}
			if oip.SrcIP.String() != VIP.String() || out.tcp.SrcPort != 80 || oip.DstIP.String() != ClientIP.String() ||
				out.iface != "eth0" || out.eth.DstMAC.String() != l.Client.MAC {
				fail("reply sent as %v:%d > %v:%d to %v on %s, want from the VIP:80 to the client", oip.SrcIP, out.tcp.SrcPort,
					oip.DstIP, out.tcp.DstPort, out.eth.DstMAC, out.iface)
			}
			if mode == NAT && (oip.DstIP.String() != ip.DstIP.String() || out.tcp.DstPort != in.tcp.DstPort) {
				fail("NAT changed the reply's destination")
			}
			if in.tcp.SYN && in.tcp.ACK {
				replies++
			}
			continue
		}
		if in.tcp.SYN {
			syns++
		}
		switch mode {
		case DR:
			if !realMACs[out.eth.DstMAC.String()] || out.iface != "eth0" {
				fail("sent to %v on %s, want a real server's MAC on eth0", out.eth.DstMAC, out.iface)
			}
			if !oip.SrcIP.Equal(ip.SrcIP) || !oip.DstIP.Equal(ip.DstIP) || out.tcp.SrcPort != in.tcp.SrcPort ||
				out.tcp.DstPort != in.tcp.DstPort || len(out.ips) != 1 {
				fail("DR changed addresses or ports: %v:%d > %v:%d", oip.SrcIP, out.tcp.SrcPort, oip.DstIP, out.tcp.DstPort)
			}
			if !bytes.Equal(out.tcp.Contents, in.tcp.Contents) || !bytes.Equal(out.tcp.Payload, in.tcp.Payload) {
				fail("DR changed the TCP segment")
			}
		case NAT:
			if !reals[oip.DstIP.String()] || out.tcp.DstPort != 8080 || !oip.SrcIP.Equal(ip.SrcIP) ||
				out.tcp.SrcPort != in.tcp.SrcPort || out.iface != "eth1" || !realMACs[out.eth.DstMAC.String()] {
				fail("NAT sent %v:%d > %v:%d to %v on %s", oip.SrcIP, out.tcp.SrcPort, oip.DstIP, out.tcp.DstPort, out.eth.DstMAC, out.iface)
			}
		case FullNAT:
			if oip.SrcIP.String() != LocalAddr.String() || out.tcp.SrcPort < 1024 || !reals[oip.DstIP.String()] ||
				out.tcp.DstPort != 80 || out.iface != "eth1" || !realMACs[out.eth.DstMAC.String()] {
				fail("FULLNAT sent %v:%d > %v:%d to %v on %s", oip.SrcIP, out.tcp.SrcPort, oip.DstIP, out.tcp.DstPort, out.eth.DstMAC, out.iface)
			}
		case TUN:
			if len(out.ips) != 2 {
				fail("TUN sent %d IPv4 headers, want an outer and the inner", len(out.ips))
				continue
			}
			o := out.ips[0]
			if o.Protocol != layers.IPProtocolIPv4 || o.SrcIP.String() != tunnelLinkDirector.String() || !reals[o.DstIP.String()] ||
				o.TTL != oip.TTL || o.Flags&layers.IPv4DontFragment != ip.Flags&layers.IPv4DontFragment {
				fail("outer header %v > %v proto %d ttl %d flags %v", o.SrcIP, o.DstIP, o.Protocol, o.TTL, o.Flags)
			}
			if !oip.SrcIP.Equal(ip.SrcIP) || !oip.DstIP.Equal(ip.DstIP) || out.tcp.DstPort != in.tcp.DstPort {
				fail("TUN changed the inner packet's addresses or ports")
			}
			if out.partial {
				fail("TUN sent a checksum left to offload (a virtio-net header cannot describe IPIP)")
			}
			if out.iface != "eth1" || out.eth.DstMAC.String() != macOf(tunnelLinkRouter) {
				fail("TUN sent to %v on %s, want the router's MAC on eth1", out.eth.DstMAC, out.iface)
			}
		}
	}
	return syns, replies, checked, partial
}

// TestTraceRuntime: gvsadm --trace switches the trace while gvs runs:
// off, nothing is traced; on for the service, its connections are; the
// daemon refuses what it should, changing nothing.
func TestTraceRuntime(t *testing.T) {
	l := newTracedLab(t, DR)
	ctx := context.Background()
	get := func() {
		t.Helper()
		if ans, err := l.Get(ctx); err != nil || !strings.HasPrefix(ans, "from ") {
			t.Fatalf("request: %q, %v", ans, err)
		}
	}
	get()
	// The worker queues a trace record before it sends the frame on,
	// so once the answer is here the count is final for that frame.
	if n := counters(t, l)["trace.traced"]; n != 0 {
		t.Fatalf("%d packets traced with the trace off", n)
	}
	for _, bad := range []struct{ args, msg string }{
		{"--trace on -t 192.168.150.100:81", "no such service: TCP 192.168.150.100:81"},
		{"--trace off -t 192.168.150.100:80", "service TCP 192.168.150.100:80 is not traced"},
	} {
		out, err := l.Gvsadm(ctx, strings.Fields(bad.args)...)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 255 || !strings.Contains(out, bad.msg) {
			t.Errorf("gvsadm %s: %v, %q; want exit 255 and %q", bad.args, err, out, bad.msg)
		}
	}
	if _, err := l.Gvsadm(ctx, "--trace", "on", "-t", VIP.String()+":80"); err != nil {
		t.Fatal(err)
	}
	get()
	if n := counters(t, l)["trace.traced"]; n == 0 {
		t.Fatal("nothing traced with the trace on for the service")
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(l.GvsLog(), "  conn   new entry: NONE -> SYN_RECV\n") {
		if time.Now().After(deadline) {
			t.Fatalf("no trace block in gvs's output:\n%s", l.GvsLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := l.Gvsadm(ctx, "--trace", "off"); err != nil {
		t.Fatal(err)
	}
	before := counters(t, l)["trace.traced"]
	get()
	if n := counters(t, l)["trace.traced"]; n != before {
		t.Fatalf("%d more packets traced after --trace off", n-before)
	}
}

// TestDemoTrace runs the NAT demo with --trace: it shows the first
// connection's SYN, the real server's SYN-ACK coming back and the ACK,
// as gvs traced them.
func TestDemoTrace(t *testing.T) {
	nstest.Require(t)
	var out bytes.Buffer
	err := Demo(context.Background(), DemoConfig{Mode: NAT, Out: &out, Gvs: gvsBin, Gvsadm: gvsadmBin, Prefix: nstest.Name("gvsdemo"), Trace: true})
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	s := out.String()
	i := strings.Index(s, "what gvs did to the first connection's first frames")
	if i < 0 {
		t.Fatalf("no trace step:\n%s", s)
	}
	blocks := TraceBlocks(s[i:])
	if len(blocks) != demoTraceFrames {
		t.Fatalf("%d trace blocks shown, want %d:\n%s", len(blocks), demoTraceFrames, s[i:])
	}
	// The demo waits until gvs has resolved its next hops, so the first
	// SYN is forwarded, not dropped while ARP settles.
	if !strings.Contains(blocks[0], "[SYN] -> ") || !strings.Contains(blocks[0], "  conn   new entry: NONE -> SYN_RECV\n") {
		t.Errorf("the first block is not the connection's SYN:\n%s", blocks[0])
	}
	if !strings.Contains(strings.Join(blocks, ""), "[SYN,ACK] -> forwarded, NAT reply to the client") {
		t.Errorf("the real server's SYN-ACK is not shown:\n%s", strings.Join(blocks, ""))
	}
	if !strings.Contains(s, "OK: 6 requests answered, alternating") {
		t.Errorf("demo result missing:\n%s", s)
	}
}
