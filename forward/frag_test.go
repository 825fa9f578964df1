package forward

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-project/gvs/conntrack"
	"github.com/gvs-project/gvs/internal/afpacket"
	"github.com/gvs-project/gvs/internal/hdr"
	"github.com/gvs-project/gvs/service"
)

// bigFrame builds a TCP or UDP frame of n payload bytes with gopacket,
// checksums right and DF clear, so that it may be fragmented.
func bigFrame(t testing.TB, r *rand.Rand, proto uint8, srcMAC, dstMAC [6]byte, src [4]byte, sport uint16, dst [4]byte, dport uint16, tcpFlags uint8, n int) []byte {
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(srcMAC[:]), DstMAC: net.HardwareAddr(dstMAC[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Id: uint16(r.Uint32()), SrcIP: net.IP(src[:]), DstIP: net.IP(dst[:])}
	payload := make([]byte, n)
	for i := range payload {
		payload[i] = byte(r.Uint32())
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}
	var err error
	if proto == hdr.ProtoUDP {
		ip.Protocol = layers.IPProtocolUDP
		u := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
		u.SetNetworkLayerForChecksum(ip)
		err = gopacket.SerializeLayers(buf, opts, eth, ip, u, gopacket.Payload(payload))
	} else {
		ip.Protocol = layers.IPProtocolTCP
		tc := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Seq: r.Uint32(), Ack: r.Uint32(),
			Window: 1000, SYN: tcpFlags&hdr.TCPFlagSYN != 0, ACK: tcpFlags&hdr.TCPFlagACK != 0, PSH: tcpFlags&hdr.TCPFlagPSH != 0}
		tc.SetNetworkLayerForChecksum(ip)
		err = gopacket.SerializeLayers(buf, opts, eth, ip, tc, gopacket.Payload(payload))
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// fragmentFrame cuts a frame's IPv4 datagram into fragments of at most mtu
// bytes (hdr.FragmentIPv4, which follows the kernel), each a frame with
// the original's Ethernet header.
func fragmentFrame(t testing.TB, f []byte, mtu int) [][]byte {
	t.Helper()
	var out [][]byte
	err := hdr.FragmentIPv4(f[hdr.EthernetLen:], mtu, func(size int) []byte {
		b := make([]byte, hdr.EthernetLen+size)
		copy(b, f[:hdr.EthernetLen])
		out = append(out, b)
		return b[hdr.EthernetLen:]
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// reassemble puts IPv4 fragments (frames, in any order) back together as
// a receiver does, into one frame with the first fragment's Ethernet and
// IPv4 headers (MF clear, lengths and header checksum right). It fails
// the test unless the fragments are one whole datagram.
func reassemble(t testing.TB, frags [][]byte) []byte {
	t.Helper()
	var first []byte
	data := map[int][]byte{}
	end := -1
	id := -1
	for _, f := range frags {
		ip := hdr.IPv4(f[hdr.EthernetLen:])
		if !ip.ChecksumValid() {
			t.Fatalf("fragment with a wrong header checksum: %x", f)
		}
		if id >= 0 && int(ip.ID()) != id {
			t.Fatalf("fragments of two datagrams: IDs %d and %d", id, ip.ID())
		}
		id = int(ip.ID())
		off := ip.FragmentOffset() * 8
		payload := ip[ip.HeaderLen():ip.TotalLen()]
		data[off] = payload
		if off == 0 {
			first = f
		}
		if binary.BigEndian.Uint16(ip[6:])&0x2000 == 0 {
			end = off + len(payload)
		}
	}
	if first == nil || end < 0 {
		t.Fatalf("first or last fragment missing")
	}
	var whole []byte
	for len(whole) < end {
		p, ok := data[len(whole)]
		if !ok {
			t.Fatalf("hole at %d", len(whole))
		}
		whole = append(whole, p...)
	}
	fip := hdr.IPv4(first[hdr.EthernetLen:])
	hl := fip.HeaderLen()
	out := append(append([]byte(nil), first[:hdr.EthernetLen+hl]...), whole...)
	ip := hdr.IPv4(out[hdr.EthernetLen:])
	binary.BigEndian.PutUint16(ip[2:], uint16(hl+len(whole)))
	binary.BigEndian.PutUint16(ip[6:], 0)
	ip.SetChecksum(0)
	ip.SetChecksum(ip.ComputeChecksum())
	return out
}

// innerFrames unwraps IPIP frames into frames of their inner packets.
func innerFrames(frames [][]byte) [][]byte {
	var out [][]byte
	for _, f := range frames {
		out = append(out, append(append([]byte(nil), f[:hdr.EthernetLen]...), f[hdr.EthernetLen+outerLen:]...))
	}
	return out
}

// TestFragmentsFollowFirst: in every mode, for UDP and TCP, the later
// fragments of a datagram go where its first fragment went, rewritten to
// match: the real server reassembles the datagram with the mode's
// addresses and ports, every checksum right and the payload intact. For
// NAT and FULLNAT a fragmented reply comes back to the client the same
// way.
func TestFragmentsFollowFirst(t *testing.T) {
	for _, fwd := range []service.Forward{service.Route, service.Masq, service.FullNAT, service.Tunnel} {
		for _, proto := range []uint8{hdr.ProtoUDP, hdr.ProtoTCP} {
			t.Run(fmt.Sprintf("%v/%d", fwd, proto), func(t *testing.T) {
				r := rand.New(rand.NewPCG(uint64(fwd), uint64(proto)))
				rig := newModeRig(t, fwd, proto)
				const cport = 40000
				flags := uint8(0)
				if proto == hdr.ProtoTCP {
					// The connection starts unfragmented; its data comes in
					// fragments (a path with a small MTU, DF clear).
					syn := bigFrame(t, r, proto, clientMAC, directorMAC, clientIP, cport, vip, 80, hdr.TCPFlagSYN, 0)
					if v := rig.send(frame(syn)); v != Forwarded {
						t.Fatalf("SYN: %v", v)
					}
					flags = hdr.TCPFlagACK | hdr.TCPFlagPSH
				}
				in := bigFrame(t, r, proto, clientMAC, directorMAC, clientIP, cport, vip, 80, flags, 3000)
				frags := fragmentFrame(t, in, 1000)
				if len(frags) != 4 {
					t.Fatalf("%d fragments", len(frags))
				}
				sent := len(rig.real.sent)
				for i, f := range frags {
					if v := rig.send(frame(f)); v != Forwarded {
						t.Fatalf("fragment %d: verdict %v", i, v)
					}
				}
				outs := rig.real.sent[sent:]
				if len(outs) != len(frags) {
					t.Fatalf("%d frames sent for %d fragments", len(outs), len(frags))
				}
				for i, o := range outs {
					if !bytes.Equal(o[0:6], realMAC[:]) {
						t.Fatalf("fragment %d went to %x", i, o[0:6])
					}
				}
				if fwd == service.Tunnel {
					for i, o := range outs {
						outer := hdr.IPv4(o[hdr.EthernetLen:])
						if outer.Protocol() != hdr.ProtoIPIP || outer.Destination() != rip || !outer.ChecksumValid() {
							t.Fatalf("fragment %d: outer header %x", i, []byte(outer[:20]))
						}
					}
					outs = innerFrames(outs)
				}
				got := reassemble(t, outs)
				if !checksumsValid(t, got) {
					t.Fatalf("the reassembled datagram's checksums are wrong")
				}
				gip, sport, dport := decode(t, got)
				wantSrc, wantDst, wantSport, wantDport := clientIP, vip, uint16(cport), uint16(80)
				switch fwd {
				case service.Masq:
					wantDst, wantDport = rip, 8080
				case service.FullNAT:
					wantSrc, wantDst, wantSport, wantDport = laddr, rip, sport, 8080
				}
				if [4]byte(gip.SrcIP.To4()) != wantSrc || [4]byte(gip.DstIP.To4()) != wantDst || sport != wantSport || dport != wantDport {
					t.Fatalf("reassembled %v:%d -> %v:%d", gip.SrcIP, sport, gip.DstIP, dport)
				}
				hl := 20 + 8
				if proto == hdr.ProtoTCP {
					hl = 20 + 20
				}
				if !bytes.Equal(got[hdr.EthernetLen+hl:], in[hdr.EthernetLen+hl:]) {
					t.Fatal("payload changed")
				}
				if fs := rig.w.e.FragStats(); fs.Placed != uint64(len(frags)-1) || fs.Tracked != 1 {
					t.Fatalf("fragment stats %+v", fs)
				}
				if fwd != service.Masq && fwd != service.FullNAT {
					return
				}

				// The real server's fragmented reply.
				rflags := uint8(0)
				if proto == hdr.ProtoTCP {
					rflags = hdr.TCPFlagACK
				}
				reply := bigFrame(t, r, proto, realMAC, dirMAC2, rip, 8080, wantSrc, wantSport, rflags, 2500)
				rfrags := fragmentFrame(t, reply, 1200)
				sent = len(rig.lan.sent)
				for i, f := range rfrags {
					if v := rig.send(frame(f)); v != Forwarded {
						t.Fatalf("reply fragment %d: verdict %v", i, v)
					}
				}
				back := reassemble(t, rig.lan.sent[sent:])
				if !checksumsValid(t, back) {
					t.Fatal("the reassembled reply's checksums are wrong")
				}
				bip, bsport, bdport := decode(t, back)
				if [4]byte(bip.SrcIP.To4()) != vip || bsport != 80 || [4]byte(bip.DstIP.To4()) != clientIP || bdport != cport {
					t.Fatalf("reply reassembled as %v:%d -> %v:%d", bip.SrcIP, bsport, bip.DstIP, bdport)
				}
				if !bytes.Equal(back[hdr.EthernetLen+hl:], reply[hdr.EthernetLen+hl:]) {
					t.Fatal("reply payload changed")
				}
			})
		}
	}
}

// TestFragmentOrder: a later fragment before its first one is dropped
// (counted); after the first, the same fragment is placed. Fragments of
// two datagrams of two connections, interleaved, each follow their own
// first fragment to their own real server.
func TestFragmentOrder(t *testing.T) {
	r := newRig(t)
	rnd := rand.New(rand.NewPCG(7, 8))
	a := fragmentFrame(t, bigFrame(t, rnd, hdr.ProtoUDP, clientMAC, directorMAC, clientIP, 41000, vip, 53, 0, 2000), 800)
	b := fragmentFrame(t, bigFrame(t, rnd, hdr.ProtoUDP, clientMAC, directorMAC, clientIP, 41001, vip, 53, 0, 2000), 800)
	// The UDP service has one server: give it a second, so that rr
	// sends the two connections to different servers.
	udp := service.KeyOf(17, netip.AddrFrom4(vip), 53)
	if _, err := r.services.Apply([]service.Op{{Kind: service.AddReal, Service: udp,
		Real: service.RealSpec{Addr: netip.MustParseAddr("192.168.150.13"), Port: 53, Forward: service.Route, Weight: 1}}},
		func(p *service.Plan) error {
			for _, nr := range p.NewReals {
				nr.SetLink(&service.Link{Hop: r.hops[nr.Addr.String()]})
			}
			return nil
		}); err != nil {
		t.Fatal(err)
	}
	if v := r.send(frame(a[1])); v != Fragment {
		t.Fatalf("later fragment first: verdict %v, want %v", v, Fragment)
	}
	if len(r.tx.sent) != 0 || r.conns.Len() != 0 {
		t.Fatal("an unplaced fragment was sent or made a connection")
	}
	var order []afpacket.Frame
	for i := range a {
		order = append(order, frame(a[i]), frame(b[i]))
	}
	for i, f := range order {
		if v := r.send(f); v != Forwarded {
			t.Fatalf("frame %d: %v", i, v)
		}
	}
	to := map[int][6]byte{}
	for i, o := range r.tx.sent {
		dg := i % 2
		if prev, ok := to[dg]; ok && prev != [6]byte(o[0:6]) {
			t.Fatalf("datagram %d: fragments went to %x and %x", dg, prev, o[0:6])
		}
		to[dg] = [6]byte(o[0:6])
	}
	if to[0] == to[1] {
		t.Fatalf("both connections went to %x: rr should have spread them", to[0])
	}
	if v := r.w.Stats().Verdicts[Fragment]; v != 1 {
		t.Fatalf("frag_no_first counted %d, want 1", v)
	}
}

// TestFragmentExpiry: a datagram's entry places its later fragments for
// fragTimeout (Linux's ipfrag_time), not after; a connection that is gone
// places nothing.
func TestFragmentExpiry(t *testing.T) {
	r := newRig(t)
	rnd := rand.New(rand.NewPCG(9, 10))
	fr := fragmentFrame(t, bigFrame(t, rnd, hdr.ProtoUDP, clientMAC, directorMAC, clientIP, 42000, vip, 53, 0, 3000), 1000)
	snap := r.services.Load()
	now := conntrack.Now()
	handle := func(b []byte, at int64) Reason {
		f := frame(append([]byte(nil), b...))
		return r.w.handle(&f, at, snap)
	}
	if v := handle(fr[0], now); v != Forwarded {
		t.Fatalf("first: %v", v)
	}
	if v := handle(fr[1], now+int64(fragTimeout)-1); v != Forwarded {
		t.Fatalf("second, just in time: %v", v)
	}
	if v := handle(fr[2], now+int64(fragTimeout)); v != Fragment {
		t.Fatalf("third, too late: %v", v)
	}
	// Another datagram of a connection that has expired meanwhile.
	fr2 := fragmentFrame(t, bigFrame(t, rnd, hdr.ProtoUDP, clientMAC, directorMAC, clientIP, 42001, vip, 53, 0, 3000), 1000)
	if v := handle(fr2[0], now); v != Forwarded {
		t.Fatalf("first: %v", v)
	}
	later := now + int64(r.conns.Timeouts().UDP) + 1
	if v := handle(fr2[1], later); v != Fragment {
		t.Fatalf("fragment of an expired connection: %v", v)
	}
}

// TestFragTableBounded: the table never holds more than its capacity; a
// flood of first fragments evicts (counted), the newest datagrams are
// still placed, and nothing allocates.
func TestFragTableBounded(t *testing.T) {
	ft := newFragTable()
	now := conntrack.Now()
	var p packet
	ipb := make(hdr.IPv4, 20)
	p.ip = ipb
	p.proto = hdr.ProtoUDP
	n := 3 * fragSets * fragWays
	for i := range n {
		binary.BigEndian.PutUint32(p.src[:], 0xc6120000+uint32(i)) // 198.18.0.0/15
		binary.BigEndian.PutUint16(ipb[4:], uint16(i))
		p.sport = uint16(i)
		ft.put(&p, false, now)
	}
	e := &Engine{frags: ft}
	fs := e.FragStats()
	// Every datagram is either still there or was evicted (a set that
	// happened to get fewer than fragWays of them is not full).
	if fs.Tracked > fs.Capacity || fs.Tracked < fs.Capacity*99/100 || uint64(fs.Tracked)+fs.Evicted != uint64(n) {
		t.Fatalf("stats %+v after %d datagrams", fs, n)
	}
	// The last datagrams are all there.
	for i := n - 100; i < n; i++ {
		binary.BigEndian.PutUint32(p.src[:], 0xc6120000+uint32(i))
		binary.BigEndian.PutUint16(ipb[4:], uint16(i))
		if e, ok := ft.get(&p, now); !ok || e.sport != uint16(i) {
			t.Fatalf("datagram %d lost", i)
		}
	}
	i := 0
	if a := testing.AllocsPerRun(1000, func() {
		i++
		binary.BigEndian.PutUint32(p.src[:], uint32(i))
		ft.put(&p, false, now)
		ft.get(&p, now)
	}); a != 0 {
		t.Fatalf("%v allocs per put and get", a)
	}
}

// TestFragmentAllocs: first and later fragments cost no allocation.
func TestFragmentAllocs(t *testing.T) {
	for _, fwd := range []service.Forward{service.Route, service.Masq, service.FullNAT, service.Tunnel} {
		rig := newModeRig(t, fwd, hdr.ProtoUDP)
		rnd := rand.New(rand.NewPCG(3, 4))
		fr := fragmentFrame(t, bigFrame(t, rnd, hdr.ProtoUDP, clientMAC, directorMAC, clientIP, 43000, vip, 80, 0, 3000), 1000)
		tx := &countTX{}
		rig.w.egress[0].TX, rig.w.egress[1].TX = tx, tx
		snap := rig.svc.Load()
		now := conntrack.Now()
		frames := make([]afpacket.Frame, len(fr))
		for i := range fr {
			frames[i] = frame(fr[i])
		}
		for i := range frames {
			rig.w.handle(&frames[i], now, snap)
		}
		for i := range frames {
			data := append([]byte(nil), fr[i]...)
			if n := testing.AllocsPerRun(500, func() {
				copy(frames[i].Data, data)
				if v := rig.w.handle(&frames[i], now, snap); v != Forwarded {
					t.Fatalf("%v fragment %d: %v", fwd, i, v)
				}
			}); n != 0 {
				t.Errorf("%v fragment %d: %v allocs", fwd, i, n)
			}
		}
	}
}
