package hdr

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/gopacket/gopacket/ip4defrag"
	"github.com/gopacket/gopacket/layers"
)

// copiedOnly is the reference for the options of a non-first fragment:
// the options with the copied flag, in order, padded to 4 bytes.
func copiedOnly(opts []byte) []byte {
	var out [][]byte
	for i := 0; i < len(opts); {
		switch opts[i] {
		case 0:
			return packOptions(out...)
		case 1:
			i++
			continue
		}
		l := int(opts[i+1])
		if opts[i]&0x80 != 0 {
			out = append(out, opts[i:i+l])
		}
		i += l
	}
	return packOptions(out...)
}

// checkFragments checks frags, the output of FragmentIPv4(orig, mtu),
// field by field, has gopacket decode and re-serialise each fragment, and
// reassembles them (in a shuffled order) with gopacket's ip4defrag, which
// must give back the original payload.
func checkFragments(t testing.TB, r *rand.Rand, orig []byte, mtu int, frags [][]byte) {
	t.Helper()
	o := IPv4(orig)
	ihl := o.HeaderLen()
	payload := orig[ihl:o.TotalLen()]
	ff := binary.BigEndian.Uint16(orig[ipv4FlagsOff:])
	base := int(ff&ipv4OffsetMask) * 8
	origMF := ff&ipv4FlagMF != 0
	wantOpts := copiedOnly(orig[IPv4MinLen:ihl])
	var got []byte
	for i, f := range frags {
		if len(f) > mtu {
			t.Fatalf("fragment %d: %d bytes, mtu %d", i, len(f), mtu)
		}
		d := decodeIPv4(t, f)
		reserialize(t, d, f)
		last := i == len(frags)-1
		h := int(d.ip.IHL) * 4
		n := len(f) - h
		if int(d.ip.Length) != len(f) {
			t.Fatalf("fragment %d: total length %d for %d bytes", i, d.ip.Length, len(f))
		}
		if !last && n%8 != 0 {
			t.Fatalf("fragment %d: %d payload bytes, not a multiple of 8", i, n)
		}
		if off := int(d.ip.FragOffset) * 8; off != base+len(got) {
			t.Fatalf("fragment %d: offset %d, want %d", i, off, base+len(got))
		}
		mf := d.ip.Flags&layers.IPv4MoreFragments != 0
		if mf != (!last || origMF) {
			t.Fatalf("fragment %d of %d: MF %v", i, len(frags), mf)
		}
		if d.ip.Flags&(layers.IPv4DontFragment|layers.IPv4EvilBit) != 0 {
			t.Fatalf("fragment %d: flags %v", i, d.ip.Flags)
		}
		// The fixed fields are copied.
		if d.ip.Id != o.ID() || d.ip.TOS != o.TOS() || d.ip.TTL != o.TTL() || uint8(d.ip.Protocol) != o.Protocol() ||
			[4]byte(d.ip.SrcIP) != o.Source() || [4]byte(d.ip.DstIP) != o.Destination() {
			t.Fatalf("fragment %d: fixed fields differ: %x vs %x", i, f[:IPv4MinLen], orig[:IPv4MinLen])
		}
		// Options: all of them at offset 0, the copied ones elsewhere.
		opts := f[IPv4MinLen:h]
		if base+len(got) == 0 {
			if !bytes.Equal(opts, orig[IPv4MinLen:ihl]) {
				t.Fatalf("first fragment options %x, want %x", opts, orig[IPv4MinLen:ihl])
			}
		} else if !bytes.Equal(opts, wantOpts) {
			t.Fatalf("fragment %d options %x, want the copied ones %x (of %x)", i, opts, wantOpts, orig[IPv4MinLen:ihl])
		}
		// Each fragment is as large as the MTU allows.
		if !last && len(f)+8 <= mtu {
			t.Fatalf("fragment %d: %d bytes, another 8 would fit in %d", i, len(f), mtu)
		}
		got = append(got, f[h:]...)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("fragment payloads (%d bytes) differ from the original (%d bytes)", len(got), len(payload))
	}
	if base != 0 || origMF {
		return // a piece of a datagram: ip4defrag cannot complete it
	}

	// Reassemble with gopacket, in a random order.
	order := r.Perm(len(frags))
	dfr := ip4defrag.NewIPv4Defragmenter()
	var out *layers.IPv4
	for k, i := range order {
		d := decodeIPv4(t, frags[i])
		res, err := dfr.DefragIPv4(d.ip)
		if err != nil {
			t.Fatalf("ip4defrag: %v", err)
		}
		if res != nil && k != len(order)-1 {
			t.Fatalf("ip4defrag completed after %d of %d fragments", k+1, len(order))
		}
		out = res
	}
	if out == nil {
		t.Fatal("ip4defrag did not reassemble the fragments")
	}
	if !bytes.Equal(out.Payload, payload) {
		t.Fatalf("reassembled payload differs from the original")
	}
	if out.Id != o.ID() || uint8(out.Protocol) != o.Protocol() || [4]byte(out.SrcIP) != o.Source() || [4]byte(out.DstIP) != o.Destination() {
		t.Fatal("reassembled header differs from the original")
	}
}

