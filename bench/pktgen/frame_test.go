package pktgen

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strconv"
	"testing"

	"github.com/gvs-project/gvs/internal/hdr"
)

func testSpec(size int) Spec {
	return Spec{
		SrcMAC:   [6]byte{2, 0, 0, 0, 0, 1},
		DstMAC:   [6]byte{2, 0, 0, 0, 0, 2},
		Src:      [4]byte{198, 18, 0, 1},
		Dsts:     [][4]byte{{198, 18, 2, 11}, {198, 18, 2, 12}},
		DstPort:  9,
		BasePort: 10000,
		Flows:    1024,
		Size:     size,
	}
}

// TestFrames checks every flow's frame of several sizes against the
// headers it must carry and against checksums computed from scratch.
func TestFrames(t *testing.T) {
	for _, tc := range []struct{ size, srcs int }{{MinSize, 0}, {128, 0}, {1500, 0}, {MaxSize, 0}, {MinSize, 3}, {1500, 32}} {
		size := tc.size
		s := testSpec(size)
		s.Srcs = tc.srcs
		f, err := s.Build()
		if err != nil {
			t.Fatal(err)
		}
		if f.Len() != size-FCSLen {
			t.Fatalf("size %d: Len = %d, want %d", size, f.Len(), size-FCSLen)
		}
		buf := make([]byte, 2048)
		for flow := range s.Flows {
			clear(buf)
			n := f.Write(buf, flow)
			if n != size-FCSLen {
				t.Fatalf("size %d flow %d: Write = %d", size, flow, n)
			}
			b := buf[:n]
			e := hdr.Ethernet(b)
			if e.Destination() != s.DstMAC || e.Source() != s.SrcMAC || e.Type() != hdr.EtherTypeIPv4 {
				t.Fatalf("size %d flow %d: bad Ethernet header % x", size, flow, b[:14])
			}
			ip := hdr.IPv4(b[hdr.EthernetLen:])
			wantDst := s.Dsts[flow%len(s.Dsts)]
			srcs := max(s.Srcs, 1)
			wantSrc := s.Src
			wantSrc[3] += byte(flow % srcs) // no carry with these addresses
			wantPort := s.BasePort + uint16(flow/srcs)
			if ip.Version() != 4 || ip.HeaderLen() != 20 || ip.TotalLen() != n-14 || ip.Protocol() != hdr.ProtoUDP ||
				ip.Source() != wantSrc || ip.Destination() != wantDst || ip.TTL() != ttl || !ip.DontFragment() || ip.IsFragment() {
				t.Fatalf("size %d flow %d: bad IPv4 header % x", size, flow, b[14:34])
			}
			if c := hdr.Fold(hdr.Sum(ip[:20], 0)); c != 0xffff {
				t.Fatalf("size %d flow %d: IPv4 checksum does not verify (sum %#x)", size, flow, c)
			}
			udp := hdr.UDP(ip[20:ip.TotalLen()])
			if udp.SourcePort() != wantPort || udp.DestinationPort() != s.DstPort || udp.Length() != len(udp) {
				t.Fatalf("size %d flow %d: bad UDP header % x", size, flow, udp[:8])
			}
			if c := hdr.Fold(hdr.Sum(udp, hdr.PseudoHeaderSum(wantSrc, wantDst, hdr.ProtoUDP, len(udp)))); c != 0xffff {
				t.Fatalf("size %d flow %d: UDP checksum %#04x does not verify", size, flow, udp.Checksum())
			}
			if !bytes.HasPrefix(udp[8:], marker) {
				t.Fatalf("size %d flow %d: payload % x lacks the marker", size, flow, udp[8:])
			}
		}
	}
}

// TestFramesDistinct checks that flows differ (by source port) and that
// writing one flow after another leaves no trace of the first.
func TestFramesDistinct(t *testing.T) {
	f, err := testSpec(MinSize).Build()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint16]bool{}
	buf := make([]byte, f.Len())
	for flow := range f.Flows() {
		f.Write(buf, flow)
		p := binary.BigEndian.Uint16(buf[34:])
		if seen[p] {
			t.Fatalf("flow %d reuses source port %d", flow, p)
		}
		seen[p] = true
	}
	a, b := make([]byte, f.Len()), make([]byte, f.Len())
	f.Write(a, 3)
	f.Write(b, 5)
	f.Write(b, 3)
	if !bytes.Equal(a, b) {
		t.Errorf("flow 3 written over flow 5 differs from flow 3 written fresh")
	}
}

func TestSpecErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		mod  func(*Spec)
	}{
		{"too small", func(s *Spec) { s.Size = MinSize - 1 }},
		{"too large", func(s *Spec) { s.Size = MaxSize + 1 }},
		{"no destination", func(s *Spec) { s.Dsts = nil }},
		{"no flows", func(s *Spec) { s.Flows = 0 }},
		{"ports overflow", func(s *Spec) { s.BasePort = 65000; s.Flows = 1000 }},
		{"port 0", func(s *Spec) { s.DstPort = 0 }},
		{"sources overflow", func(s *Spec) { s.Srcs = 2; s.BasePort = 65000; s.Flows = 2000 }},
		{"too many sources", func(s *Spec) { s.Srcs = MaxSrcs + 1 }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := testSpec(MinSize)
			tt.mod(&s)
			if _, err := s.Build(); !errors.Is(err, ErrSpec) {
				t.Errorf("Build error = %v, want ErrSpec", err)
			}
		})
	}
}

func TestWriteAllocs(t *testing.T) {
	f, err := testSpec(MaxSize).Build()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, f.Len())
	flow := 0
	if n := testing.AllocsPerRun(1000, func() {
		f.Write(buf, flow)
		flow = (flow + 1) % f.Flows()
	}); n != 0 {
		t.Errorf("Write allocates %v times per frame, want 0", n)
	}
}

func BenchmarkWrite(b *testing.B) {
	for _, size := range []int{MinSize, 1500} {
		b.Run(strconv.Itoa(size)+"B", func(b *testing.B) {
			f, err := testSpec(size).Build()
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, f.Len())
			b.ReportAllocs()
			b.SetBytes(int64(f.Len()))
			flow := 0
			for b.Loop() {
				f.Write(buf, flow)
				if flow++; flow == f.Flows() {
					flow = 0
				}
			}
		})
	}
}

// TestWriteStamped checks that a stamped frame carries its stamp, that its
// UDP checksum still verifies, and that Stamp finds it again, also inside
// an IPIP wrapper.
func TestWriteStamped(t *testing.T) {
	s := testSpec(MinSize)
	s.Srcs = 4
	f, err := s.Build()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, f.Len())
	for i, stamp := range []int64{0, 1, 1767225600123456789, -1, 0x7fffffffffffffff} {
		flow := i * 37 % s.Flows
		f.WriteStamped(buf, flow, stamp)
		ip := hdr.IPv4(buf[hdr.EthernetLen:])
		udp := hdr.UDP(ip[20:ip.TotalLen()])
		if c := hdr.Fold(hdr.Sum(udp, hdr.PseudoHeaderSum(ip.Source(), ip.Destination(), hdr.ProtoUDP, len(udp)))); c != 0xffff {
			t.Errorf("stamp %d: UDP checksum %#04x does not verify", stamp, udp.Checksum())
		}
		if got, ok := Stamp(buf); !ok || got != stamp {
			t.Errorf("Stamp = %d, %v; want %d", got, ok, stamp)
		}
		// The same inside an outer IPv4 header (LVS-TUN).
		wrapped := append(append(append([]byte(nil), buf[:14]...), ip[:20]...), ip...)
		wrapped[14+9] = ipProtoIPIP
		if got, ok := Stamp(wrapped); !ok || got != stamp {
			t.Errorf("Stamp(IPIP) = %d, %v; want %d", got, ok, stamp)
		}
	}
	f.Write(buf, 0)
	buf[hdr.EthernetLen+20+8] = 'X' // no marker
	if _, ok := Stamp(buf); ok {
		t.Error("Stamp found a stamp in a frame without the marker")
	}
	if _, ok := Stamp(buf[:30]); ok {
		t.Error("Stamp found a stamp in a truncated frame")
	}
	if n := testing.AllocsPerRun(100, func() { f.WriteStamped(buf, 5, 42) }); n != 0 {
		t.Errorf("WriteStamped allocates %v times, want 0", n)
	}
}
