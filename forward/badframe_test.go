package forward

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/gvs-project/gvs/conntrack"
	"github.com/gvs-project/gvs/internal/afpacket"
	"github.com/gvs-project/gvs/internal/hdr"
	"github.com/gvs-project/gvs/service"
)

// fixIPChecksum recomputes the IPv4 header checksum of a frame (over at
// least 20 bytes and at most what the frame holds, whatever its IHL says).
func fixIPChecksum(b []byte) []byte {
	ip := hdr.IPv4(b[hdr.EthernetLen:])
	hl := min(max(ip.HeaderLen(), hdr.IPv4MinLen), len(ip))
	ip.SetChecksum(0)
	ip.SetChecksum(textbookChecksum(ip[:hl]))
	return b
}

// edit returns a copy of b changed by f, with the IP header checksum
// recomputed if fix is set.
func edit(b []byte, fix bool, f func(b []byte)) []byte {
	b = append([]byte(nil), b...)
	f(b)
	if fix {
		fixIPChecksum(b)
	}
	return b
}

// TestBadFrames: every kind of bad frame gets its own verdict, is counted
// under it, is not forwarded, and changes no state: no connection entry,
// no counter of a service or real server, no fragment entry. The same
// frames do nothing to an established connection either.
func TestBadFrames(t *testing.T) {
	syn := tcpFrame(46000, hdr.TCPFlagSYN)
	synB := syn.build()
	udp := frameSpec{dstMAC: directorMAC, src: clientIP, dst: vip, proto: hdr.ProtoUDP, sport: 46001, dport: 53, payload: 20}
	udpB := udp.build()
	const ip = hdr.EthernetLen // offset of the IPv4 header
	const l4 = ip + 20         // of the TCP/UDP header (no options)
	flags := func(f uint8) []byte { return edit(synB, false, func(b []byte) { b[l4+13] = f }) }
	udpLen := func(n uint16) []byte {
		return edit(udpB, false, func(b []byte) { binary.BigEndian.PutUint16(b[l4+4:], n) })
	}
	frag := func(s frameSpec, field uint16) []byte { s.fragOff = field; return s.build() }
	tests := []struct {
		name string
		b    []byte
		want Reason
	}{
		// Truncated headers.
		{"empty", nil, Malformed},
		{"Ethernet header cut", synB[:10], Malformed},
		{"IPv4 header cut", synB[:ip+12], Malformed},
		{"IPv4 total length beyond the frame", edit(synB, true, func(b []byte) { binary.BigEndian.PutUint16(b[ip+2:], 200) }), Malformed},
		{"TCP header cut", frameSpec.build(func() frameSpec { s := syn; s.cut = 8; return s }()), MalformedL4},
		{"UDP header cut", frameSpec.build(func() frameSpec { s := udp; s.payload = 0; s.cut = 4; return s }()), MalformedL4},
		// Bad IHL, version, lengths.
		{"version 6 in an IPv4 frame", edit(synB, true, func(b []byte) { b[ip] = 6<<4 | 5 }), Malformed},
		{"IHL 4", edit(synB, true, func(b []byte) { b[ip] = 4<<4 | 4 }), Malformed},
		{"IHL 0", edit(synB, true, func(b []byte) { b[ip] = 4 << 4 }), Malformed},
		{"IHL past the total length", edit(synB, true, func(b []byte) { b[ip] = 4<<4 | 15 }), Malformed},
		{"total length below the header", edit(synB, true, func(b []byte) { binary.BigEndian.PutUint16(b[ip+2:], 19) }), Malformed},
		{"TCP data offset 4", edit(synB, false, func(b []byte) { b[l4+12] = 4 << 4 }), MalformedL4},
		{"TCP data offset past the packet", edit(synB, false, func(b []byte) { b[l4+12] = 15 << 4 }), MalformedL4},
		// IPv4 header checksum.
		{"IPv4 header checksum wrong", edit(synB, false, func(b []byte) { b[ip+10] ^= 0x40 }), BadChecksum},
		{"IPv4 header checksum zero", edit(synB, false, func(b []byte) { b[ip+10], b[ip+11] = 0, 0 }), BadChecksum},
		// TCP flag sets no stack sends (conntrack's INVALID).
		{"SYN+FIN", flags(hdr.TCPFlagSYN | hdr.TCPFlagFIN), BadFlags},
		{"SYN+RST", flags(hdr.TCPFlagSYN | hdr.TCPFlagRST), BadFlags},
		{"SYN+FIN+ACK", flags(hdr.TCPFlagSYN | hdr.TCPFlagFIN | hdr.TCPFlagACK), BadFlags},
		{"no flags (null scan)", flags(0), BadFlags},
		{"FIN without ACK", flags(hdr.TCPFlagFIN), BadFlags},
		{"FIN+PSH+URG (Xmas scan)", flags(hdr.TCPFlagFIN | hdr.TCPFlagPSH | hdr.TCPFlagURG), BadFlags},
		{"all flags", flags(0xff), BadFlags},
		{"PSH alone", flags(hdr.TCPFlagPSH), BadFlags},
		// UDP lengths.
		{"UDP length 0", udpLen(0), MalformedL4},
		{"UDP length 7", udpLen(7), MalformedL4},
		{"UDP length past the packet", udpLen(8 + 21), MalformedL4},
		{"UDP without payload, length 8", frameSpec.build(func() frameSpec { s := udp; s.payload = 0; return s }()), Forwarded},
		{"UDP length below the packet (the receiver trims)", udpLen(8 + 4), Forwarded},
		// Fragments gvs refuses to place.
		{"TCP first fragment without the whole header", frag(func() frameSpec { s := syn; s.payload = 0; s.cut = 12; return s }(), 0x2000), MalformedL4},
		{"UDP first fragment whose length ends inside it", frag(udp, 0x2000), MalformedL4},
		{"TCP fragment at offset 8 (RFC 1858)", frag(syn, 0x0001), MalformedL4},
		{"later fragment, first not seen", frag(syn, 0x00b9), Fragment},
		{"later UDP fragment, first not seen", frag(udp, 0x00b9), Fragment},
		// Not gvs's: left to the kernel, counted.
		{"802.1Q tag in band", frameSpec.build(func() frameSpec { s := syn; s.etherType = hdr.EtherTypeVLAN; return s }()), VLAN},
		{"802.1ad tag in band", frameSpec.build(func() frameSpec { s := syn; s.etherType = hdr.EtherTypeQinQ; return s }()), VLAN},
		{"VIP, unknown TCP port", frameSpec.build(func() frameSpec { s := syn; s.dport = 443; return s }()), NoService},
		{"VIP, UDP port only TCP has", frameSpec.build(func() frameSpec { s := udp; s.dport = 80; return s }()), NoService},
		{"another address", frameSpec.build(func() frameSpec { s := syn; s.dst = [4]byte{192, 168, 150, 1}; return s }()), NotOurs},
		{"later fragment to another address", frag(func() frameSpec { s := udp; s.dst = [4]byte{192, 168, 150, 1}; return s }(), 0x00b9), NotOurs},
		{"IPv6 EtherType", frameSpec.build(func() frameSpec { s := syn; s.etherType = 0x86dd; return s }()), NotIPv4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			if v := r.send(frame(tt.b)); v != tt.want {
				t.Fatalf("verdict %v, want %v", v, tt.want)
			}
			if tt.want == Forwarded {
				return
			}
			if len(r.tx.sent) != 0 {
				t.Fatalf("%d frames sent", len(r.tx.sent))
			}
			noState(t, r)
		})
	}

	// The same frames, with the flows' connections established: each
	// keeps its verdict and leaves its connection as it was.
	t.Run("established", func(t *testing.T) {
		r := newRig(t)
		r.send(frame(synB))
		r.send(frame(flags(hdr.TCPFlagACK)))
		r.send(frame(udpB))
		before := r.w.Stats()
		state := func() string {
			t.Helper()
			var s string
			for _, c := range connList(r) {
				s += c + "\n"
			}
			return s
		}
		was := state()
		for _, tt := range tests {
			if tt.want == Forwarded || tt.want == NotIPv4 || tt.want == NotOurs {
				continue
			}
			if v := r.send(frame(tt.b)); v != tt.want {
				t.Errorf("%s: verdict %v, want %v", tt.name, v, tt.want)
			}
		}
		if now := state(); now != was {
			t.Fatalf("connections changed:\n%s\nwere:\n%s", now, was)
		}
		if after := r.w.Stats(); after.Verdicts[Forwarded] != before.Verdicts[Forwarded] {
			t.Fatalf("%d bad frames forwarded", after.Verdicts[Forwarded]-before.Verdicts[Forwarded])
		}
	})

	t.Run("stripped VLAN tag", func(t *testing.T) {
		r := newRig(t)
		f := frame(synB)
		f.Status = afpacket.StatusVLANValid
		if v := r.send(f); v != VLAN {
			t.Fatalf("verdict %v", v)
		}
		noState(t, r)
	})
	t.Run("fragment asking for checksum offload", func(t *testing.T) {
		r := newRig(t)
		f := frame(frag(udp, 0x2000|0))
		binary.BigEndian.PutUint16(f.Data[l4+4:], 200) // a first fragment's UDP length
		f.VNet = afpacket.VNetHdr{Flags: afpacket.NeedsCsum, CsumStart: l4, CsumOffset: 6}
		if v := r.send(f); v != MalformedL4 {
			t.Fatalf("verdict %v", v)
		}
		noState(t, r)
	})
}

