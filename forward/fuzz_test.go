package forward

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gvs-project/gvs/internal/afpacket"
	"github.com/gvs-project/gvs/internal/hdr"
	"github.com/gvs-project/gvs/service"
)

// The fuzz targets' seed corpora live in testdata/fuzz/<target>/, where
// go test runs them as ordinary tests. TestFuzzSeedCorpus checks that the
// files match fuzzSeeds; `go test -run TestFuzzSeedCorpus -update-corpus`
// rewrites them after fuzzSeeds changes.
var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz from fuzzSeeds")

type fuzzSeed struct {
	name string
	args []any // the target's arguments: byte or []byte
}

// The fuzzed connection: FuzzHandle opens it before the fuzzed frame, so
// that frames of it, its replies and its fragments reach every path.
const (
	fuzzCport = 40000
	fuzzVport = 80
	fuzzRport = 8080 // NAT and FULLNAT (DR and TUN: 80)
)

// fuzzFragID is the IP ID of the datagram whose first fragment FuzzHandle
// sends after opening its connection, so that fuzzed later fragments can
// be placed.
const fuzzFragID = 0x4242

// fuzzFragments returns the fragments of a datagram of the fuzzed
// connection (ID fuzzFragID, 1500 bytes of payload, in 600-byte fragments).
func fuzzFragments(t testing.TB, proto uint8) [][]byte {
	r := rand.New(rand.NewPCG(uint64(proto), 63))
	flags := uint8(hdr.TCPFlagACK)
	if proto == hdr.ProtoUDP {
		flags = 0
	}
	b := bigFrame(t, r, proto, clientMAC, directorMAC, clientIP, fuzzCport, vip, fuzzVport, flags, 1500)
	binary.BigEndian.PutUint16(b[hdr.EthernetLen+4:], fuzzFragID)
	fixIPChecksum(b)
	return fragmentFrame(t, b, 600)
}

// fuzzModes are the forwarding methods FuzzHandle's mode argument picks
// from (mode%4; mode&4 picks UDP instead of TCP; mode&8 makes the frame
// ask for checksum offload, mode&16 say its checksum was verified).
var fuzzModes = [4]service.Forward{service.Route, service.Masq, service.FullNAT, service.Tunnel}

// fuzzSeeds returns the seed inputs of each fuzz target: the frames of
// every path (new connections, established ones, replies, fragments,
// ICMP errors) in every mode, and the bad frames of TestBadFrames.
func fuzzSeeds(t testing.TB) map[string][]fuzzSeed {
	r := rand.New(rand.NewPCG(61, 62))
	var handle, classify []fuzzSeed
	add := func(name string, mode byte, b []byte) {
		handle = append(handle, fuzzSeed{name, []any{mode, b}})
		classify = append(classify, fuzzSeed{name, []any{byte(0), b}})
	}
	for m, fwd := range fuzzModes {
		for _, proto := range []uint8{hdr.ProtoTCP, hdr.ProtoUDP} {
			mode := byte(m)
			name := strings.ToLower(fwd.String())
			flags := uint8(hdr.TCPFlagACK)
			if proto == hdr.ProtoUDP {
				mode |= 4
				name += "-udp"
				flags = 0
			} else {
				name += "-tcp"
			}
			add(name+"-new", mode, bigFrame(t, r, proto, clientMAC, directorMAC, clientIP, fuzzCport+1, vip, fuzzVport, hdr.TCPFlagSYN, 10))
			est := bigFrame(t, r, proto, clientMAC, directorMAC, clientIP, fuzzCport, vip, fuzzVport, flags|hdr.TCPFlagPSH, 100)
			add(name+"-established", mode, est)
			add(name+"-offload", mode|8, est)
			frags := fuzzFragments(t, proto)
			add(name+"-first-fragment", mode, frags[0])
			add(name+"-later-fragment", mode, frags[1])
			add(name+"-last-fragment", mode, frags[2])
			if fwd == service.Masq || fwd == service.FullNAT {
				to, toPort := clientIP, uint16(fuzzCport)
				if fwd == service.FullNAT {
					to, toPort = laddr, 1024 // the pool's first port
				}
				add(name+"-reply", mode, bigFrame(t, r, proto, realMAC, dirMAC2, rip, fuzzRport, to, toPort, flags, 50))
			}
			// A router's fragmentation-needed about the connection's
			// packet to the client (what a real server's reply becomes).
			orig := bigFrame(t, r, proto, directorMAC, clientMAC, vip, fuzzVport, clientIP, fuzzCport, flags, 1400)
			icmp := make([]byte, hdr.EthernetLen+600)
			copy(icmp, est[:hdr.EthernetLen])
			n, err := hdr.BuildICMPv4Error(icmp[hdr.EthernetLen:], 3, 4, 1400, [4]byte{192, 168, 150, 254}, vip, 64, orig[hdr.EthernetLen:])
			if err != nil {
				t.Fatal(err)
			}
			add(name+"-icmp", mode, icmp[:hdr.EthernetLen+n])
		}
	}
	syn := tcpFrame(fuzzCport+2, hdr.TCPFlagSYN)
	synB := syn.build()
	add("bad-ip-checksum", 0, edit(synB, false, func(b []byte) { b[hdr.EthernetLen+10] ^= 0x40 }))
	add("syn-fin", 0, edit(synB, false, func(b []byte) { b[hdr.EthernetLen+20+13] |= hdr.TCPFlagFIN }))
	add("ihl-15", 0, edit(synB, true, func(b []byte) { b[hdr.EthernetLen] = 4<<4 | 15 }))
	add("options", 0, func() []byte { s := syn; s.ihl = 24; return s.build() }())
	add("udp-length-0", 4, edit(frameSpec{dstMAC: directorMAC, src: clientIP, dst: vip, proto: hdr.ProtoUDP, sport: 1, dport: 80}.build(), false,
		func(b []byte) { binary.BigEndian.PutUint16(b[hdr.EthernetLen+24:], 0) }))
	add("vlan", 0, func() []byte { s := syn; s.etherType = hdr.EtherTypeVLAN; return s.build() }())
	add("short", 0, synB[:20])
	return map[string][]fuzzSeed{"FuzzHandle": handle, "FuzzClassify": classify}
}

