package hdr

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"
)

// sameChecksum compares two transmitted checksums, treating 0 and 0xffff
// as the same value (the two zeros of one's complement arithmetic):
// CompletePartial sends 0xffff where a full computation yields 0.
func sameChecksum(a, b uint16) bool {
	if a == 0 {
		a = 0xffff
	}
	if b == 0 {
		b = 0xffff
	}
	return a == b
}

func TestCompletePartialTable(t *testing.T) {
	src, dst := [4]byte{192, 168, 150, 10}, [4]byte{192, 168, 150, 100}
	// A UDP datagram behind a 14-byte Ethernet header and a 20-byte IPv4
	// header, as a packet socket hands it over with NEEDS_CSUM:
	// csum_start 34, csum_offset 6.
	udpFrame := func(payload string) []byte {
		f := make([]byte, EthernetLen+IPv4MinLen+UDPLen+len(payload))
		u := UDP(f[EthernetLen+IPv4MinLen:])
		binary.BigEndian.PutUint16(u[0:], 40000)
		binary.BigEndian.PutUint16(u[2:], 53)
		binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
		copy(u[UDPLen:], payload)
		u.SetChecksum(Fold(PseudoHeaderSum(src, dst, ProtoUDP, len(u))))
		return f
	}
	const start = EthernetLen + IPv4MinLen
	tests := []struct {
		name          string
		frame         []byte
		start, offset int
		wantErr       error
	}{
		{name: "udp", frame: udpFrame("hello"), start: start, offset: UDPChecksumOffset},
		{name: "udp odd length", frame: udpFrame("hello!!"), start: start, offset: UDPChecksumOffset},
		{name: "udp empty", frame: udpFrame(""), start: start, offset: UDPChecksumOffset},
		{name: "field at the very end", frame: make([]byte, 10), start: 2, offset: 6},
		{name: "field past the end", frame: make([]byte, 10), start: 2, offset: 7, wantErr: ErrChecksumRange},
		{name: "start past the end", frame: make([]byte, 10), start: 11, offset: 0, wantErr: ErrChecksumRange},
		{name: "negative start", frame: make([]byte, 10), start: -1, offset: 2, wantErr: ErrChecksumRange},
		{name: "negative offset", frame: make([]byte, 10), start: 4, offset: -2, wantErr: ErrChecksumRange},
		{name: "huge offset", frame: make([]byte, 10), start: 4, offset: int(^uint(0) >> 1), wantErr: ErrChecksumRange},
		{name: "empty frame", frame: nil, start: 0, offset: 0, wantErr: ErrChecksumRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := append([]byte(nil), tt.frame...)
			err := CompletePartial(tt.frame, tt.start, tt.offset)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("CompletePartial = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if string(before) != string(tt.frame) {
					t.Fatal("frame changed on error")
				}
				return
			}
			// The completed region verifies: with the pseudo-header its
			// seed stood for (none for the plain frames), the sum is all
			// ones.
			var pseudo uint32
			if tt.name[:3] == "udp" {
				pseudo = PseudoHeaderSum(src, dst, ProtoUDP, len(tt.frame)-tt.start)
			}
			if s := Fold(Sum(tt.frame[tt.start:], pseudo)); s != 0xffff {
				t.Fatalf("completed checksum does not verify: sum %#04x", s)
			}
			if tt.name[:3] == "udp" {
				u := UDP(tt.frame[start:])
				d := decodeIPv4(t, ipOf(src, dst, ProtoUDP, u))
				if d.udp == nil {
					t.Fatal("gopacket found no UDP layer")
				}
				if err, res := d.udp.VerifyChecksum(); err != nil || !res.Valid {
					t.Fatalf("gopacket: UDP checksum %#04x invalid, want %#04x", res.Actual, res.Correct)
				}
			}
		})
	}
}

// ipOf wraps a transport segment in a plain IPv4 header.
func ipOf(src, dst [4]byte, proto uint8, l4 []byte) []byte {
	return buildIPv4(pktSpec{ttl: 64, proto: proto, src: src, dst: dst, l4: l4})
}

