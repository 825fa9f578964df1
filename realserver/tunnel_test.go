package realserver

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gvs-project/gvs/internal/hdr"
)

var (
	testVIP      = netip.MustParseAddr("192.168.150.100")
	testVIP2     = netip.MustParseAddr("192.168.150.101")
	testClient   = netip.MustParseAddr("192.168.60.10")
	testDirector = netip.MustParseAddr("192.168.60.1")
	testRIP      = netip.MustParseAddr("192.168.60.20")
)

// ipv4Packet returns an IPv4 packet (20-byte header, valid checksum)
// around payload.
func ipv4Packet(src, dst netip.Addr, proto, tos uint8, payload []byte) []byte {
	b := make([]byte, hdr.IPv4MinLen+len(payload))
	hdr.IPv4(b).Encode(&hdr.IPv4Fields{
		TOS:      tos,
		TotalLen: uint16(len(b)),
		ID:       0x1234,
		TTL:      64,
		Protocol: proto,
		Src:      src.As4(),
		Dst:      dst.As4(),
	})
	copy(b[hdr.IPv4MinLen:], payload)
	return b
}

// udpPacket returns an IPv4 UDP datagram with valid checksums.
func udpPacket(src netip.Addr, sport uint16, dst netip.Addr, dport uint16, tos uint8, data []byte) []byte {
	u := make([]byte, 8+len(data))
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	copy(u[8:], data)
	c := hdr.TransportChecksum(src.As4(), dst.As4(), hdr.ProtoUDP, u)
	if c == 0 {
		c = 0xffff // RFC 768: an all-zero checksum is sent as all ones
	}
	binary.BigEndian.PutUint16(u[6:], c)
	return ipv4Packet(src, dst, hdr.ProtoUDP, tos, u)
}

// ipip wraps inner in an outer IPv4 header, protocol 4.
func ipip(src, dst netip.Addr, tos uint8, inner []byte) []byte {
	return ipv4Packet(src, dst, hdr.ProtoIPIP, tos, inner)
}

