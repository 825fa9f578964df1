package hdr

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/gopacket/gopacket/layers"
)

var (
	icmpSrc = [4]byte{192, 168, 0, 1}   // the director
	client  = [4]byte{192, 168, 50, 7}  // the sender of the offending packet
	vip     = [4]byte{192, 168, 100, 1} // where it was going
)

// offending builds the packet an error is about.
func offending(proto uint8, opts []byte, l4 []byte, ff uint16) []byte {
	return buildIPv4(pktSpec{tos: 0xb8 | 0x02, ttl: 1, proto: proto, id: 0x4242, flagsOff: ff,
		src: client, dst: vip, ipOpts: opts, l4: l4})
}

func tcpSegment(n int) []byte {
	return buildTCP(tcpSpec{sport: 40000, dport: 80, seq: 1, flags: TCPFlagACK | TCPFlagPSH,
		payload: randBytes(rand.New(rand.NewPCG(uint64(n), 9)), n)})
}

func icmpMsg(typ, code uint8, n int) []byte {
	m := make([]byte, ICMPv4HeaderLen+n)
	m[0], m[1] = typ, code
	binary.BigEndian.PutUint16(m[2:], ^Fold(Sum(m, 0)))
	return m
}

func TestBuildICMPv4Error(t *testing.T) {
	tests := []struct {
		name       string
		typ, code  uint8
		extra      uint32
		orig       []byte
		dstLen     int
		wantQuoted int // bytes of orig quoted
	}{
		{"frag needed, long packet", 3, 4, 1400, offending(ProtoTCP, nil, tcpSegment(1460), ipv4FlagDF), 2048, 548},
		{"time exceeded, short packet", 11, 0, 0, offending(ProtoUDP, nil, make([]byte, 30), 0), 2048, 50},
		{"port unreachable, 8 bytes of payload", 3, 3, 0, offending(ProtoUDP, nil, make([]byte, 8), 0), 2048, 28},
		{"payload under 8 bytes", 3, 1, 0, offending(ProtoUDP, nil, make([]byte, 3), 0), 2048, 23},
		{"no payload", 3, 1, 0, offending(ProtoUDP, nil, nil, 0), 2048, 20},
		{"IP options quoted", 3, 4, 576, offending(ProtoTCP, packOptions(optRouterAlert, optRecordRoute), tcpSegment(1000), ipv4FlagDF), 2048, 548},
		{"parameter problem pointer", 12, 0, 20 << 24, offending(ProtoTCP, nil, tcpSegment(100), 0), 2048, 140},
		{"about an echo request", 11, 0, 0, offending(ProtoICMP, nil, icmpMsg(ICMPv4Echo, 0, 56), 0), 2048, 84},
		{"about an echo reply", 3, 1, 0, offending(ProtoICMP, nil, icmpMsg(ICMPv4EchoReply, 0, 56), 0), 2048, 84},
		{"about a first fragment", 3, 4, 1000, offending(ProtoTCP, nil, tcpSegment(1400), ipv4FlagMF), 2048, 548},
		{"dst bounds the quote", 3, 4, 1400, offending(ProtoTCP, nil, tcpSegment(1460), ipv4FlagDF), 100, 72},
		{"dst fits header + 8 exactly", 3, 4, 1400, offending(ProtoTCP, packOptions(optRecordRoute), tcpSegment(1460), ipv4FlagDF), 28 + 32 + 8, 40},
		{"truncated original", 3, 4, 1400, offending(ProtoTCP, nil, tcpSegment(1460), ipv4FlagDF)[:60], 2048, 60},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := make([]byte, tt.dstLen)
			for i := range dst {
				dst[i] = 0x5a // junk: the builder must not rely on zeroed memory
			}
			n, err := BuildICMPv4Error(dst, tt.typ, tt.code, tt.extra, icmpSrc, client, 64, tt.orig)
			if err != nil {
				t.Fatalf("BuildICMPv4Error: %v", err)
			}
			if n != IPv4MinLen+ICMPv4HeaderLen+tt.wantQuoted {
				t.Fatalf("length %d, want %d (quote %d)", n, IPv4MinLen+ICMPv4HeaderLen+tt.wantQuoted, tt.wantQuoted)
			}
			msg := dst[:n]
			d := decodeIPv4(t, msg)
			if d.icmp == nil {
				t.Fatal("gopacket found no ICMPv4 layer")
			}
			reserialize(t, d, msg)
			if d.ip.IHL != 5 || d.ip.TTL != 64 || d.ip.Protocol != layers.IPProtocolICMPv4 ||
				[4]byte(d.ip.SrcIP) != icmpSrc || [4]byte(d.ip.DstIP) != client || d.ip.Flags != 0 || d.ip.FragOffset != 0 {
				t.Fatalf("outer header wrong: %x", msg[:IPv4MinLen])
			}
			if want := IPv4(tt.orig).TOS()&0x1e | 0xc0; d.ip.TOS != want {
				t.Fatalf("TOS %#02x, want %#02x", d.ip.TOS, want)
			}
			if d.icmp.TypeCode != layers.CreateICMPv4TypeCode(tt.typ, tt.code) {
				t.Fatalf("type/code %v", d.icmp.TypeCode)
			}
			if got := uint32(d.icmp.Id)<<16 | uint32(d.icmp.Seq); got != tt.extra {
				t.Fatalf("rest of header %#08x, want %#08x", got, tt.extra)
			}
			if !bytes.Equal(d.icmp.Payload, tt.orig[:tt.wantQuoted]) {
				t.Fatalf("quote differs from the original's first %d bytes", tt.wantQuoted)
			}
			if tt.typ == 3 && tt.code == 4 && binary.BigEndian.Uint16(msg[26:]) != uint16(tt.extra) {
				t.Fatal("next-hop MTU not in bytes 6-7 of the ICMP header")
			}
			// The parser reads back what the builder wrote.
			typ, code, q, l4, ok := ParseICMPv4Error(msg)
			if tt.wantQuoted < IPv4(tt.orig).HeaderLen()+8 {
				if ok {
					t.Fatal("ParseICMPv4Error accepted a quote shorter than header + 8")
				}
				return
			}
			if !ok || typ != tt.typ || code != tt.code || !bytes.Equal(q, tt.orig[:IPv4(tt.orig).HeaderLen()]) ||
				!bytes.Equal(l4, tt.orig[IPv4(tt.orig).HeaderLen():tt.wantQuoted]) {
				t.Fatalf("ParseICMPv4Error = %d, %d, %x, %x, %v", typ, code, q, l4, ok)
			}
		})
	}
}