// TestCompletePartialUDPZero finds a UDP datagram whose checksum comes out
// as 0 and checks that 0xffff is sent instead (RFC 768: 0 means none).
func TestCompletePartialUDPZero(t *testing.T) {
	src, dst := [4]byte{192, 168, 1, 1}, [4]byte{192, 168, 1, 2}
	u := make(UDP, UDPLen+2)
	binary.BigEndian.PutUint16(u[0:], 1000)
	binary.BigEndian.PutUint16(u[2:], 2000)
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	// Choose the two payload bytes so that the full sum is 0xffff, which
	// makes the checksum ^0xffff = 0.
	rest := Fold(Sum(u, PseudoHeaderSum(src, dst, ProtoUDP, len(u))))
	binary.BigEndian.PutUint16(u[UDPLen:], ^rest)
	if c := TransportChecksum(src, dst, ProtoUDP, u); c != 0 {
		t.Fatalf("test setup: full checksum %#04x, want 0", c)
	}
	u.SetChecksum(Fold(PseudoHeaderSum(src, dst, ProtoUDP, len(u))))
	if err := CompletePartial(u, 0, UDPChecksumOffset); err != nil {
		t.Fatal(err)
	}
	if got := u.Checksum(); got != 0xffff {
		t.Fatalf("checksum %#04x, want 0xffff", got)
	}
}

// TestPartialUpdateProperty is the property test of the incremental
// updates: for random TCP and UDP segments and random address changes,
// (a) a pseudo-header seed updated with UpdatePartial32 (and, for a length
// change, UpdatePartial16) and then completed equals the checksum computed
// from scratch for the new addresses, and (b) Update32 applied to a
// complete checksum equals it too.
func TestPartialUpdateProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	const cases = 100000
	for i := range cases {
		proto := uint8(ProtoTCP)
		off := TCPChecksumOffset
		minLen := TCPMinLen
		if r.IntN(2) == 0 {
			proto, off, minLen = ProtoUDP, UDPChecksumOffset, UDPLen
		}
		seg := randBytes(r, minLen+r.IntN(300))
		if proto == ProtoUDP {
			binary.BigEndian.PutUint16(seg[4:], uint16(len(seg)))
		}
		seg[off], seg[off+1] = 0, 0
		src, dst := randAddr(r), randAddr(r)
		nsrc, ndst := src, dst
		switch r.IntN(3) {
		case 0:
			nsrc = randAddr(r)
		case 1:
			ndst = randAddr(r)
		case 2:
			nsrc, ndst = randAddr(r), randAddr(r)
		}
		want := TransportChecksum(nsrc, ndst, proto, seg)

		// (a) partial seed, updated, then completed.
		seed := Fold(PseudoHeaderSum(src, dst, proto, len(seg)))
		seed = UpdatePartial32(seed, src, nsrc)
		seed = UpdatePartial32(seed, dst, ndst)
		if full := Fold(PseudoHeaderSum(nsrc, ndst, proto, len(seg))); seed != full {
			t.Fatalf("case %d: updated seed %#04x, seed computed for the new addresses %#04x", i, seed, full)
		}
		p := append([]byte(nil), seg...)
		binary.BigEndian.PutUint16(p[off:], seed)
		if err := CompletePartial(p, 0, off); err != nil {
			t.Fatal(err)
		}
		got := binary.BigEndian.Uint16(p[off:])
		if !sameChecksum(got, want) {
			t.Fatalf("case %d: completed %#04x, full %#04x", i, got, want)
		}
		if proto == ProtoUDP && got == 0 {
			t.Fatalf("case %d: UDP checksum completed as 0", i)
		}

		// (b) complete checksum, updated.
		c := TransportChecksum(src, dst, proto, seg)
		c = Update32(c, src, nsrc)
		c = Update32(c, dst, ndst)
		if !sameChecksum(c, want) {
			t.Fatalf("case %d: Update32 gives %#04x, full %#04x", i, c, want)
		}
		binary.BigEndian.PutUint16(p[off:], c)
		if v := Fold(Sum(p, PseudoHeaderSum(nsrc, ndst, proto, len(p)))); v != 0xffff {
			t.Fatalf("case %d: updated complete checksum does not verify (sum %#04x)", i, v)
		}

		// The pseudo-header length is a 16-bit word too: a seed updated
		// with UpdatePartial16 for a new length equals the fresh one.
		nl := r.IntN(0x10000)
		s16 := UpdatePartial16(Fold(PseudoHeaderSum(nsrc, ndst, proto, len(seg))), uint16(len(seg)), uint16(nl))
		if full := Fold(PseudoHeaderSum(nsrc, ndst, proto, nl)); s16 != full {
			t.Fatalf("case %d: UpdatePartial16 seed %#04x, fresh %#04x", i, s16, full)
		}

		// Every hundredth case, gopacket checks the completed segment.
		if i%100 == 0 && proto == ProtoTCP {
			binary.BigEndian.PutUint16(p[off:], got)
			p[12] = 5 << 4 // a plain 20-byte header, so gopacket can parse it
			fix := append([]byte(nil), p...)
			fix[off], fix[off+1] = 0, 0
			binary.BigEndian.PutUint16(fix[off:], Fold(PseudoHeaderSum(nsrc, ndst, proto, len(fix))))
			if err := CompletePartial(fix, 0, off); err != nil {
				t.Fatal(err)
			}
			d := decodeIPv4(t, ipOf(nsrc, ndst, ProtoTCP, fix))
			if d.tcp == nil {
				t.Fatalf("case %d: gopacket found no TCP layer", i)
			}
		}
	}
}