// encodeSeed writes a corpus file in the format of go test fuzz v1.
func encodeSeed(args []any) []byte {
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%s)\n", strconv.Quote(string(v)))
		case byte:
			fmt.Fprintf(&b, "byte(%d)\n", v)
		default:
			panic(fmt.Sprintf("unsupported seed type %T", a))
		}
	}
	return []byte(b.String())
}

func TestFuzzSeedCorpus(t *testing.T) {
	for target, seeds := range fuzzSeeds(t) {
		dir := filepath.Join("testdata", "fuzz", target)
		if *updateCorpus {
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for _, s := range seeds {
			path := filepath.Join(dir, "seed-"+s.name)
			want := encodeSeed(s.args)
			if *updateCorpus {
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestFuzzSeedCorpus -update-corpus)", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s is stale (run go test -run TestFuzzSeedCorpus -update-corpus)", path)
			}
		}
	}
}

// FuzzClassify: classify never panics, never changes the frame, and what
// it reports of a frame it passes is within the frame and agrees with its
// bytes.
func FuzzClassify(f *testing.F) {
	f.Fuzz(func(t *testing.T, meta byte, data []byte) {
		fr := afpacket.Frame{Data: data, Len: len(data)}
		if meta&1 != 0 {
			fr.PktType = afpacket.PacketOtherHost
		}
		if meta&2 != 0 && len(data) > 10 {
			fr.Len = len(data) + int(meta) // truncated by the ring
		}
		if meta&4 != 0 {
			fr.VNet.Flags = afpacket.NeedsCsum
		}
		in := slices.Clone(data)
		var p packet
		r := classify(&fr, &p)
		if !bytes.Equal(data, in) {
			t.Fatal("classify changed the frame")
		}
		if r != Forwarded && r != Fragment {
			return
		}
		ip := hdr.IPv4(data[hdr.EthernetLen:])
		if p.l4off != hdr.EthernetLen+ip.HeaderLen() || p.ipLen != ip.TotalLen() || p.ipLen > fr.Len-hdr.EthernetLen ||
			p.src != ip.Source() || p.dst != ip.Destination() || p.proto != ip.Protocol() {
			t.Fatalf("packet %+v does not match the header %x", p, data[hdr.EthernetLen:p.l4off])
		}
		if r == Fragment {
			if p.frag != fragLater || ip.FragmentOffset() == 0 {
				t.Fatalf("fragment %+v", p)
			}
			return
		}
		// The fixed part of the TCP/UDP header is in the frame (a frame
		// the ring truncated may lack the TCP options, which gvs does not
		// read), the whole header within the packet.
		fixed, need := hdr.UDPLen, hdr.UDPLen
		if p.proto == hdr.ProtoTCP {
			fixed, need = hdr.TCPMinLen, hdr.TCP(data[p.l4off:]).DataOffset()
		}
		if p.l4off+fixed > len(data) || p.l4off+need > hdr.EthernetLen+p.ipLen {
			t.Fatalf("L4 header of %d bytes at %d runs past the frame (%d) or packet (%d)", need, p.l4off, len(data), p.ipLen)
		}
		if p.sport != binary.BigEndian.Uint16(data[p.l4off:]) || p.dport != binary.BigEndian.Uint16(data[p.l4off+2:]) {
			t.Fatal("ports do not match")
		}
		if (p.frag == fragFirst) != ip.IsFragment() {
			t.Fatalf("frag %d for flags %#x", p.frag, binary.BigEndian.Uint16(ip[6:]))
		}
	})
}