// connList lists the rig's connection entries with their states.
func connList(r *rig) []string {
	var out []string
	r.conns.Walk(conntrack.Now(), func(e conntrack.Entry[*service.Real]) bool {
		out = append(out, fmt.Sprintf("%v %v -> %v %v", e.Key.Protocol, e.Key.ClientAddr(), e.Key.VirtualAddr(), e.State))
		return true
	})
	slices.Sort(out)
	return out
}

// noState fails unless the rig's tables and counters are as new.
func noState(t *testing.T, r *rig) {
	t.Helper()
	if n := r.conns.Len(); n != 0 {
		t.Fatalf("%d connection entries made", n)
	}
	for _, s := range r.services.Services() {
		if s.Conns.Load() != 0 || s.InPkts.Load() != 0 || s.OutPkts.Load() != 0 {
			t.Fatalf("service %v counted: conns %d in %d out %d", s.Key, s.Conns.Load(), s.InPkts.Load(), s.OutPkts.Load())
		}
		for _, rs := range s.Reals() {
			if rs.InPkts.Load() != 0 || rs.Active()+rs.Inactive() != 0 {
				t.Fatalf("real server %v counted", rs.Addr)
			}
		}
	}
	if fs := r.w.e.FragStats(); fs.Tracked != 0 {
		t.Fatalf("%d fragment entries made", fs.Tracked)
	}
}