func testDecapsulator(t testing.TB, directors ...netip.Addr) decapsulator {
	t.Helper()
	cfg := TunnelConfig{VIPs: []netip.Addr{testVIP, testVIP2}, Directors: directors}
	d, err := cfg.check()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDecap(t *testing.T) {
	inner := udpPacket(testClient, 40000, testVIP, 53, 0, []byte("hello"))
	good := ipip(testDirector, testRIP, 0, inner)

	withOptions := func() []byte {
		// An outer header with one 4-byte option (IHL 6): NOP NOP NOP EOL.
		b := make([]byte, 24+len(inner))
		hdr.IPv4(b).Encode(&hdr.IPv4Fields{TotalLen: uint16(len(b)), TTL: 64, Protocol: hdr.ProtoIPIP,
			Src: testDirector.As4(), Dst: testRIP.As4()})
		b[0] = 4<<4 | 6
		copy(b[20:], []byte{1, 1, 1, 0})
		copy(b[24:], inner)
		h := hdr.IPv4(b)
		h.SetChecksum(0)
		h.SetChecksum(h.ComputeChecksum())
		return b
	}
	padded := func() []byte {
		// Trailing bytes after the inner packet, inside the outer length.
		return ipip(testDirector, testRIP, 0, append(bytes.Clone(inner), 0, 0, 0, 0))
	}
	mutInner := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b[20:])
		return b
	}
	mutOuter := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		return b
	}

	tests := []struct {
		name      string
		pkt       []byte
		directors []netip.Addr
		want      []byte // the inner packet; nil: dropped
		wantWhy   DropReason
	}{
		{name: "udp to VIP", pkt: good, want: inner},
		{name: "second VIP", pkt: ipip(testDirector, testRIP, 0, udpPacket(testClient, 1, testVIP2, 2, 0, nil)),
			want: udpPacket(testClient, 1, testVIP2, 2, 0, nil)},
		{name: "outer options", pkt: withOptions(), want: inner},
		{name: "inner padding trimmed", pkt: padded(), want: inner},
		{name: "known director", pkt: good, directors: []netip.Addr{testDirector}, want: inner},
		{name: "unknown director", pkt: good, directors: []netip.Addr{testClient}, wantWhy: DropDirector},
		{name: "empty", pkt: nil, wantWhy: DropOuter},
		{name: "short outer", pkt: good[:19], wantWhy: DropOuter},
		{name: "outer IPv6", pkt: mutOuter(func(b []byte) { b[0] = 6<<4 | 5 }), wantWhy: DropOuter},
		{name: "outer IHL 4", pkt: mutOuter(func(b []byte) { b[0] = 4<<4 | 4 }), wantWhy: DropOuter},
		{name: "outer IHL past end", pkt: mutOuter(func(b []byte) { b[0] = 4<<4 | 15 })[:40], wantWhy: DropOuter},
		{name: "outer total length past end", pkt: good[:len(good)-1], wantWhy: DropOuter},
		{name: "outer total length below IHL", pkt: mutOuter(func(b []byte) { binary.BigEndian.PutUint16(b[2:], 19) }), wantWhy: DropOuter},
		{name: "outer fragment", pkt: mutOuter(func(b []byte) { b[6] = 0x20 }), wantWhy: DropOuter},
		{name: "outer not IPIP", pkt: mutOuter(func(b []byte) { b[9] = hdr.ProtoUDP }), wantWhy: DropOuter},
		{name: "no inner", pkt: ipip(testDirector, testRIP, 0, nil), wantWhy: DropInner},
		{name: "short inner", pkt: ipip(testDirector, testRIP, 0, inner[:19]), wantWhy: DropInner},
		{name: "inner IPv6", pkt: mutInner(func(b []byte) { b[0] = 6<<4 | 5 }), wantWhy: DropInner},
		{name: "inner IHL 4", pkt: mutInner(func(b []byte) { b[0] = 4<<4 | 4 }), wantWhy: DropInner},
		{name: "inner total length past end", pkt: ipip(testDirector, testRIP, 0, inner[:len(inner)-1]), wantWhy: DropInner},
		{name: "inner bad checksum", pkt: mutInner(func(b []byte) { b[8]-- }), wantWhy: DropInner},
		{name: "inner to the RIP", pkt: ipip(testDirector, testRIP, 0, udpPacket(testClient, 1, testRIP, 22, 0, nil)), wantWhy: DropNotVIP},
		{name: "inner to another host", pkt: ipip(testDirector, testRIP, 0, udpPacket(testClient, 1, netip.MustParseAddr("192.168.60.99"), 22, 0, nil)), wantWhy: DropNotVIP},
		{name: "outer ECT inner not-ECT", pkt: ipip(testDirector, testRIP, 0x02, inner), want: inner},
		{name: "outer CE inner not-ECT", pkt: ipip(testDirector, testRIP, 0x03, inner), wantWhy: DropECN},
		{name: "outer CE inner ECT(0)", pkt: ipip(testDirector, testRIP, 0x03, udpPacket(testClient, 40000, testVIP, 53, 0xb8|0x02, []byte("hello"))),
			want: udpPacket(testClient, 40000, testVIP, 53, 0xb8|0x03, []byte("hello"))},
		{name: "outer CE inner ECT(1)", pkt: ipip(testDirector, testRIP, 0x03, udpPacket(testClient, 40000, testVIP, 53, 0x01, []byte("hello"))),
			want: udpPacket(testClient, 40000, testVIP, 53, 0x03, []byte("hello"))},
		{name: "outer CE inner CE", pkt: ipip(testDirector, testRIP, 0x03, udpPacket(testClient, 40000, testVIP, 53, 0x03, nil)),
			want: udpPacket(testClient, 40000, testVIP, 53, 0x03, nil)},
		{name: "outer ECT(0) inner ECT(1) unchanged", pkt: ipip(testDirector, testRIP, 0x02, udpPacket(testClient, 1, testVIP, 2, 0x01, nil)),
			want: udpPacket(testClient, 1, testVIP, 2, 0x01, nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := testDecapsulator(t, tt.directors...)
			got, why, ok := d.decap(bytes.Clone(tt.pkt))
			if tt.want == nil {
				if ok {
					t.Fatalf("decap accepted the packet, want drop %v", tt.wantWhy)
				}
				if why != tt.wantWhy {
					t.Fatalf("drop reason %v, want %v", why, tt.wantWhy)
				}
				return
			}
			if !ok {
				t.Fatalf("decap dropped the packet: %v", why)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("inner packet (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzDecap checks that decap never panics and that what it accepts is a
// valid IPv4 packet for a VIP, lying inside the outer datagram.
func FuzzDecap(f *testing.F) {
	f.Add(ipip(testDirector, testRIP, 0, udpPacket(testClient, 40000, testVIP, 53, 0, []byte("hello"))))
	f.Add(ipip(testDirector, testRIP, 3, udpPacket(testClient, 40000, testVIP, 53, 1, nil)))
	f.Add(ipip(testDirector, testRIP, 0, udpPacket(testClient, 40000, testRIP, 53, 0, nil)))
	f.Add([]byte{0x45})
	d := testDecapsulator(f)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		orig := bytes.Clone(pkt)
		inner, why, ok := d.decap(pkt)
		if !ok {
			if why >= NumDropReasons || why == DropWrite {
				t.Fatalf("bad drop reason %v", why)
			}
			return
		}
		if len(inner) < hdr.IPv4MinLen || len(inner) > len(pkt) {
			t.Fatalf("inner length %d of %d", len(inner), len(pkt))
		}
		if ohl := hdr.IPv4(pkt).HeaderLen(); &inner[0] != &pkt[ohl] {
			t.Fatal("inner packet does not start after the outer header")
		}
		h := hdr.IPv4(inner)
		if h.Version() != 4 || h.TotalLen() != len(inner) || h.ComputeChecksum() != h.Checksum() {
			t.Fatalf("accepted an invalid inner header % x", inner[:hdr.IPv4MinLen])
		}
		if a := netip.AddrFrom4(h.Destination()); a != testVIP && a != testVIP2 {
			t.Fatalf("accepted inner destination %v", a)
		}
		if hdr.IPv4(orig).Protocol() != hdr.ProtoIPIP {
			t.Fatal("accepted a packet that is not IPIP")
		}
	})
}

func TestDecapAllocs(t *testing.T) {
	d := testDecapsulator(t, testDirector)
	pkt := ipip(testDirector, testRIP, 0x03, udpPacket(testClient, 40000, testVIP, 53, 0x02, make([]byte, 1400)))
	if n := testing.AllocsPerRun(1000, func() {
		if _, why, ok := d.decap(pkt); !ok {
			t.Fatalf("dropped: %v", why)
		}
	}); n != 0 {
		t.Fatalf("decap allocates %v times per packet, want 0", n)
	}
}

func TestDropReasonNames(t *testing.T) {
	seen := map[string]bool{}
	for r := range NumDropReasons {
		s := r.String()
		if s == "" || seen[s] {
			t.Fatalf("drop reason %d: name %q empty or repeated", r, s)
		}
		seen[s] = true
	}
	if got := NumDropReasons.String(); got != "DropReason(6)" {
		t.Fatalf("out of range: %q", got)
	}
}

func TestTunnelConfigCheck(t *testing.T) {
	tests := []struct {
		name string
		cfg  TunnelConfig
		ok   bool
	}{
		{"ok", TunnelConfig{VIPs: []netip.Addr{testVIP}}, true},
		{"no VIP", TunnelConfig{}, false},
		{"IPv6 VIP", TunnelConfig{VIPs: []netip.Addr{netip.MustParseAddr("2001:db8::1")}}, false},
		{"IPv6 director", TunnelConfig{VIPs: []netip.Addr{testVIP}, Directors: []netip.Addr{netip.MustParseAddr("2001:db8::1")}}, false},
		{"long name", TunnelConfig{VIPs: []netip.Addr{testVIP}, Name: "a-very-long-name0"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.cfg.check()
			if (err == nil) != tt.ok {
				t.Fatalf("check() = %v, want ok %v", err, tt.ok)
			}
		})
	}
}
