package trace

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-project/gvs/arp"
	"github.com/gvs-project/gvs/conntrack"
	"github.com/gvs-project/gvs/forward"
	"github.com/gvs-project/gvs/internal/afpacket"
	"github.com/gvs-project/gvs/service"
)

// What a trace record keeps of each frame: its headers (Ethernet, an
// outer and an inner IPv4 header with options, TCP with options fit in
// 256 bytes), and of the frames sent, the first few (TUN may send dozens
// of segments of one super-frame; they differ only in length and ID).
const (
	recordSnap = 256
	recordOuts = 2
)

// record is one traced packet, copied off the data path.
type record struct {
	seq      uint64
	time     time.Time
	ifindex  int
	in       []byte
	inLen    int
	inVNet   afpacket.VNetHdr
	verdict  forward.Reason
	outs     []forward.Sent
	moreOuts int // frames sent and not kept here
	d        forward.Decision
}

func snap(b []byte) []byte {
	return append([]byte(nil), b[:min(len(b), recordSnap)]...)
}

func newRecord(o *forward.Observation, seq uint64) *record {
	r := &record{seq: seq, time: o.Time, ifindex: o.Ifindex, in: snap(o.In), inLen: o.InLen, inVNet: o.InVNet,
		verdict: o.Verdict, d: *o.Decision, moreOuts: o.OutsLost}
	for i, s := range o.Outs {
		if i >= recordOuts {
			r.moreOuts += len(o.Outs) - i
			break
		}
		s.Data = snap(s.Data)
		r.outs = append(r.outs, s)
	}
	return r
}

// view is a frame's headers, decoded by gopacket.
type view struct {
	eth  *layers.Ethernet
	ips  []*layers.IPv4 // outer first
	tcp  *layers.TCP
	udp  *layers.UDP
	icmp *layers.ICMPv4
}

func decodeView(b []byte) view {
	var v view
	p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.DecodeOptions{NoCopy: true})
	for _, l := range p.Layers() {
		switch l := l.(type) {
		case *layers.Ethernet:
			v.eth = l
		case *layers.IPv4:
			v.ips = append(v.ips, l)
		case *layers.TCP:
			v.tcp = l
		case *layers.UDP:
			v.udp = l
		case *layers.ICMPv4:
			if v.icmp == nil {
				v.icmp = l
			}
		}
	}
	return v
}

// summary is a frame's one-line description: protocol, addresses, ports,
// TCP flags.
func (v view) summary() string {
	if len(v.ips) == 0 {
		return "not IPv4"
	}
	ip := v.ips[len(v.ips)-1]
	switch {
	case v.tcp != nil:
		return fmt.Sprintf("TCP %s:%d > %s:%d [%s]", ip.SrcIP, v.tcp.SrcPort, ip.DstIP, v.tcp.DstPort, tcpFlags(v.tcp))
	case v.udp != nil:
		return fmt.Sprintf("UDP %s:%d > %s:%d", ip.SrcIP, v.udp.SrcPort, ip.DstIP, v.udp.DstPort)
	case v.icmp != nil:
		return fmt.Sprintf("ICMP %s > %s %s", ip.SrcIP, ip.DstIP, v.icmp.TypeCode)
	}
	return fmt.Sprintf("IPv4 %s > %s protocol %d", ip.SrcIP, ip.DstIP, ip.Protocol)
}

func tcpFlags(t *layers.TCP) string {
	var f []string
	for _, x := range []struct {
		on   bool
		name string
	}{{t.SYN, "SYN"}, {t.FIN, "FIN"}, {t.RST, "RST"}, {t.PSH, "PSH"}, {t.ACK, "ACK"}, {t.URG, "URG"}} {
		if x.on {
			f = append(f, x.name)
		}
	}
	return strings.Join(f, ",")
}

// modeNames are the forwarding methods as the README names them.
var modeNames = map[service.Forward]string{service.Route: "DR", service.Masq: "NAT", service.Tunnel: "TUN", service.FullNAT: "FULLNAT"}