func fragment(t testing.TB, pkt []byte, mtu int) [][]byte {
	t.Helper()
	var c collector
	if err := FragmentIPv4(pkt, mtu, c.next); err != nil {
		t.Fatalf("FragmentIPv4: %v", err)
	}
	return c.pkts
}

func TestFragmentIPv4Edges(t *testing.T) {
	src, dst := [4]byte{192, 168, 1, 1}, [4]byte{192, 168, 2, 2}
	dgram := func(opts []byte, n int, ff uint16) []byte {
		r := rand.New(rand.NewPCG(uint64(n), 3))
		return buildIPv4(pktSpec{tos: 0x10, ttl: 63, proto: ProtoUDP, id: 0xbeef, flagsOff: ff,
			src: src, dst: dst, ipOpts: opts, l4: randBytes(r, n)})
	}
	tests := []struct {
		name  string
		pkt   []byte
		mtu   int
		wantN int
	}{
		{"two fragments", dgram(nil, 2000, 0), 1500, 2},
		{"payload an exact multiple of 8 per fragment", dgram(nil, 3*1480, 0), 1500, 3},
		{"mtu not 8-aligned", dgram(nil, 3000, 0), 1499, 3},
		{"minimum mtu 68", dgram(nil, 100, 0), 68, 3},
		{"every fragment 8 bytes", dgram(nil, 40, 0), 28, 5},
		{"last fragment 1 byte", dgram(nil, 1481, 0), 1500, 2},
		// 56-byte header first, then 32 (router alert and LSRR copied):
		// 520 + 4*544 + 304 bytes.
		{"mixed options", dgram(packOptions(optRecordRoute, optRouterAlert, optNOP, optTimestamp, optLSRR), 3000, 0), 576, 6},
		{"only uncopied options", dgram(packOptions(optRecordRoute, optTimestamp), 3000, 0), 1000, 4},
		{"only copied options", dgram(packOptions(optSecurity, optLSRR), 3000, 0), 1000, 4},
		// 60-byte header first, then 36 (security, router alert): 8+32+24.
		{"60-byte header, mtu 68", dgram(packOptions(optSecurity, optRecordRoute, optTimestamp, optRouterAlert), 64, 0), 68, 3},
		{"options after end of list ignored", dgram(packOptions(optRouterAlert, []byte{0}, optSecurity), 3000, 0), 1000, 4},
		{"fragment of a first fragment", dgram(packOptions(optRecordRoute, optSecurity), 3000, ipv4FlagMF), 1000, 4},
		{"fragment of a middle fragment", dgram(packOptions(optSecurity), 3000, ipv4FlagMF|100), 1000, 4},
		{"fragment of a last fragment", dgram(packOptions(optSecurity), 3000, 100), 1000, 4},
		{"reserved flag cleared", dgram(nil, 3000, 0x8000), 1500, 3},
		{"64 KiB", dgram(nil, 65535-20, 0), 1500, 45},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frags := fragment(t, tt.pkt, tt.mtu)
			if len(frags) != tt.wantN {
				t.Fatalf("%d fragments, want %d", len(frags), tt.wantN)
			}
			checkFragments(t, rand.New(rand.NewPCG(1, 1)), tt.pkt, tt.mtu, frags)
		})
	}

	t.Run("fits: copied unchanged", func(t *testing.T) {
		for _, p := range [][]byte{dgram(nil, 1480, 0), dgram(nil, 1000, ipv4FlagDF), dgram(packOptions(optRecordRoute), 10, 0)} {
			padded := append(append([]byte(nil), p...), 1, 2, 3) // link padding is not copied
			frags := fragment(t, padded, 1500)
			if len(frags) != 1 || !bytes.Equal(frags[0], p) {
				t.Fatalf("got %d fragments; want the packet unchanged", len(frags))
			}
		}
	})
}