// FuzzHandle runs a fuzzed frame through the whole path of a worker in one
// of the four modes, after a connection of the mode's service was opened,
// and checks the invariants every mode must keep:
//   - a frame that is not forwarded sends nothing (except the ICMP error
//     of TTLExceeded and FragNeeded), and a frame refused before the
//     connection table (bad, not ours, NoConn...) leaves the table exactly
//     as it was;
//   - a forwarded frame has the input's length (TUN: the inner packet's
//     plus the outer header, or fragments that reassemble to it), a valid
//     IPv4 header checksum (outer and inner), the TTL one less, and
//     differs from the input only in the bytes its mode rewrites (MACs,
//     TTL, header checksum; NAT and FULLNAT the addresses, ports and TCP/UDP
//     checksum), to the expected values;
//   - its TCP/UDP checksum is valid exactly when the input's was (when
//     the frame was not left to checksum offload and is not a fragment):
//     gvs's incremental updates neither break a good checksum nor mend a
//     bad one; a UDP checksum of 0 stays 0.
func FuzzHandle(f *testing.F) {
	f.Fuzz(func(t *testing.T, mode byte, data []byte) {
		fwd := fuzzModes[mode%4]
		proto := uint8(hdr.ProtoTCP)
		if mode&4 != 0 {
			proto = hdr.ProtoUDP
		}
		rig := newModeRigShards(t, fwd, proto, 64)
		open := frameSpec{dstMAC: directorMAC, src: clientIP, dst: vip, proto: proto, sport: fuzzCport, dport: fuzzVport, flags: hdr.TCPFlagSYN, payload: 4}
		if v := rig.send(frame(open.build())); v != Forwarded {
			t.Fatalf("opening the connection: %v", v)
		}
		if v := rig.send(frame(fuzzFragments(t, proto)[0])); v != Forwarded {
			t.Fatalf("first fragment: %v", v)
		}
		rig.lan.sent, rig.lan.vnets, rig.real.sent, rig.real.vnets = nil, nil, nil, nil
		before := modeConns(rig)

		in := slices.Clone(data)
		fr := afpacket.Frame{Data: data, Len: len(data), PktType: afpacket.PacketHost}
		ip, hl, total, l4ok := parseIn(in)
		if mode&8 != 0 && l4ok {
			fr.VNet = afpacket.VNetHdr{Flags: afpacket.NeedsCsum, CsumStart: uint16(hdr.EthernetLen + hl), CsumOffset: uint16(csumOff(ip.Protocol()))}
			if ip.Protocol() == hdr.ProtoICMP {
				// ICMP has no pseudo-header: a sender leaving its
				// checksum to offload seeds the field with 0, and
				// the kernel (or gvs, in TUN) sums over the seed.
				c := hdr.EthernetLen + hl + csumOff(hdr.ProtoICMP)
				data[c], data[c+1], in[c], in[c+1] = 0, 0, 0, 0
			}
		} else if mode&16 != 0 {
			fr.VNet.Flags = afpacket.DataValid
		}
		v := rig.send(fr)

		switch {
		case v == Forwarded:
		case v == TTLExceeded || v == FragNeeded:
			if len(rig.real.sent) != 0 || len(rig.lan.sent) > 1 {
				t.Fatalf("%v: %d frames to the real server, %d to the client", v, len(rig.real.sent), len(rig.lan.sent))
			}
			for _, o := range rig.lan.sent {
				checkICMPFrame(t, o)
			}
			return
		default:
			if len(rig.real.sent)+len(rig.lan.sent) != 0 {
				t.Fatalf("verdict %v, yet frames were sent", v)
			}
			if v < NoDest {
				if after := modeConns(rig); !slices.Equal(after, before) {
					t.Fatalf("verdict %v changed the connections:\n%v\nwere\n%v", v, after, before)
				}
			}
			return
		}

		// Forwarded: to the real server, or back to the client.
		toReal := len(rig.real.sent) > 0
		outs, vnets := rig.real.sent, rig.real.vnets
		if !toReal {
			outs, vnets = rig.lan.sent, rig.lan.vnets
		}
		if len(rig.real.sent) > 0 && len(rig.lan.sent) > 0 {
			t.Fatal("frames sent both ways")
		}
		if ip.Protocol() == hdr.ProtoICMP {
			if fwd == service.Tunnel && toReal {
				out := outs[0]
				if len(outs) > 1 {
					out = reassemble(t, outs)
				}
				outs = [][]byte{unwrapOuter(t, out, true)}
			}
			for _, o := range outs {
				checkICMPFrame(t, o)
			}
			return
		}
		if fwd == service.Tunnel && toReal {
			out := outs[0]
			if len(outs) > 1 {
				out = reassemble(t, outs)
			}
			inner := unwrapOuter(t, out, true)
			want := slices.Clone(in[:hdr.EthernetLen+total])
			copy(want[0:6], realMAC[:])
			copy(want[6:12], dirMAC2[:])
			skip := []int{hdr.EthernetLen + 8, hdr.EthernetLen + 10, hdr.EthernetLen + 11}
			if fr.VNet.Flags&afpacket.NeedsCsum != 0 {
				// gvs completes an offloaded checksum before wrapping.
				c := hdr.EthernetLen + hl + csumOff(ip.Protocol())
				skip = append(skip, c, c+1)
			}
			diffExcept(t, "TUN inner packet", want, inner, skip)
			checkIP(t, inner, ip.TTL()-1)
			return
		}
		if len(outs) != 1 {
			t.Fatalf("%d frames for one", len(outs))
		}
		out := outs[0]
		if len(out) != len(in) {
			t.Fatalf("output %d bytes, input %d", len(out), len(in))
		}
		checkIP(t, out, ip.TTL()-1)
		later := ip.FragmentOffset() != 0
		l4 := hdr.EthernetLen + hl
		c := l4 + csumOff(ip.Protocol())
		skip := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, hdr.EthernetLen + 8, hdr.EthernetLen + 10, hdr.EthernetLen + 11}
		type field struct {
			off  int
			want []byte
		}
		var fields []field
		addr := func(off int, a [4]byte) { fields = append(fields, field{hdr.EthernetLen + off, a[:]}) }
		port := func(off int, p uint16) {
			if !later {
				fields = append(fields, field{l4 + off, binary.BigEndian.AppendUint16(nil, p)})
			}
		}
		anyPort := func(off int) {
			if !later {
				skip = append(skip, l4+off, l4+off+1)
			}
		}
		switch {
		case fwd == service.Masq && toReal:
			addr(16, rip)
			port(2, fuzzRport)
		case fwd == service.FullNAT && toReal:
			addr(12, laddr)
			addr(16, rip)
			anyPort(0)
			port(2, fuzzRport)
		case fwd == service.Masq:
			addr(12, vip)
			port(0, fuzzVport)
		case fwd == service.FullNAT:
			addr(12, vip)
			addr(16, clientIP)
			port(0, fuzzVport)
			port(2, fuzzCport)
		}
		rewrites := len(fields) > 0
		for _, fl := range fields {
			if !bytes.Equal(out[fl.off:fl.off+len(fl.want)], fl.want) {
				t.Fatalf("%v: bytes %d..: %x, want %x", fwd, fl.off, out[fl.off:fl.off+len(fl.want)], fl.want)
			}
			for i := range fl.want {
				skip = append(skip, fl.off+i)
			}
		}
		if rewrites && !later {
			skip = append(skip, c, c+1)
		}
		want := slices.Clone(in)
		copy(want[0:6], out[0:6])
		diffExcept(t, fwd.String(), want, out, skip)
		if toReal && !bytes.Equal(out[0:6], realMAC[:]) || !toReal && !bytes.Equal(out[0:6], clientMAC[:]) {
			t.Fatalf("sent to %x", out[0:6])
		}
		// The TCP/UDP checksum: right exactly when it was.
		if !rewrites || later || ip.IsFragment() || fr.VNet.Flags&afpacket.NeedsCsum != 0 {
			if fr.VNet.Flags&afpacket.NeedsCsum != 0 && vnets[0] != fr.VNet {
				t.Fatalf("vnet header %+v, was %+v", vnets[0], fr.VNet)
			}
			return
		}
		if ip.Protocol() == hdr.ProtoUDP && binary.BigEndian.Uint16(in[c:]) == 0 {
			if binary.BigEndian.Uint16(out[c:]) != 0 {
				t.Fatal("a UDP datagram without checksum got one")
			}
			return
		}
		if a, b := l4Valid(in), l4Valid(out); a != b {
			t.Fatalf("%v: TCP/UDP checksum valid %v before, %v after", fwd, a, b)
		}
	})
}