// format renders the record as the trace prints it (see the package doc).
func (r *record) format(names map[int]string) string {
	var b strings.Builder
	in := decodeView(r.in)
	d := &r.d
	fmt.Fprintf(&b, "trace %s %s #%d: %s -> %s\n", r.time.Format("15:04:05.000000"), ifName(names, r.ifindex), r.seq,
		in.summary(), r.verdictText())
	line := func(tag, format string, args ...any) {
		fmt.Fprintf(&b, "  %-6s %s\n", tag, fmt.Sprintf(format, args...))
	}
	switch {
	case d.Found && d.Reply:
		line("conn", "found by its reply key: %s -> %s", d.Old, d.New)
	case d.Found && d.Exists:
		line("conn", "found: %s -> %s", d.Old, d.New)
	case d.Found:
		line("conn", "found: %s, then removed", d.Old)
	case d.Exists:
		line("conn", "new entry: %s -> %s", conntrack.StateNone, d.New)
	default:
		line("conn", "none")
	}
	if d.Forward == service.FullNAT && d.LocalPort != 0 {
		line("local", "%s:%d (FULLNAT's address and port towards the real server)", net.IP(d.LocalAddr[:]), d.LocalPort)
	}
	if d.Scheduled {
		switch {
		case d.Template:
			line("sched", "persistence template %s -> %s (the scheduler is not asked)", d.TemplateKey.ClientAddr().Addr(), realName(d.Predicted))
		default:
			why := d.Why
			if d.Real != nil && d.Predicted != d.Real && d.Exists {
				if d.Predicted == nil {
					why += " -> " + realName(d.Real)
				} else {
					why += fmt.Sprintf(" (but another worker's pick came first: %s)", realName(d.Real))
				}
			}
			line("sched", "%s", why)
		}
	}
	switch {
	case d.Reply && d.Exists:
		line("hop", "back to %s on %s, where the client's frames come from", net.HardwareAddr(d.PeerMAC[:]), ifName(names, d.PeerIfindex))
	case d.Hop != nil:
		line("hop", "%s", hopText(d.Hop, names))
	}
	for i, s := range r.outs {
		r.formatOut(&b, names, in, s, i)
	}
	if r.moreOuts > 0 {
		line("out", "and %d more frames (segments or fragments of this one)", r.moreOuts)
	}
	return b.String()
}

func (r *record) verdictText() string {
	d := &r.d
	switch {
	case r.verdict == forward.Forwarded && d.Reply:
		return fmt.Sprintf("forwarded, %s reply to the client", modeNames[d.Forward])
	case r.verdict == forward.Forwarded && d.Real != nil:
		return fmt.Sprintf("forwarded, %s to %s", modeNames[d.Forward], realName(d.Real))
	case r.verdict.Dropped():
		return "dropped (" + r.verdict.String() + ")"
	}
	return r.verdict.String()
}

// realName names a real server: its address, and its port when NAT or
// FULLNAT may map the port.
func realName(r *service.Real) string {
	if r == nil {
		return "none"
	}
	if f := r.Forward(); (f == service.Masq || f == service.FullNAT) && r.Port != 0 {
		return r.AddrPort().String()
	}
	return r.Addr.String()
}

// hopText says where frames to the real server go next and how its MAC
// was learnt.
func hopText(h service.Hop, names map[int]string) string {
	n, ok := h.(*arp.Neighbor)
	if !ok {
		mac, ok := h.MAC()
		if !ok {
			return fmt.Sprintf("next hop on %s: not resolved", ifName(names, h.Ifindex()))
		}
		return fmt.Sprintf("next hop on %s is %s", ifName(names, h.Ifindex()), net.HardwareAddr(mac[:]))
	}
	ni := n.Info()
	where := fmt.Sprintf("%s on %s", ni.Addr, ifName(names, ni.Ifindex))
	if ni.MAC == nil {
		return fmt.Sprintf("%s: not resolved yet (ARP %s)", where, ni.State)
	}
	var how string
	switch ni.LearnedFrom {
	case "reply":
		how = "learned from an ARP reply"
	case "request":
		how = "learned from its own ARP request"
	case "static":
		return fmt.Sprintf("%s is %s (static)", where, ni.MAC)
	default:
		how = "learned"
	}
	age := time.Since(ni.Updated)
	if age < time.Second {
		age = age.Round(time.Millisecond)
	} else {
		age = age.Round(100 * time.Millisecond)
	}
	state := ""
	if ni.State != arp.Reachable {
		state = fmt.Sprintf(" (now %s)", ni.State)
	}
	return fmt.Sprintf("%s is %s, %s %v ago%s", where, ni.MAC, how, age, state)
}

