package hdr

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// sumRef is the textbook RFC 1071 sum, one 16-bit word at a time.
func sumRef(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

func TestSumMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 100000 {
		b := make([]byte, r.IntN(200))
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		off := r.IntN(8)
		if off > len(b) {
			off = len(b)
		}
		if got, want := Fold(Sum(b[off:], 0)), sumRef(b[off:]); got != want {
			t.Fatalf("case %d: Sum(%x) = %#04x, want %#04x", i, b[off:], got, want)
		}
	}
}

func randomIPv4(r *rand.Rand) IPv4 {
	h := make(IPv4, IPv4MinLen)
	f := IPv4Fields{TOS: byte(r.Uint32()), TotalLen: uint16(r.Uint32()), ID: uint16(r.Uint32()),
		DF: r.IntN(2) == 0, TTL: byte(r.Uint32()), Protocol: byte(r.Uint32())}
	binary.BigEndian.PutUint32(f.Src[:], r.Uint32())
	binary.BigEndian.PutUint32(f.Dst[:], r.Uint32())
	h.Encode(&f)
	return h
}

func TestIncrementalEqualsFull(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 100000 {
		h := randomIPv4(r)
		if h.Checksum() != h.ComputeChecksum() {
			t.Fatalf("Encode wrote checksum %#04x, full %#04x", h.Checksum(), h.ComputeChecksum())
		}
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], r.Uint32())
		switch i % 3 {
		case 0:
			h.SetTTLWithChecksumUpdate(byte(r.Uint32()))
		case 1:
			h.SetSourceWithChecksumUpdate(a)
		case 2:
			h.SetDestinationWithChecksumUpdate(a)
		}
		// A one's-complement sum has two zeros (0x0000 and 0xffff); a
		// receiver verifies by summing the whole header, so compare that.
		if v := ^Fold(Sum(h, 0)); v != 0 {
			t.Fatalf("case %d: header %x does not verify after incremental update (residue %#04x)", i, []byte(h), v)
		}
	}
}

func TestTransportChecksumVerifies(t *testing.T) {
	// A UDP datagram from 192.168.150.10:40000 to 192.168.150.100:53.
	src, dst := [4]byte{192, 168, 150, 10}, [4]byte{192, 168, 150, 100}
	seg := make(UDP, UDPLen+5)
	binary.BigEndian.PutUint16(seg[0:], 40000)
	binary.BigEndian.PutUint16(seg[2:], 53)
	binary.BigEndian.PutUint16(seg[4:], uint16(len(seg)))
	copy(seg[8:], "hello")
	seg.SetChecksum(TransportChecksum(src, dst, ProtoUDP, seg))
	if v := ^Fold(Sum(seg, PseudoHeaderSum(src, dst, ProtoUDP, len(seg)))); v != 0 {
		t.Fatalf("segment does not verify: residue %#04x", v)
	}
}

func TestViews(t *testing.T) {
	frame := []byte{
		0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00, // Ethernet
		0x45, 0, 0, 40, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 192, 168, 150, 10, 192, 168, 150, 100, // IPv4, DF
		0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0, // TCP SYN
	}
	e := Ethernet(frame)
	if e.Type() != EtherTypeIPv4 || e.Destination() != [6]byte{2, 0, 0, 0, 0, 1} || e.Source() != [6]byte{2, 0, 0, 0, 0, 2} {
		t.Fatalf("Ethernet view wrong: type %#x dst %x src %x", e.Type(), e.Destination(), e.Source())
	}
	ip := IPv4(frame[EthernetLen:])
	if ip.Version() != 4 || ip.HeaderLen() != 20 || ip.TotalLen() != 40 || !ip.DontFragment() || ip.IsFragment() ||
		ip.TTL() != 64 || ip.Protocol() != ProtoTCP || ip.Source() != [4]byte{192, 168, 150, 10} {
		t.Fatal("IPv4 view wrong")
	}
	tcp := TCP(frame[EthernetLen+20:])
	if tcp.SourcePort() != 40000 || tcp.DestinationPort() != 80 || tcp.Flags() != TCPFlagSYN || tcp.DataOffset() != 20 {
		t.Fatal("TCP view wrong")
	}
	e.SetDestination([6]byte{2, 0, 0, 0, 0, 9})
	if e.Destination() != [6]byte{2, 0, 0, 0, 0, 9} || e.Source() != [6]byte{2, 0, 0, 0, 0, 2} {
		t.Fatal("SetDestination changed the wrong bytes")
	}
}

func TestAllocs(t *testing.T) {
	h := randomIPv4(rand.New(rand.NewPCG(5, 6)))
	if n := testing.AllocsPerRun(100, func() {
		h.SetTTLWithChecksumUpdate(h.TTL() - 1)
		_ = h.ComputeChecksum()
	}); n != 0 {
		t.Fatalf("%v allocations per run, want 0", n)
	}
}

// TestChecksumValid: a header Encode wrote verifies, with and without
// options; any single flipped bit makes it fail; an incremental update
// keeps it valid, and a wrong checksum stays wrong through one.
func TestChecksumValid(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 20000 {
		h := randomIPv4(r)
		if i%2 == 1 {
			// Options: IHL 6..15, the option bytes random, checksum redone.
			n := 1 + r.IntN(10)
			opt := make([]byte, 4*n)
			for j := range opt {
				opt[j] = byte(r.Uint32())
			}
			h = append(h, opt...)
			h[0] = 4<<4 | byte(5+n)
			h.SetChecksum(0)
			h.SetChecksum(h.ComputeChecksum())
		}
		if !h.ChecksumValid() {
			t.Fatalf("case %d: header %x does not verify", i, []byte(h))
		}
		bit := r.IntN(len(h) * 8)
		if bit/8 == 0 {
			bit += 8 // flipping the IHL changes the length summed: another case
		}
		bad := append(IPv4(nil), h...)
		bad[bit/8] ^= 1 << (bit % 8)
		// A flipped bit changes its word by 2^k, never a multiple of
		// 0xffff: the sum always changes.
		if bad.ChecksumValid() {
			t.Fatalf("case %d: header with bit %d flipped verifies", i, bit)
		}
		bad.SetTTLWithChecksumUpdate(bad.TTL() - 1)
		if bad.ChecksumValid() {
			t.Fatalf("case %d: a wrong checksum became right through an incremental update", i)
		}
	}
}

func TestFragmentOffset(t *testing.T) {
	h := make(IPv4, IPv4MinLen)
	h.Encode(&IPv4Fields{TotalLen: 20, TTL: 1, Protocol: ProtoUDP})
	for _, tc := range []struct {
		field  uint16
		off    int
		isFrag bool
	}{{0, 0, false}, {0x4000, 0, false}, {0x2000, 0, true}, {0x2001, 1, true}, {0x00b9, 185, true}, {0x1fff, 8191, true}, {0x5fff, 8191, true}} {
		binary.BigEndian.PutUint16(h[6:], tc.field)
		if h.FragmentOffset() != tc.off || h.IsFragment() != tc.isFrag {
			t.Errorf("flags/offset %#04x: offset %d fragment %v, want %d %v", tc.field, h.FragmentOffset(), h.IsFragment(), tc.off, tc.isFrag)
		}
	}
}
