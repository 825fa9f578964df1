package hdr

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"
)

// checkSegments checks segs, the output of SegmentTCPv4(super, mss),
// against what the kernel's GSO produces, with gopacket decoding every
// segment and verifying, then recomputing, every checksum.
func checkSegments(t testing.TB, super []byte, mss int, segs [][]byte) {
	t.Helper()
	ihl := IPv4(super).HeaderLen()
	total := IPv4(super).TotalLen()
	if total == 0 {
		total = len(super)
	}
	super = super[:total]
	thl := TCP(super[ihl:]).DataOffset()
	hl := ihl + thl
	payload := super[hl:]
	want := max(1, (len(payload)+mss-1)/mss)
	if len(segs) != want {
		t.Fatalf("%d segments, want %d (payload %d, mss %d)", len(segs), want, len(payload), mss)
	}
	seq0 := binary.BigEndian.Uint32(super[ihl+tcpSeq:])
	flags0 := super[ihl+tcpFlags]
	id0 := IPv4(super).ID()
	var got []byte
	for i, seg := range segs {
		d := decodeIPv4(t, seg)
		if d.tcp == nil {
			t.Fatalf("segment %d: no TCP layer", i)
		}
		reserialize(t, d, seg)
		last := i == len(segs)-1
		n := len(seg) - hl
		if !last && n != mss || last && (n < 0 || n > mss) {
			t.Fatalf("segment %d of %d: payload %d, mss %d", i, len(segs), n, mss)
		}
		if int(d.ip.Length) != len(seg) {
			t.Fatalf("segment %d: total length %d, segment %d bytes", i, d.ip.Length, len(seg))
		}
		if d.ip.Id != id0+uint16(i) {
			t.Fatalf("segment %d: IP ID %#x, want %#x", i, d.ip.Id, id0+uint16(i))
		}
		if d.tcp.Seq != seq0+uint32(i*mss) {
			t.Fatalf("segment %d: seq %d, want %d", i, d.tcp.Seq, seq0+uint32(i*mss))
		}
		wantFlags := flags0
		if !last {
			wantFlags &^= TCPFlagFIN | TCPFlagPSH
		}
		if i > 0 {
			wantFlags &^= TCPFlagCWR
		}
		if f := seg[ihl+tcpFlags]; f != wantFlags {
			t.Fatalf("segment %d of %d: flags %#02x, want %#02x (super %#02x)", i, len(segs), f, wantFlags, flags0)
		}
		if d.tcp.FIN != (last && flags0&TCPFlagFIN != 0) || d.tcp.CWR != (i == 0 && flags0&TCPFlagCWR != 0) {
			t.Fatalf("segment %d: gopacket sees FIN %v CWR %v", i, d.tcp.FIN, d.tcp.CWR)
		}
		// Everything else in both headers, options included, is copied.
		h := append([]byte(nil), seg[:hl]...)
		s := append([]byte(nil), super[:hl]...)
		for _, b := range [][]byte{h, s} {
			clear(b[ipv4TotalLen : ipv4TotalLen+2])
			clear(b[ipv4ID : ipv4ID+2])
			clear(b[ipv4Checksum : ipv4Checksum+2])
			clear(b[ihl+tcpSeq : ihl+tcpSeq+4])
			b[ihl+tcpFlags] = 0
			clear(b[ihl+tcpChecksum : ihl+tcpChecksum+2])
		}
		if !bytes.Equal(h, s) {
			t.Fatalf("segment %d: headers not copied:\n got %x\nwant %x", i, h, s)
		}
		if !bytes.Equal(d.tcp.Payload, seg[hl:]) {
			t.Fatalf("segment %d: gopacket payload differs", i)
		}
		got = append(got, d.tcp.Payload...)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("concatenated payload (%d bytes) differs from the original (%d bytes)", len(got), len(payload))
	}
}

func segment(t testing.TB, pkt []byte, mss int) [][]byte {
	t.Helper()
	var c collector
	if err := SegmentTCPv4(pkt, mss, c.next); err != nil {
		t.Fatalf("SegmentTCPv4: %v", err)
	}
	if n, err := SegmentCountTCPv4(pkt, mss); err != nil || n != len(c.pkts) {
		t.Fatalf("SegmentCountTCPv4 = %d, %v; SegmentTCPv4 made %d", n, err, len(c.pkts))
	}
	return c.pkts
}