// modeConns lists the rig's connections with their states.
func modeConns(r *modeRig) []string {
	return connList(&rig{conns: r.conns})
}

// parseIn reads what the checks need of an input frame, if its IPv4
// header is sound enough for them (it need not be: then nothing is
// forwarded and nothing is checked).
func parseIn(b []byte) (ip hdr.IPv4, hl, total int, l4ok bool) {
	if len(b) < hdr.EthernetLen+hdr.IPv4MinLen {
		return nil, 0, 0, false
	}
	ip = hdr.IPv4(b[hdr.EthernetLen:])
	hl, total = ip.HeaderLen(), ip.TotalLen()
	if hl < hdr.IPv4MinLen || total < hl || total > len(ip) {
		return ip, hl, total, false
	}
	n := hdr.UDPLen
	if ip.Protocol() == hdr.ProtoTCP {
		n = hdr.TCPMinLen
	}
	return ip, hl, total, total-hl >= n
}

func csumOff(proto uint8) int {
	switch proto {
	case hdr.ProtoUDP:
		return hdr.UDPChecksumOffset
	case hdr.ProtoICMP:
		return 2 // type, code, checksum
	}
	return hdr.TCPChecksumOffset
}

// l4Valid reports whether a frame's TCP/UDP checksum verifies.
func l4Valid(frame []byte) bool {
	ip := hdr.IPv4(frame[hdr.EthernetLen:])
	seg := ip[ip.HeaderLen():ip.TotalLen()]
	return hdr.Fold(hdr.Sum(seg, hdr.PseudoHeaderSum(ip.Source(), ip.Destination(), ip.Protocol(), len(seg)))) == 0xffff
}