func TestFragmentIPv4Errors(t *testing.T) {
	good := func() []byte {
		return buildIPv4(pktSpec{ttl: 64, proto: ProtoUDP, src: [4]byte{192, 168, 1, 1}, dst: [4]byte{192, 168, 1, 2},
			ipOpts: packOptions(optRouterAlert), l4: make([]byte, 3000)})
	}
	mod := func(f func(p []byte)) []byte { p := good(); f(p); return p }
	tests := []struct {
		name    string
		pkt     []byte
		mtu     int
		wantErr error
	}{
		{"DF", mod(func(p []byte) { p[ipv4FlagsOff] |= 0x40 }), 1500, ErrFragmentationNeeded},
		{"mtu below header + 8", good(), 24 + 7, ErrMTUTooSmall},
		{"mtu 0", good(), 0, ErrMTUTooSmall},
		{"mtu negative", good(), -1, ErrMTUTooSmall},
		{"short", good()[:10], 1500, ErrMalformed},
		{"version 6", mod(func(p []byte) { p[0] = 0x66 }), 1500, ErrMalformed},
		{"IHL 3", mod(func(p []byte) { p[0] = 0x43 }), 1500, ErrMalformed},
		{"total length past the end", good()[:2000], 1500, ErrMalformed},
		{"total length 0", mod(func(p []byte) { p[2], p[3] = 0, 0 }), 1500, ErrMalformed},
		{"offset runs past 65535", mod(func(p []byte) { binary.BigEndian.PutUint16(p[ipv4FlagsOff:], 8000) }), 1500, ErrMalformed},
		{"option length 0", mod(func(p []byte) { p[21] = 0 }), 1500, ErrBadIPOptions},
		{"option past the header", mod(func(p []byte) { p[21] = 5 }), 1500, ErrBadIPOptions},
		{"option without length", mod(func(p []byte) { copy(p[20:], []byte{1, 1, 1, 0x94}) }), 1500, ErrBadIPOptions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c collector
			if err := FragmentIPv4(tt.pkt, tt.mtu, c.next); !errors.Is(err, tt.wantErr) {
				t.Fatalf("FragmentIPv4 = %v, want %v", err, tt.wantErr)
			}
			if c.calls != 0 {
				t.Fatalf("next called %d times before the error", c.calls)
			}
		})
	}
	t.Run("no buffer", func(t *testing.T) {
		c := collector{failAt: 3}
		if err := FragmentIPv4(good(), 1000, c.next); !errors.Is(err, ErrNoBuffer) {
			t.Fatalf("FragmentIPv4 = %v, want ErrNoBuffer", err)
		}
		if len(c.pkts) != 2 {
			t.Fatalf("%d fragments before the failure, want 2", len(c.pkts))
		}
	})
	t.Run("no buffer for a packet that fits", func(t *testing.T) {
		if err := FragmentIPv4(good(), 9000, func(int) []byte { return nil }); !errors.Is(err, ErrNoBuffer) {
			t.Fatalf("FragmentIPv4 = %v, want ErrNoBuffer", err)
		}
	})
}

// TestFragmentIPv4Random fragments random datagrams with random options
// and MTUs and reassembles them with gopacket.
func TestFragmentIPv4Random(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	cases := 3000
	if testing.Short() {
		cases = 300
	}
	for range cases {
		opts := randIPOpts(r)
		n := 1 + r.IntN(9000)
		if r.IntN(20) == 0 {
			n = r.IntN(65535 - 60)
		}
		pkt := buildIPv4(pktSpec{tos: byte(r.Uint32()), ttl: byte(r.Uint32()), proto: byte(r.Uint32()),
			id: uint16(r.Uint32()), src: randAddr(r), dst: randAddr(r), ipOpts: opts, l4: randBytes(r, n)})
		ihl := IPv4(pkt).HeaderLen()
		mtu := ihl + 8 + r.IntN(len(pkt)-ihl)
		if r.IntN(4) == 0 {
			mtu = 68 + r.IntN(1500)
		}
		if (len(pkt)-ihl)/(mtu-ihl) > 2000 {
			mtu = ihl + 8 + (len(pkt)-ihl)/2000 // bound the work per case
		}
		frags := fragment(t, pkt, mtu)
		if len(pkt) <= mtu {
			if len(frags) != 1 || !bytes.Equal(frags[0], pkt) {
				t.Fatal("a packet that fits was changed")
			}
			continue
		}
		checkFragments(t, r, pkt, mtu, frags)
	}
}

func TestFragmentIPv4Allocs(t *testing.T) {
	pkt := buildIPv4(pktSpec{ttl: 64, proto: ProtoUDP, ipOpts: packOptions(optRouterAlert, optRecordRoute), l4: make([]byte, 8000)})
	slot := make([]byte, 2048)
	if a := testing.AllocsPerRun(50, func() {
		if err := FragmentIPv4(pkt, 1500, func(int) []byte { return slot[34:] }); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Fatalf("%v allocations per run, want 0", a)
	}
}

func BenchmarkFragmentIPv4(b *testing.B) {
	pkt := buildIPv4(pktSpec{ttl: 64, proto: ProtoUDP, l4: make([]byte, 65535-20)})
	slots := make([][]byte, 64)
	for i := range slots {
		slots[i] = make([]byte, 2048)
	}
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		i := 0
		if err := FragmentIPv4(pkt, 1500, func(int) []byte { s := slots[i][34:]; i++; return s }); err != nil {
			b.Fatal(err)
		}
	}
}