func TestSegmentTCPv4Edges(t *testing.T) {
	src, dst := [4]byte{192, 168, 10, 1}, [4]byte{192, 168, 20, 2}
	super := func(ipOpts, tcpOpts []byte, n int, flags uint8, id uint16, seq uint32) []byte {
		r := rand.New(rand.NewPCG(uint64(n), 1))
		return buildIPv4(pktSpec{ttl: 64, proto: ProtoTCP, id: id, flagsOff: ipv4FlagDF, src: src, dst: dst,
			ipOpts: ipOpts,
			l4: buildTCP(tcpSpec{sport: 40000, dport: 80, seq: seq, ack: 7, flags: flags, window: 502,
				opts: tcpOpts, payload: randBytes(r, n)})})
	}
	const all = TCPFlagFIN | TCPFlagPSH | TCPFlagACK | TCPFlagCWR | TCPFlagECE | TCPFlagURG
	tests := []struct {
		name string
		pkt  []byte
		mss  int
	}{
		{"exact multiple of mss", super(nil, nil, 4*1448, TCPFlagACK|TCPFlagPSH, 1, 1), 1448},
		{"one more than a multiple", super(nil, nil, 4*1448+1, TCPFlagACK|TCPFlagPSH|TCPFlagFIN, 1, 1), 1448},
		{"payload equal to mss", super(nil, nil, 1448, all, 1, 1), 1448},
		{"payload below mss", super(nil, nil, 100, all, 1, 1), 1448},
		{"no payload", super(nil, nil, 0, TCPFlagACK|TCPFlagFIN, 1, 1), 1448},
		{"mss 1", super(nil, nil, 37, all, 1, 1), 1},
		{"all flags", super(nil, nil, 10000, all, 1, 1), 1000},
		{"timestamps copied", super(nil, packOptions(tcpOptTS), 5000, TCPFlagACK, 1, 1), 1436},
		{"40 bytes of TCP options", super(nil, packOptions(tcpOptTS, tcpOptSACK, tcpOptSACK, tcpOptWS), 3000, TCPFlagACK, 1, 1), 1000},
		{"IP options copied", super(packOptions(optRouterAlert, optTimestamp), nil, 5000, TCPFlagACK, 1, 1), 1400},
		{"40 bytes of IP options", super(packOptions(optSecurity, optRecordRoute, optTimestamp, optRouterAlert), nil, 5000, TCPFlagACK, 1, 1), 1400},
		// With a source route still to follow, the TCP checksum covers the
		// final destination (the route's last address), not the next hop.
		{"loose source route", super(packOptions(optNOP, optLSRR), nil, 3000, TCPFlagACK, 1, 1), 1000},
		{"strict source route, two hops", super(packOptions([]byte{0x89, 11, 4, 192, 168, 1, 1, 192, 168, 2, 2}), nil, 3000, TCPFlagACK, 1, 1), 1000},
		{"source route used up", super(packOptions([]byte{0x83, 7, 8, 192, 168, 1, 1}), nil, 3000, TCPFlagACK, 1, 1), 1000},
		{"IP ID wraps", super(nil, nil, 5000, TCPFlagACK, 0xfffe, 1), 1000},
		{"seq wraps", super(nil, nil, 5000, TCPFlagACK, 1, 0xffffffff-1500), 1000},
		{"64 KiB", super(nil, packOptions(tcpOptTS), 65535-20-32, TCPFlagACK|TCPFlagPSH, 9, 9), 1448},
		{"largest mss", super(nil, nil, 65535-40, TCPFlagACK, 9, 9), 65535 - 40},
		{"jumbo mss", super(nil, nil, 60000, TCPFlagACK, 9, 9), 8948},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkSegments(t, tt.pkt, tt.mss, segment(t, tt.pkt, tt.mss))
		})
	}

	t.Run("padding after total length ignored", func(t *testing.T) {
		p := super(nil, nil, 3, TCPFlagACK, 1, 1)
		padded := append(append([]byte(nil), p...), 0, 0, 0, 0, 0, 0, 0)
		segs := segment(t, padded, 1448)
		checkSegments(t, p, 1448, segs)
	})
	t.Run("total length 0 means the whole buffer", func(t *testing.T) {
		// IPv4 BIG TCP: a super-packet over 64 KiB carries total length 0.
		p := super(nil, nil, 100000, TCPFlagACK, 1, 1)
		binary.BigEndian.PutUint16(p[ipv4TotalLen:], 0)
		checkSegments(t, p, 1448, segment(t, p, 1448))
	})
	t.Run("checksums of the super-packet ignored", func(t *testing.T) {
		p := super(nil, nil, 3000, TCPFlagACK, 1, 1)
		a := segment(t, p, 1000)
		p[ipv4Checksum] ^= 0xff
		p[IPv4MinLen+tcpChecksum] ^= 0x5a
		b := segment(t, p, 1000)
		for i := range a {
			if !bytes.Equal(a[i], b[i]) {
				t.Fatalf("segment %d depends on the input checksums", i)
			}
		}
	})
}