// TestL4ChecksumNotVerified: gvs does not check TCP/UDP checksums (the
// real server does, as it would behind IPVS); a wrong one is forwarded
// and stays exactly as wrong through NAT's incremental update, so the
// real server's kernel still drops it.
func TestL4ChecksumNotVerified(t *testing.T) {
	for _, fwd := range []service.Forward{service.Route, service.Masq, service.FullNAT} {
		rig := newModeRig(t, fwd, hdr.ProtoUDP)
		s := frameSpec{dstMAC: directorMAC, src: clientIP, dst: vip, proto: hdr.ProtoUDP, sport: 47000, dport: 80, payload: 33}
		b := s.build()
		u := hdr.UDP(b[hdr.EthernetLen+20:])
		u.SetChecksum(hdr.TransportChecksum(clientIP, vip, hdr.ProtoUDP, u[:hdr.UDPLen+33]))
		u.SetChecksum(u.Checksum() ^ 0x0100) // wrong by 0x0100
		if v := rig.send(frame(b)); v != Forwarded {
			t.Fatalf("%v: verdict %v", fwd, v)
		}
		out, _ := rig.last(rig.real)
		oip := hdr.IPv4(out[hdr.EthernetLen:])
		seg := out[hdr.EthernetLen+20 : hdr.EthernetLen+oip.TotalLen()]
		res := ^hdr.Fold(hdr.Sum(seg, hdr.PseudoHeaderSum(oip.Source(), oip.Destination(), hdr.ProtoUDP, len(seg))))
		if res == 0 {
			t.Fatalf("%v: a wrong UDP checksum became right", fwd)
		}
		if !oip.ChecksumValid() {
			t.Fatalf("%v: IPv4 header checksum wrong", fwd)
		}
	}
}