// checkIP checks a frame's IPv4 header: checksum right, TTL as given.
func checkIP(t *testing.T, frame []byte, ttl uint8) {
	t.Helper()
	ip := hdr.IPv4(frame[hdr.EthernetLen:])
	if !ip.ChecksumValid() {
		t.Fatalf("IPv4 header checksum wrong: %x", []byte(ip[:ip.HeaderLen()]))
	}
	if ip.TTL() != ttl {
		t.Fatalf("TTL %d, want %d", ip.TTL(), ttl)
	}
}

// checkICMPFrame checks an ICMP frame gvs sent: IPv4 and ICMP checksums.
func checkICMPFrame(t *testing.T, frame []byte) {
	t.Helper()
	ip := hdr.IPv4(frame[hdr.EthernetLen:])
	if !ip.ChecksumValid() || ip.Protocol() != hdr.ProtoICMP || hdr.EthernetLen+ip.TotalLen() > len(frame) {
		t.Fatalf("ICMP frame %x", frame)
	}
	if hdr.Fold(hdr.Sum(ip[ip.HeaderLen():ip.TotalLen()], 0)) != 0xffff {
		t.Fatalf("ICMP checksum wrong: %x", frame)
	}
}

// unwrapOuter checks a TUN frame's outer header (whole: its total length
// is the frame's) and returns the inner packet as a frame.
func unwrapOuter(t *testing.T, frame []byte, whole bool) []byte {
	t.Helper()
	outer := hdr.IPv4(frame[hdr.EthernetLen:])
	if !outer.ChecksumValid() || outer.Protocol() != hdr.ProtoIPIP || outer.Source() != dirAddr2 || outer.Destination() != rip ||
		!bytes.Equal(frame[0:6], realMAC[:]) || !bytes.Equal(frame[6:12], dirMAC2[:]) {
		t.Fatalf("outer header %x", frame[:hdr.EthernetLen+outerLen])
	}
	if whole && hdr.EthernetLen+outer.TotalLen() != len(frame) {
		t.Fatalf("outer total length %d in a frame of %d", outer.TotalLen(), len(frame))
	}
	return append(slices.Clone(frame[:hdr.EthernetLen]), frame[hdr.EthernetLen+outerLen:]...)
}

// diffExcept fails unless a and b are equal but at the offsets in skip.
func diffExcept(t *testing.T, what string, a, b []byte, skip []int) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: %d bytes, want %d", what, len(b), len(a))
	}
	for i := range a {
		if a[i] != b[i] && !slices.Contains(skip, i) {
			t.Fatalf("%s: byte %d changed from %#02x to %#02x", what, i, a[i], b[i])
		}
	}
}