func TestBuildICMPv4ErrorRefusals(t *testing.T) {
	udp := offending(ProtoUDP, nil, make([]byte, 20), 0)
	withDst := func(a [4]byte) []byte {
		return buildIPv4(pktSpec{ttl: 1, proto: ProtoUDP, src: client, dst: a, l4: make([]byte, 20)})
	}
	tests := []struct {
		name    string
		typ     uint8
		to      [4]byte
		orig    []byte
		dstLen  int
		wantErr error
	}{
		{"about a destination unreachable", 3, client, offending(ProtoICMP, nil, icmpMsg(3, 1, 28), 0), 600, ErrQuotesICMPError},
		{"about a source quench", 3, client, offending(ProtoICMP, nil, icmpMsg(4, 0, 28), 0), 600, ErrQuotesICMPError},
		{"about a redirect", 3, client, offending(ProtoICMP, nil, icmpMsg(5, 1, 28), 0), 600, ErrQuotesICMPError},
		{"about a time exceeded", 3, client, offending(ProtoICMP, nil, icmpMsg(11, 0, 28), 0), 600, ErrQuotesICMPError},
		{"about a parameter problem", 11, client, offending(ProtoICMP, nil, icmpMsg(12, 0, 28), 0), 600, ErrQuotesICMPError},
		{"about an unknown ICMP type", 11, client, offending(ProtoICMP, nil, icmpMsg(19, 0, 28), 0), 600, ErrQuotesICMPError},
		{"about ICMP without a type byte", 11, client, offending(ProtoICMP, nil, nil, 0), 600, ErrQuotesICMPError},
		{"about a second fragment", 11, client, offending(ProtoUDP, nil, make([]byte, 20), ipv4FlagMF|1), 600, ErrQuotesFragment},
		{"about a last fragment", 11, client, offending(ProtoUDP, nil, make([]byte, 20), 100), 600, ErrQuotesFragment},
		{"to limited broadcast", 3, [4]byte{255, 255, 255, 255}, udp, 600, ErrNotUnicast},
		{"to multicast", 3, [4]byte{224, 0, 0, 5}, udp, 600, ErrNotUnicast},
		{"to class E", 3, [4]byte{240, 0, 0, 1}, udp, 600, ErrNotUnicast},
		{"to 0.0.0.0", 3, [4]byte{}, udp, 600, ErrNotUnicast},
		{"to loopback", 3, [4]byte{127, 0, 0, 1}, udp, 600, ErrNotUnicast},
		{"about a multicast packet", 3, client, withDst([4]byte{239, 1, 2, 3}), 600, ErrNotUnicast},
		{"about a broadcast packet", 3, client, withDst([4]byte{255, 255, 255, 255}), 600, ErrNotUnicast},
		{"not an error type", ICMPv4Echo, client, udp, 600, ErrNotICMPError},
		{"type 0", 0, client, udp, 600, ErrNotICMPError},
		{"dst too short", 3, client, udp, 28 + 27, ErrShortBuffer},
		{"empty dst", 3, client, udp, 0, ErrShortBuffer},
		{"orig short", 3, client, udp[:19], 600, ErrMalformed},
		{"orig IPv6", 3, client, append([]byte{0x60}, udp[1:]...), 600, ErrMalformed},
		{"orig IHL past the end", 3, client, append([]byte{0x4f}, udp[1:40]...), 600, ErrMalformed},
		{"orig IHL 4", 3, client, append([]byte{0x44}, udp[1:]...), 600, ErrMalformed},
		{"orig total length inside header", 3, client, append(append([]byte(nil), udp[:2]...), append([]byte{0, 10}, udp[4:]...)...), 600, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := make([]byte, tt.dstLen)
			n, err := BuildICMPv4Error(dst, tt.typ, 0, 0, icmpSrc, tt.to, 64, tt.orig)
			if !errors.Is(err, tt.wantErr) || n != 0 {
				t.Fatalf("BuildICMPv4Error = %d, %v; want 0, %v", n, err, tt.wantErr)
			}
			suppressed := tt.wantErr == ErrQuotesICMPError || tt.wantErr == ErrQuotesFragment || tt.wantErr == ErrNotUnicast
			if errors.Is(err, ErrICMPSuppressed) != suppressed {
				t.Fatalf("errors.Is(%v, ErrICMPSuppressed) = %v, want %v", err, !suppressed, suppressed)
			}
			if !bytes.Equal(dst, make([]byte, tt.dstLen)) {
				t.Fatal("dst written on error")
			}
		})
	}
}