func TestSegmentTCPv4Errors(t *testing.T) {
	src, dst := [4]byte{192, 168, 10, 1}, [4]byte{192, 168, 20, 2}
	good := func() []byte {
		return buildIPv4(pktSpec{ttl: 64, proto: ProtoTCP, src: src, dst: dst,
			l4: buildTCP(tcpSpec{flags: TCPFlagACK, payload: make([]byte, 3000)})})
	}
	mod := func(f func(p []byte) []byte) []byte { return f(good()) }
	tests := []struct {
		name    string
		pkt     []byte
		mss     int
		wantErr error
	}{
		{"short", good()[:19], 1000, ErrMalformed},
		{"IPv6", mod(func(p []byte) []byte { p[0] = 0x65; return p }), 1000, ErrMalformed},
		{"IHL 4", mod(func(p []byte) []byte { p[0] = 0x44; return p }), 1000, ErrMalformed},
		{"IHL past the end", good()[:20], 1000, ErrMalformed},
		{"total length past the end", good()[:1000], 1000, ErrMalformed},
		{"total length inside the header", mod(func(p []byte) []byte { p[3] = 10; p[2] = 0; return p }), 1000, ErrMalformed},
		{"UDP", mod(func(p []byte) []byte { p[ipv4Proto] = ProtoUDP; return p }), 1000, ErrNotTCP},
		{"first fragment", mod(func(p []byte) []byte { p[ipv4FlagsOff] = 0x20; return p }), 1000, ErrIsFragment},
		{"later fragment", mod(func(p []byte) []byte { p[ipv4FlagsOff+1] = 1; return p }), 1000, ErrIsFragment},
		{"TCP header cut", mod(func(p []byte) []byte { binary.BigEndian.PutUint16(p[2:], 30); return p }), 1000, ErrMalformed},
		{"data offset 4", mod(func(p []byte) []byte { p[IPv4MinLen+tcpDataOff] = 4 << 4; return p }), 1000, ErrMalformed},
		{"data offset past the end", mod(func(p []byte) []byte {
			p[IPv4MinLen+tcpDataOff] = 15 << 4
			binary.BigEndian.PutUint16(p[2:], 50)
			return p
		}), 1000, ErrMalformed},
		{"mss 0", good(), 0, ErrBadMSS},
		{"mss negative", good(), -5, ErrBadMSS},
		{"segment over 64 KiB", mod(func(p []byte) []byte {
			p = append(p, make([]byte, 70000)...)
			binary.BigEndian.PutUint16(p[2:], 0)
			return p
		}), 65536, ErrBadMSS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c collector
			err := SegmentTCPv4(tt.pkt, tt.mss, c.next)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("SegmentTCPv4 = %v, want %v", err, tt.wantErr)
			}
			if c.calls != 0 {
				t.Fatalf("next called %d times before the error", c.calls)
			}
			if _, err := SegmentCountTCPv4(tt.pkt, tt.mss); !errors.Is(err, tt.wantErr) {
				t.Fatalf("SegmentCountTCPv4 = %v, want %v", err, tt.wantErr)
			}
		})
	}
	t.Run("no buffer", func(t *testing.T) {
		c := collector{failAt: 2}
		if err := SegmentTCPv4(good(), 1000, c.next); !errors.Is(err, ErrNoBuffer) {
			t.Fatalf("SegmentTCPv4 = %v, want ErrNoBuffer", err)
		}
		if c.calls != 2 || len(c.pkts) != 1 {
			t.Fatalf("%d calls, %d segments; want 2 and 1", c.calls, len(c.pkts))
		}
		decodeIPv4(t, c.pkts[0]) // the segment before is complete
	})
	t.Run("short buffer", func(t *testing.T) {
		err := SegmentTCPv4(good(), 1000, func(size int) []byte { return make([]byte, size-1) })
		if !errors.Is(err, ErrNoBuffer) {
			t.Fatalf("SegmentTCPv4 = %v, want ErrNoBuffer", err)
		}
	})
}

