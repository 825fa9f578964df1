package docs

import (
	"bytes"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// synFrame builds a client's SYN, wrapped in an outer IPv4 header if
// tunnel.
func synFrame(t *testing.T, tunnel bool) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0x42, 192, 168, 150, 10}, DstMAC: net.HardwareAddr{2, 0x42, 192, 168, 150, 1},
		EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: 4321, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolTCP,
		SrcIP: net.IP{192, 168, 150, 10}, DstIP: net.IP{192, 168, 150, 100}}
	tcp := &layers.TCP{SrcPort: 40001, DstPort: 80, SYN: true, Seq: 123456, Window: 64240, Options: []layers.TCPOption{
		{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}},
		{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
		{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: []byte{0, 0, 0, 1, 0, 0, 0, 0}},
		{OptionType: layers.TCPOptionKindNop},
		{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
	}}
	tcp.SetNetworkLayerForChecksum(ip)
	ls := []gopacket.SerializableLayer{eth, ip, tcp}
	if tunnel {
		outer := &layers.IPv4{Version: 4, IHL: 5, TTL: 63, Id: 1, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolIPv4,
			SrcIP: net.IP{192, 168, 40, 1}, DstIP: net.IP{192, 168, 20, 13}}
		ls = []gopacket.SerializableLayer{eth, outer, ip, tcp}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestCapture writes a pcapng file as gvs --pcap does (a received frame,
// then what was sent for it, paired by their comments), reads it back in
// groups and prints them as the guides show them.
func TestCapture(t *testing.T) {
	var file bytes.Buffer
	w, err := pcapgo.NewNgWriter(&file, layers.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		comment string
		data    []byte
	}{
		{"gvs #3 in eth0: forwarded; csum partial (start 34, offset 16)", synFrame(t, false)},
		{"gvs #3 out eth1", synFrame(t, true)},
		{"gvs #4 in eth0: not_ours", synFrame(t, false)},
	} {
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(1, 0), CaptureLength: len(p.data), Length: len(p.data)}
		if err := w.WritePacketWithOptions(ci, p.data, pcapgo.NgPacketOptions{Comments: []string{p.comment}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	groups, err := readCapture(file.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 2 || len(groups[0]) != 2 || len(groups[1]) != 1 {
		t.Fatalf("groups of %v frames, want [2 1]", func() (n []int) {
			for _, g := range groups {
				n = append(n, len(g))
			}
			return
		}())
	}
	g, ok := findGroup(groups, func(in, _ *capFrame) bool { return true })
	if !ok || g[0].seq != 3 {
		t.Fatalf("findGroup found %v, want the forwarded #3", ok)
	}
	// The partial checksum as it is; the complete one, the IP IDs and
	// checksums, sequence numbers and timestamps the kernel chose as
	// placeholders; the outer header gvs built whole.
	want := `gvs #<n> in eth0: forwarded; csum partial (start 34, offset 16)
    02:42:c0:a8:96:0a > 02:42:c0:a8:96:01, ethertype IPv4 (0x0800), length 74:
    (tos 0x0, ttl 64, id <id>, offset 0, flags [DF], proto TCP (6), length 60, sum <sum>)
    192.168.150.10.40001 > 192.168.150.100.80: Flags [S], cksum ` + fmt.Sprintf("%#04x", tcpSumOf(t, g[0])) + ` (partial), seq <seq>, win <win>, options [mss 1460,sackOK,TS val <ts> ecr <ts>,nop,wscale <ws>], length 0
gvs #<n> out eth1
    02:42:c0:a8:96:0a > 02:42:c0:a8:96:01, ethertype IPv4 (0x0800), length 94:
    (tos 0x0, ttl 63, id 1, offset 0, flags [DF], proto IPIP (4), length 80, sum ` + fmt.Sprintf("%#04x", outerSumOf(t, g[1])) + `)
    192.168.40.1 > 192.168.20.13:
    (tos 0x0, ttl 64, id <id>, offset 0, flags [DF], proto TCP (6), length 60, sum <sum>)
    192.168.150.10.40001 > 192.168.150.100.80: Flags [S], cksum <sum>, seq <seq>, win <win>, options [mss 1460,sackOK,TS val <ts> ecr <ts>,nop,wscale <ws>], length 0
`
	if got := g.view(); got != want {
		t.Errorf("(-want +got):\n%s", cmp.Diff(want, got))
	}
	if _, err := readCapture([]byte("not a capture")); err == nil {
		t.Error("readCapture accepted garbage")
	}
}

func tcpSumOf(t *testing.T, f *capFrame) uint16 {
	_, tcp := f.tcp()
	if tcp == nil {
		t.Fatal("no TCP")
	}
	return tcp.Checksum
}

func outerSumOf(t *testing.T, f *capFrame) uint16 {
	ip, _ := f.p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if ip == nil {
		t.Fatal("no IPv4")
	}
	return ip.Checksum
}

func TestTCPFlags(t *testing.T) {
	for _, tt := range []struct {
		tcp  layers.TCP
		want string
	}{
		{layers.TCP{SYN: true}, "S"},
		{layers.TCP{SYN: true, ACK: true}, "S."},
		{layers.TCP{PSH: true, ACK: true}, "P."},
		{layers.TCP{FIN: true, ACK: true}, "F."},
		{layers.TCP{ACK: true}, "."},
		{layers.TCP{RST: true}, "R"},
	} {
		if got := tcpdumpFlags(&tt.tcp); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.tcp, got, tt.want)
		}
	}
}