// TestBuildICMPv4ErrorInPlace builds the error into the buffer that holds
// the offending packet, shifted by the new headers, as a data path that
// answers from its receive buffer does.
func TestBuildICMPv4ErrorInPlace(t *testing.T) {
	orig := offending(ProtoTCP, packOptions(optRouterAlert), tcpSegment(1400), ipv4FlagDF)
	for _, shift := range []int{0, 4, 28, 100} {
		buf := make([]byte, shift+len(orig)+100)
		copy(buf[shift:], orig)
		n, err := BuildICMPv4Error(buf, 3, 4, 1400, icmpSrc, client, 64, buf[shift:shift+len(orig)])
		if err != nil {
			t.Fatal(err)
		}
		d := decodeIPv4(t, buf[:n])
		if !bytes.Equal(d.icmp.Payload, orig[:548]) {
			t.Fatalf("shift %d: quote corrupted", shift)
		}
	}
}

func TestParseICMPv4Error(t *testing.T) {
	orig := offending(ProtoUDP, nil, make([]byte, 100), 0)
	build := func(typ uint8) []byte {
		b := make([]byte, 600)
		n, err := BuildICMPv4Error(b, typ, 0, 0, icmpSrc, client, 64, orig)
		if err != nil {
			t.Fatal(err)
		}
		return b[:n]
	}
	// fix recomputes the ICMP checksum after a test changed the message.
	fix := func(p []byte) []byte {
		m := p[IPv4MinLen:]
		m[2], m[3] = 0, 0
		binary.BigEndian.PutUint16(m[2:], ^Fold(Sum(m, 0)))
		return p
	}
	mod := func(f func(p []byte) []byte) []byte { return f(build(3)) }
	tests := []struct {
		name   string
		pkt    []byte
		wantOK bool
	}{
		{"dest unreachable", build(3), true},
		{"source quench", build(4), true},
		{"redirect", build(5), true},
		{"time exceeded", build(11), true},
		{"parameter problem", build(12), true},
		{"link padding ignored", mod(func(p []byte) []byte { return append(p, 0, 0, 0, 0) }), true},
		{"exactly header + 8 quoted", mod(func(p []byte) []byte {
			p = p[:IPv4MinLen+ICMPv4HeaderLen+28]
			binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
			IPv4(p).SetChecksum(0)
			IPv4(p).SetChecksum(IPv4(p).ComputeChecksum())
			return fix(p)
		}), true},
		{"7 bytes after the quoted header", mod(func(p []byte) []byte {
			p = p[:IPv4MinLen+ICMPv4HeaderLen+27]
			binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
			return fix(p)
		}), false},
		{"echo reply", mod(func(p []byte) []byte { p[20] = 0; return fix(p) }), false},
		{"unknown type", mod(func(p []byte) []byte { p[20] = 40; return fix(p) }), false},
		{"bad ICMP checksum", mod(func(p []byte) []byte { p[22] ^= 1; return p }), false},
		{"not ICMP", mod(func(p []byte) []byte { p[ipv4Proto] = ProtoUDP; return p }), false},
		{"outer is a first fragment", mod(func(p []byte) []byte { p[ipv4FlagsOff] |= 0x20; return p }), false},
		{"outer is a later fragment", mod(func(p []byte) []byte { p[ipv4FlagsOff+1] = 3; return p }), false},
		{"outer truncated", mod(func(p []byte) []byte { return p[:len(p)-1] }), false},
		{"outer IHL 4", mod(func(p []byte) []byte { p[0] = 0x44; return p }), false},
		{"outer version 6", mod(func(p []byte) []byte { p[0] = 0x65; return p }), false},
		{"quoted version 6", mod(func(p []byte) []byte { p[28] = 0x65; return fix(p) }), false},
		{"quoted IHL 4", mod(func(p []byte) []byte { p[28] = 0x44; return fix(p) }), false},
		{"quoted IHL 15 past the end", mod(func(p []byte) []byte {
			p[28] = 0x4f
			p = p[:IPv4MinLen+ICMPv4HeaderLen+60+7]
			binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
			return fix(p)
		}), false},
		{"empty", nil, false},
		{"short", make([]byte, 10), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			typ, _, q, l4, ok := ParseICMPv4Error(tt.pkt)
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			if !ok {
				if q != nil || l4 != nil || typ != 0 {
					t.Fatal("outputs set with ok false")
				}
				return
			}
			if !bytes.Equal(q, orig[:IPv4MinLen]) || len(l4) < 8 || !bytes.Equal(l4, orig[IPv4MinLen:IPv4MinLen+len(l4)]) {
				t.Fatalf("quoted %x / %x", q, l4)
			}
			if cap(q) != len(q) || cap(l4) != len(l4) {
				t.Fatal("views can grow past their end")
			}
			// Views alias the packet: a NAT relay rewrites in place.
			q[ipv4Src] ^= 0xff
			if tt.pkt[IPv4MinLen+ICMPv4HeaderLen+ipv4Src] != orig[ipv4Src]^0xff {
				t.Fatal("quoted header does not alias the packet")
			}
		})
	}
}

func TestICMPv4Allocs(t *testing.T) {
	orig := offending(ProtoTCP, nil, tcpSegment(1400), ipv4FlagDF)
	dst := make([]byte, 1500)
	var n int
	if a := testing.AllocsPerRun(100, func() {
		n, _ = BuildICMPv4Error(dst, 3, 4, 1400, icmpSrc, client, 64, orig)
		if _, _, _, _, ok := ParseICMPv4Error(dst[:n]); !ok {
			t.Fatal("parse failed")
		}
		// The refusals are sentinels too.
		if _, err := BuildICMPv4Error(dst, 3, 4, 1400, icmpSrc, [4]byte{224, 0, 0, 1}, 64, orig); err == nil {
			t.Fatal("no refusal")
		}
	}); a != 0 {
		t.Fatalf("%v allocations per run, want 0", a)
	}
}