// TestIPOptionsForwarded: options are allowed (IPVS forwards them) and
// left as they are in every mode; the real server's kernel applies its
// own policy (accept_source_route=0 drops source-routed packets).
func TestIPOptionsForwarded(t *testing.T) {
	for _, fwd := range []service.Forward{service.Route, service.Masq, service.FullNAT, service.Tunnel} {
		rig := newModeRig(t, fwd, hdr.ProtoTCP)
		s := frameSpec{dstMAC: directorMAC, src: clientIP, dst: vip, proto: hdr.ProtoTCP, sport: 47100, dport: 80, flags: hdr.TCPFlagSYN, ihl: 28}
		b := s.build()
		opts := []byte{0x94, 0x04, 0, 0, 0x01, 0x01, 0x01, 0x00} // router alert, NOPs, end of list
		copy(b[hdr.EthernetLen+20:], opts)
		fixIPChecksum(b)
		if v := rig.send(frame(b)); v != Forwarded {
			t.Fatalf("%v: verdict %v", fwd, v)
		}
		out, _ := rig.last(rig.real)
		if fwd == service.Tunnel {
			out = out[outerLen:]
		}
		oip := hdr.IPv4(out[hdr.EthernetLen:])
		if oip.HeaderLen() != 28 || string(oip[20:28]) != string(opts) || !oip.ChecksumValid() {
			t.Fatalf("%v: header %x", fwd, []byte(oip[:oip.HeaderLen()]))
		}
	}
}

// TestNoServiceCountsOnlyVirtualAddresses: NoService counts frames to a
// VIP on a port no service has, in every protocol; a port-0 service takes
// every port of its address.
func TestNoServiceCountsOnlyVirtualAddresses(t *testing.T) {
	r := newRig(t)
	any := service.KeyOf(6, netip.AddrFrom4([4]byte{192, 168, 150, 101}), 0)
	if _, err := r.services.Apply([]service.Op{
		{Kind: service.AddService, Service: any, Settings: service.Settings{Scheduler: "rr", Persistent: true}},
		{Kind: service.AddReal, Service: any, Real: service.RealSpec{Addr: netip.MustParseAddr("192.168.150.12"), Forward: service.Route, Weight: 1}},
	}, func(p *service.Plan) error {
		for _, nr := range p.NewReals {
			nr.SetLink(&service.Link{Hop: r.hops[nr.Addr.String()]})
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dst   [4]byte
		proto uint8
		port  uint16
		want  Reason
	}{
		{vip, hdr.ProtoTCP, 8080, NoService},
		{vip, hdr.ProtoUDP, 8080, NoService},
		{[4]byte{192, 168, 150, 101}, hdr.ProtoTCP, 8080, Forwarded},
		{[4]byte{192, 168, 150, 101}, hdr.ProtoUDP, 8080, NoService},
		{[4]byte{192, 168, 150, 102}, hdr.ProtoTCP, 80, NotOurs},
	} {
		s := frameSpec{dstMAC: directorMAC, src: clientIP, dst: tc.dst, proto: tc.proto, sport: 47200, dport: tc.port, flags: hdr.TCPFlagSYN}
		if v := r.send(frame(s.build())); v != tc.want {
			t.Errorf("%v %d :%d: verdict %v, want %v", tc.dst, tc.proto, tc.port, v, tc.want)
		}
	}
}
