package docs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// The capture's frames, as a learner reads them: gvs --pcap writes each
// frame it received, followed by the frames it sent because of it, with a
// comment pairing them ("gvs #17 in eth0: forwarded", "gvs #17 out eth1").
// view prints such a group the way tcpdump -e -n -v prints frames, with
// the placeholders of normalise.go for what changes from run to run.

// capFrame is one packet of the capture.
type capFrame struct {
	comment string
	seq     int
	out     bool
	data    []byte
	p       gopacket.Packet
}

var capComment = regexp.MustCompile(`^gvs #(\d+) (in|out) `)

// capGroup is a received frame and the frames gvs sent because of it.
type capGroup []*capFrame

// readCapture reads a pcapng capture of gvs's into its groups, in order.
func readCapture(b []byte) ([]capGroup, error) {
	r, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		return nil, fmt.Errorf("reading the capture: %w", err)
	}
	var groups []capGroup
	for {
		data, _, opts, err := r.ReadPacketDataWithOptions()
		if errors.Is(err, io.EOF) {
			return groups, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading the capture: %w", err)
		}
		if len(opts.Comments) != 1 {
			return nil, fmt.Errorf("a packet of the capture has %d comments, want 1", len(opts.Comments))
		}
		m := capComment.FindStringSubmatch(opts.Comments[0])
		if m == nil {
			return nil, fmt.Errorf("a packet of the capture has the comment %q", opts.Comments[0])
		}
		seq, _ := strconv.Atoi(m[1])
		f := &capFrame{comment: opts.Comments[0], seq: seq, out: m[2] == "out", data: bytes.Clone(data)}
		f.p = gopacket.NewPacket(f.data, layers.LayerTypeEthernet, gopacket.Default)
		if !f.out || len(groups) == 0 || groups[len(groups)-1][0].seq != seq {
			groups = append(groups, capGroup{f})
		} else {
			groups[len(groups)-1] = append(groups[len(groups)-1], f)
		}
	}
}

// tcp returns the frame's innermost TCP header and the IPv4 header
// around it, or nil.
func (f *capFrame) tcp() (*layers.IPv4, *layers.TCP) {
	var ip *layers.IPv4
	var tcp *layers.TCP
	for _, l := range f.p.Layers() {
		switch l := l.(type) {
		case *layers.IPv4:
			ip = l
		case *layers.TCP:
			tcp = l
		}
	}
	if ip == nil || tcp == nil {
		return nil, nil
	}
	return ip, tcp
}

// findGroup returns the first group whose received frame gvs forwarded
// and which match accepts.
func findGroup(groups []capGroup, match func(in, out *capFrame) bool) (capGroup, bool) {
	for _, g := range groups {
		if len(g) < 2 || g[0].out || !strings.Contains(g[0].comment, ": forwarded") {
			continue
		}
		if match(g[0], g[1]) {
			return g, true
		}
	}
	return nil, false
}

// view prints a group: each frame's comment, then the frame.
func (g capGroup) view() string {
	var b strings.Builder
	for _, f := range g {
		b.WriteString(frameNum.ReplaceAllString(f.comment, "gvs #<n> "))
		b.WriteString("\n")
		f.view(&b)
	}
	return b.String()
}