// TestSegmentTCPv4Random segments random super-packets (random headers,
// options, flags, checksums of any kind, sizes and MSS) and checks every
// result against gopacket.
func TestSegmentTCPv4Random(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	cases := 2000
	if testing.Short() {
		cases = 200
	}
	for range cases {
		n := r.IntN(20000)
		if r.IntN(10) == 0 {
			n = r.IntN(65000)
		}
		mss := 1 + r.IntN(1460)
		if r.IntN(4) == 0 {
			mss = 1 + r.IntN(64)
		}
		if n/mss > 3000 {
			mss = n/3000 + 1 // bound the work per case
		}
		pkt := randSuper(r, n)
		checkSegments(t, pkt, mss, segment(t, pkt, mss))
	}
}

func TestSegmentTCPv4Allocs(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	pkt := randSuper(r, 65000-100)
	slot := make([]byte, 2048)
	var n int
	if a := testing.AllocsPerRun(20, func() {
		_ = SegmentTCPv4(pkt, 1448, func(size int) []byte { n++; return slot[34:] })
		_, _ = SegmentCountTCPv4(pkt, 1448)
	}); a != 0 {
		t.Fatalf("%v allocations per run, want 0", a)
	}
	if n == 0 {
		t.Fatal("next never called")
	}
}

// BenchmarkSegmentTCPv4 segments a 64 KiB super-packet into TX slots with
// headroom, as the TUN data path does; MB/s counts super-packet bytes.
func BenchmarkSegmentTCPv4(b *testing.B) {
	for _, mss := range []int{1448, 8948} {
		b.Run(map[int]string{1448: "mss1448", 8948: "mss8948"}[mss], func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			pkt := randSuper(r, 65535-IPv4MinLen-TCPMinLen-40-12)
			slots := make([][]byte, 64)
			for i := range slots {
				slots[i] = make([]byte, 9216)
			}
			b.SetBytes(int64(len(pkt)))
			b.ReportAllocs()
			for b.Loop() {
				i := 0
				if err := SegmentTCPv4(pkt, mss, func(size int) []byte {
					s := slots[i][34:] // headroom: Ethernet + outer IPv4
					i++
					return s
				}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestPseudoHeaderDestination(t *testing.T) {
	hdst := [4]byte{192, 168, 0, 1}
	tests := []struct {
		name string
		opts []byte
		want [4]byte
	}{
		{"no options", nil, hdst},
		{"LSRR", packOptions([]byte{0x83, 11, 4, 10, 0, 0, 1, 10, 0, 0, 2}), [4]byte{10, 0, 0, 2}},
		{"SSRR after NOP", packOptions(optNOP, []byte{0x89, 7, 4, 10, 0, 0, 9}), [4]byte{10, 0, 0, 9}},
		{"LSRR pointer at the last address", packOptions([]byte{0x83, 11, 8, 10, 0, 0, 1, 10, 0, 0, 2}), [4]byte{10, 0, 0, 2}},
		{"LSRR used up", packOptions([]byte{0x83, 11, 12, 10, 0, 0, 1, 10, 0, 0, 2}), hdst},
		{"LSRR without address", packOptions([]byte{0x83, 3, 4}), hdst},
		{"after end of list", packOptions([]byte{0}, []byte{0x83, 7, 4, 10, 0, 0, 1}), hdst},
		{"record route only", packOptions(optRecordRoute), hdst},
		{"malformed length", []byte{0x83, 60, 4, 0}, hdst},
		{"zero length", []byte{0x44, 0, 0, 0}, hdst},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := buildIPv4(pktSpec{ttl: 1, proto: ProtoTCP, dst: hdst, ipOpts: tt.opts})
			if got := IPv4(p).pseudoHeaderDestination(); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}