func TestCompletePartialAllocs(t *testing.T) {
	f := make([]byte, 1500)
	if n := testing.AllocsPerRun(100, func() {
		_ = CompletePartial(f, 34, 16)
		_ = UpdatePartial32(0x1234, [4]byte{1, 2, 3, 4}, [4]byte{5, 6, 7, 8})
		_ = UpdatePartial16(0x1234, 1, 2)
	}); n != 0 {
		t.Fatalf("%v allocations per run, want 0", n)
	}
}

// TestSumCarries drives Sum's 64-bit carry chain through its extremes
// (all-ones words, all-ones initial value, lengths around the 32- and
// 8-byte steps, buffers whose word sum overflows 32 and 64 bits) and
// compares it with the textbook sum.
func TestSumCarries(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	patterns := []func(i int) byte{
		func(int) byte { return 0xff },
		func(int) byte { return 0 },
		func(i int) byte { return []byte{0xff, 0xfe}[i%2] },
		func(i int) byte { return byte(0xff - i%3) },
		func(int) byte { return byte(r.Uint32()) },
	}
	inits := []uint32{0, 1, 0xffff, 0xfffe, 0xffffffff, 0xfffffffe, 0x80000000}
	for _, n := range []int{0, 1, 2, 7, 8, 9, 31, 32, 33, 63, 64, 65, 1500, 65535, 200001} {
		for pi, p := range patterns {
			b := make([]byte, n)
			for i := range b {
				b[i] = p(i)
			}
			for _, init := range inits {
				want := sumRefFolding(b, init)
				got := Fold(Sum(b, init))
				if got != want && !(got == 0xffff && want == 0 || got == 0 && want == 0xffff) {
					t.Fatalf("n %d pattern %d init %#x: Sum folds to %#04x, want %#04x", n, pi, init, got, want)
				}
			}
		}
	}
}

// sumRefFolding is the textbook sum folded after every word, so that it
// cannot overflow whatever the length (sumRef's 32-bit accumulator wraps
// past 128 KiB of all-ones).
func sumRefFolding(b []byte, init uint32) uint16 {
	s := uint32(Fold(init))
	for i := 0; i < len(b); i += 2 {
		w := uint32(b[i]) << 8
		if i+1 < len(b) {
			w |= uint32(b[i+1])
		}
		s += w
		s = s&0xffff + s>>16
	}
	return Fold(s)
}