// view prints a frame as tcpdump -e -n -v does: the Ethernet header and
// each IPv4 header with its fields, then the TCP segment. IP IDs and
// checksums the kernel chose, sequence numbers, timestamps and the
// window are placeholders; a partial TCP checksum (left to offload: the
// pseudo-header sum) is shown with "(partial)", and the outer IPIP header
// gvs built is shown whole.
func (f *capFrame) view(b *strings.Builder) {
	eth, _ := f.p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if eth == nil {
		b.WriteString("    (not Ethernet)\n")
		return
	}
	fmt.Fprintf(b, "    %s > %s, ethertype %s (%#04x), length %d:\n", eth.SrcMAC, eth.DstMAC, eth.EthernetType, uint16(eth.EthernetType), len(f.data))
	var ips []*layers.IPv4
	var tcp *layers.TCP
	for _, l := range f.p.Layers() {
		switch l := l.(type) {
		case *layers.IPv4:
			ips = append(ips, l)
		case *layers.TCP:
			tcp = l
		}
	}
	for i, ip := range ips {
		id, sum := "<id>", "<sum>"
		if i == 0 && len(ips) > 1 {
			// TUN's outer header: gvs's own numbering.
			id, sum = strconv.Itoa(int(ip.Id)), fmt.Sprintf("%#04x", ip.Checksum)
		}
		var flags []string
		if ip.Flags&layers.IPv4DontFragment != 0 {
			flags = append(flags, "DF")
		}
		if ip.Flags&layers.IPv4MoreFragments != 0 {
			flags = append(flags, "+")
		}
		fmt.Fprintf(b, "    (tos %#x, ttl %d, id %s, offset %d, flags [%s], proto %s (%d), length %d, sum %s)\n",
			ip.TOS, ip.TTL, id, ip.FragOffset*8, strings.Join(flags, ","), protoName(ip.Protocol), ip.Protocol, ip.Length, sum)
		if i < len(ips)-1 {
			fmt.Fprintf(b, "    %s > %s:\n", ip.SrcIP, ip.DstIP)
		}
	}
	if tcp == nil || len(ips) == 0 {
		return
	}
	ip := ips[len(ips)-1]
	fmt.Fprintf(b, "    %s.%d > %s.%d: Flags [%s], cksum %s, seq <seq>", ip.SrcIP, tcp.SrcPort, ip.DstIP, tcp.DstPort,
		tcpdumpFlags(tcp), tcpSum(f, tcp))
	if tcp.ACK {
		b.WriteString(", ack <ack>")
	}
	b.WriteString(", win <win>")
	if opts := tcpOptions(tcp); opts != "" {
		fmt.Fprintf(b, ", options [%s]", opts)
	}
	fmt.Fprintf(b, ", length %d\n", len(tcp.Payload))
}

func protoName(p layers.IPProtocol) string {
	switch p {
	case layers.IPProtocolIPv4:
		return "IPIP"
	case layers.IPProtocolTCP:
		return "TCP"
	case layers.IPProtocolUDP:
		return "UDP"
	}
	return p.String()
}

// tcpdumpFlags writes TCP flags as tcpdump does: S, F, R, P, U, and "."
// for ACK, last.
func tcpdumpFlags(t *layers.TCP) string {
	var s string
	for _, x := range []struct {
		on bool
		c  string
	}{{t.FIN, "F"}, {t.SYN, "S"}, {t.RST, "R"}, {t.PSH, "P"}, {t.URG, "U"}, {t.ECE, "E"}, {t.CWR, "W"}, {t.ACK, "."}} {
		if x.on {
			s += x.c
		}
	}
	return s
}

// tcpSum shows a TCP checksum: the pseudo-header sum of a frame that
// left it to offload as it is, with "(partial)"; a complete one, which
// covers the sequence numbers and timestamps, as <sum>.
func tcpSum(f *capFrame, tcp *layers.TCP) string {
	if strings.Contains(f.comment, "csum partial") {
		return fmt.Sprintf("%#04x (partial)", tcp.Checksum)
	}
	return "<sum>"
}

// tcpOptions writes TCP options as tcpdump does, with timestamps as <ts>
// and the window scale as <ws>.
func tcpOptions(t *layers.TCP) string {
	var o []string
	for _, opt := range t.Options {
		switch opt.OptionType {
		case layers.TCPOptionKindNop:
			o = append(o, "nop")
		case layers.TCPOptionKindEndList:
			o = append(o, "eol")
		case layers.TCPOptionKindMSS:
			if len(opt.OptionData) == 2 {
				o = append(o, fmt.Sprintf("mss %d", binary.BigEndian.Uint16(opt.OptionData)))
			}
		case layers.TCPOptionKindWindowScale:
			if len(opt.OptionData) == 1 {
				o = append(o, "wscale <ws>")
			}
		case layers.TCPOptionKindSACKPermitted:
			o = append(o, "sackOK")
		case layers.TCPOptionKindTimestamps:
			o = append(o, "TS val <ts> ecr <ts>")
		default:
			o = append(o, fmt.Sprintf("opt-%d", opt.OptionType))
		}
	}
	return strings.Join(o, ",")
}

// fromAny reports whether a frame's innermost IPv4 source is one of
// addrs.
func (f *capFrame) fromAny(addrs []net.IP) bool {
	ip, _ := f.tcp()
	if ip == nil {
		return false
	}
	for _, a := range addrs {
		if ip.SrcIP.Equal(a) {
			return true
		}
	}
	return false
}