// formatOut prints one frame sent: exactly the fields that differ from
// the frame received.
func (r *record) formatOut(b *strings.Builder, names map[int]string, in view, s forward.Sent, i int) {
	out := decodeView(s.Data)
	field := func(name string, before, after any) {
		bs, as := fmt.Sprint(before), fmt.Sprint(after)
		if bs != as {
			fmt.Fprintf(b, "           %-12s %s -> %s\n", name, bs, as)
		}
	}
	label := "out"
	if i > 0 {
		label = ""
	}
	if out.icmp != nil && in.icmp == nil && len(out.ips) > 0 {
		ip := out.ips[0]
		fmt.Fprintf(b, "  %-6s %s: ICMP %s from %s to %s\n", label, ifName(names, s.Ifindex), out.icmp.TypeCode, ip.SrcIP, ip.DstIP)
		return
	}
	fmt.Fprintf(b, "  %-6s %s, fields changed:\n", label, ifName(names, s.Ifindex))
	if in.eth != nil && out.eth != nil {
		field("eth.dst", in.eth.DstMAC, out.eth.DstMAC)
		field("eth.src", in.eth.SrcMAC, out.eth.SrcMAC)
	}
	if len(in.ips) == 0 || len(out.ips) == 0 {
		return
	}
	inner := out.ips[len(out.ips)-1]
	prefix := "ip."
	if len(out.ips) > len(in.ips) {
		// TUN: the outer header is all new.
		o := out.ips[0]
		df := ""
		if o.Flags&layers.IPv4DontFragment != 0 {
			df = " DF"
		}
		fmt.Fprintf(b, "           + outer IPv4  %s > %s proto %d (IPIP) ttl %d tos 0x%02x%s id %d len %d sum %#04x\n",
			o.SrcIP, o.DstIP, o.Protocol, o.TTL, o.TOS, df, o.Id, o.Length, o.Checksum)
		prefix = "inner ip."
	}
	ip := in.ips[len(in.ips)-1]
	field(prefix+"src", ip.SrcIP, inner.SrcIP)
	field(prefix+"dst", ip.DstIP, inner.DstIP)
	field(prefix+"ttl", ip.TTL, inner.TTL)
	field(prefix+"tos", fmt.Sprintf("0x%02x", ip.TOS), fmt.Sprintf("0x%02x", inner.TOS))
	field(prefix+"len", ip.Length, inner.Length)
	field(prefix+"id", ip.Id, inner.Id)
	field(prefix+"sum", fmt.Sprintf("%#04x", ip.Checksum), fmt.Sprintf("%#04x", inner.Checksum))
	sumNote := ""
	switch {
	case s.VNet.Flags&afpacket.NeedsCsum != 0:
		sumNote = " (partial: the pseudo-header sum, completed by the kernel on transmit)"
	case r.inVNet.Flags&afpacket.NeedsCsum != 0:
		sumNote = " (was partial: completed by gvs)"
	}
	sum := func(name string, before, after uint16) {
		if before != after {
			fmt.Fprintf(b, "           %-12s %#04x -> %#04x%s\n", name, before, after, sumNote)
		}
	}
	switch {
	case in.tcp != nil && out.tcp != nil:
		field("tcp.sport", uint16(in.tcp.SrcPort), uint16(out.tcp.SrcPort))
		field("tcp.dport", uint16(in.tcp.DstPort), uint16(out.tcp.DstPort))
		sum("tcp.sum", in.tcp.Checksum, out.tcp.Checksum)
	case in.udp != nil && out.udp != nil:
		field("udp.sport", uint16(in.udp.SrcPort), uint16(out.udp.SrcPort))
		field("udp.dport", uint16(in.udp.DstPort), uint16(out.udp.DstPort))
		sum("udp.sum", in.udp.Checksum, out.udp.Checksum)
	}
}
