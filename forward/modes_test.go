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

// The NAT, FULLNAT and TUN rigs put the real servers on a second
// interface, as the labs do.
const (
	ifLAN  = 2 // the client's side
	ifReal = 3 // the real servers' side
)

var (
	realMAC   = [6]byte{0x02, 0, 0, 0, 0, 0x21}
	dirMAC2   = [6]byte{0x02, 0, 0, 0, 0, 0x02}
	rip       = [4]byte{10, 0, 0, 12}
	laddr     = [4]byte{10, 0, 0, 200}
	dirAddr2  = [4]byte{10, 0, 0, 1}
	tunnelMTU = 1500
)

// modeRig is a worker with one service whose only real server uses fwd.
type modeRig struct {
	t     *testing.T
	svc   *service.Table
	conns *conntrack.Table[*service.Real]
	w     *Worker
	lan   *fakeTX
	real  *fakeTX
}

func newModeRig(t *testing.T, fwd service.Forward, proto uint8) *modeRig {
	return newModeRigShards(t, fwd, proto, 0)
}

// newModeRigShards is newModeRig with a connection table of that many
// shards (0: the default, 4096): the fuzz targets make a rig per input, and
// a small table makes that cheap.
func newModeRigShards(t *testing.T, fwd service.Forward, proto uint8, shards int) *modeRig {
	ports := NewPortPools()
	r := &modeRig{t: t, svc: service.New(), lan: &fakeTX{}, real: &fakeTX{},
		conns: conntrack.New[*service.Real](&conntrack.Config{OnRemove: ports.Release, Shards: shards})}
	key := service.KeyOf(proto, netip.AddrFrom4(vip), 80)
	rport := uint16(80)
	if fwd == service.Masq || fwd == service.FullNAT {
		rport = 8080
	}
	ops := []service.Op{
		{Kind: service.AddService, Service: key, Settings: service.Settings{Scheduler: "rr"}},
		{Kind: service.AddReal, Service: key, Real: service.RealSpec{Addr: netip.AddrFrom4(rip), Port: rport, Forward: fwd, Weight: 1}},
	}
	if fwd == service.FullNAT {
		ops = append(ops, service.Op{Kind: service.AddLocalAddr, Service: key, Addr: netip.AddrFrom4(laddr)})
	}
	_, err := r.svc.Apply(ops, func(p *service.Plan) error {
		for _, nr := range p.NewReals {
			nr.SetLink(&service.Link{Hop: &fakeHop{mac: realMAC, ok: true, ifindex: ifReal}, Source: dirAddr2})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e := New(Config{Services: r.svc, Conns: r.conns, Ports: ports})
	r.w = e.AddWorker("test", ifLAN, nil, []Egress{
		{Ifindex: ifLAN, MAC: directorMAC, Addr: [4]byte{192, 168, 150, 1}, MTU: tunnelMTU, TX: r.lan},
		{Ifindex: ifReal, MAC: dirMAC2, Addr: dirAddr2, MTU: tunnelMTU, TX: r.real},
	})
	return r
}

func (r *modeRig) send(f afpacket.Frame) Reason {
	r.w.frames[0] = f
	before := r.w.Stats()
	r.w.rx = nopRX{}
	r.w.batch(1)
	after := r.w.Stats()
	for i := range after.Verdicts {
		if after.Verdicts[i] != before.Verdicts[i] {
			return Reason(i)
		}
	}
	r.t.Fatal("no verdict counted")
	return 0
}

func (r *modeRig) last(tx *fakeTX) ([]byte, afpacket.VNetHdr) {
	r.t.Helper()
	if len(tx.sent) == 0 {
		r.t.Fatal("nothing sent")
	}
	return tx.sent[len(tx.sent)-1], tx.vnets[len(tx.vnets)-1]
}

// randomFrame builds a TCP or UDP frame src:sport -> dst:dport with
// gopacket: random payload, TTL, ID, TOS; flags for TCP.
func randomFrame(t testing.TB, r *rand.Rand, proto uint8, src [4]byte, sport uint16, dst [4]byte, dport uint16, syn bool) []byte {
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(clientMAC[:]), DstMAC: net.HardwareAddr(directorMAC[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: uint8(2 + r.IntN(254)), Id: uint16(r.Uint32()), TOS: uint8(r.Uint32()),
		SrcIP: net.IP(src[:]), DstIP: net.IP(dst[:])}
	if r.IntN(2) == 0 {
		ip.Flags = layers.IPv4DontFragment
	}
	payload := make([]byte, r.IntN(1400))
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
			Window: uint16(r.Uint32()), SYN: syn, ACK: !syn}
		tc.SetNetworkLayerForChecksum(ip)
		err = gopacket.SerializeLayers(buf, opts, eth, ip, tc, gopacket.Payload(payload))
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// makePartial turns a frame's complete L4 checksum into a partial one,
// as a local stack leaves it with checksum offload (NeedsCsum): the field
// holds the folded pseudo-header sum.
func makePartial(f *afpacket.Frame) {
	ip := hdr.IPv4(f.Data[hdr.EthernetLen:])
	l4off := hdr.EthernetLen + ip.HeaderLen()
	off := hdr.TCPChecksumOffset
	if ip.Protocol() == hdr.ProtoUDP {
		off = hdr.UDPChecksumOffset
	}
	l4len := ip.TotalLen() - ip.HeaderLen()
	seed := hdr.Fold(hdr.PseudoHeaderSum(ip.Source(), ip.Destination(), ip.Protocol(), l4len))
	binary.BigEndian.PutUint16(f.Data[l4off+off:], seed)
	f.VNet = afpacket.VNetHdr{Flags: afpacket.NeedsCsum, CsumStart: uint16(l4off), CsumOffset: uint16(off)}
	f.Status |= afpacket.StatusCsumNotReady
}

// partialValid checks a frame left to offload: its L4 checksum field must
// hold the pseudo-header sum for its (rewritten) addresses, the IP header
// checksum must be complete, and the vnet header must point at the field.
func partialValid(t testing.TB, frame []byte, v afpacket.VNetHdr) bool {
	ip := hdr.IPv4(frame[hdr.EthernetLen:])
	if textbookChecksum(frame[hdr.EthernetLen:hdr.EthernetLen+ip.HeaderLen()]) != 0 {
		return false
	}
	l4off := hdr.EthernetLen + ip.HeaderLen()
	off := hdr.TCPChecksumOffset
	if ip.Protocol() == hdr.ProtoUDP {
		off = hdr.UDPChecksumOffset
	}
	want := hdr.Fold(hdr.PseudoHeaderSum(ip.Source(), ip.Destination(), ip.Protocol(), ip.TotalLen()-ip.HeaderLen()))
	return v.Flags == afpacket.NeedsCsum && int(v.CsumStart) == l4off && int(v.CsumOffset) == off &&
		binary.BigEndian.Uint16(frame[l4off+off:]) == want
}

// decode returns the IPv4 and TCP/UDP fields of a frame via gopacket.
func decode(t testing.TB, frame []byte) (ip *layers.IPv4, sport, dport uint16) {
	t.Helper()
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	ip, _ = p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if ip == nil {
		t.Fatalf("no IPv4 in %x", frame)
	}
	switch l := p.TransportLayer().(type) {
	case *layers.TCP:
		return ip, uint16(l.SrcPort), uint16(l.DstPort)
	case *layers.UDP:
		return ip, uint16(l.SrcPort), uint16(l.DstPort)
	}
	t.Fatalf("no TCP/UDP in %x", frame)
	return
}

// TestChecksumProperty: 100 000 random packets per mode and direction
// through the rewrites; every output checksum equals what gopacket
// computes in full (or, for frames left to offload, the pseudo-header
// sum the kernel completes), and the rewritten fields are the expected
// ones.
func TestChecksumProperty(t *testing.T) {
	n := 100000
	if testing.Short() {
		n = 5000
	}
	for _, tc := range []struct {
		name string
		fwd  service.Forward
	}{{"NAT", service.Masq}, {"FULLNAT", service.FullNAT}, {"DR", service.Route}, {"TUN", service.Tunnel}} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(tc.fwd), 99))
			for _, proto := range []uint8{hdr.ProtoTCP, hdr.ProtoUDP} {
				rig := newModeRig(t, tc.fwd, proto)
				for i := range n / 2 {
					// A fresh table now and then keeps the entries few.
					if i%4096 == 0 {
						rig = newModeRig(t, tc.fwd, proto)
					}
					checkOne(t, r, rig, tc.fwd, proto, i)
				}
			}
		})
	}
}

func checkOne(t *testing.T, r *rand.Rand, rig *modeRig, fwd service.Forward, proto uint8, i int) {
	cport := uint16(1024 + i%60000)
	partial := r.IntN(3) == 0
	f := frame(randomFrame(t, r, proto, clientIP, cport, vip, 80, true))
	if partial {
		makePartial(&f)
	}
	in := append([]byte(nil), f.Data...)
	if v := rig.send(f); v != Forwarded {
		t.Fatalf("packet %d in: verdict %v", i, v)
	}
	out, vnet := rig.last(rig.real)
	switch fwd {
	case service.Tunnel:
		checkTunnel(t, in, out, i)
		return
	case service.Route:
		if partial && !partialValid(t, out, vnet) || !partial && !checksumsValid(t, out) {
			t.Fatalf("packet %d: DR checksums wrong", i)
		}
		return
	}
	ip, sport, dport := decode(t, out)
	wantSrc, wantSport := clientIP, cport
	if fwd == service.FullNAT {
		wantSrc = laddr
		wantSport = sport // a port from the pool
	}
	if !bytes.Equal(ip.DstIP.To4(), rip[:]) || dport != 8080 || !bytes.Equal(ip.SrcIP.To4(), wantSrc[:]) || sport != wantSport {
		t.Fatalf("packet %d in: %v:%d -> %v:%d", i, ip.SrcIP, sport, ip.DstIP, dport)
	}
	if partial && !partialValid(t, out, vnet) || !partial && !checksumsValid(t, out) {
		t.Fatalf("packet %d in (partial %v): checksums wrong\n%x", i, partial, out)
	}
	// The real server's reply comes back rewritten to VIP:80 -> client.
	rf := frame(randomFrame(t, r, proto, rip, 8080, [4]byte(ip.SrcIP.To4()), sport, false))
	copy(rf.Data[0:6], dirMAC2[:])
	if partial {
		makePartial(&rf)
	}
	if v := rig.send(rf); v != Forwarded {
		t.Fatalf("packet %d reply: verdict %v", i, v)
	}
	back, bvnet := rig.last(rig.lan)
	bip, bsport, bdport := decode(t, back)
	if !bytes.Equal(bip.SrcIP.To4(), vip[:]) || bsport != 80 || !bytes.Equal(bip.DstIP.To4(), clientIP[:]) || bdport != cport {
		t.Fatalf("packet %d reply: %v:%d -> %v:%d", i, bip.SrcIP, bsport, bip.DstIP, bdport)
	}
	if !bytes.Equal(back[0:6], clientMAC[:]) {
		t.Fatalf("packet %d reply: to %x, not where the client's frames came from", i, back[0:6])
	}
	if partial && !partialValid(t, back, bvnet) || !partial && !checksumsValid(t, back) {
		t.Fatalf("packet %d reply (partial %v): checksums wrong", i, partial)
	}
}

// checkTunnel checks an IPIP packet: the outer header as
// ip_vs_tunnel_xmit writes it, the inner one the client's packet with its
// TTL one less and every checksum complete.
func checkTunnel(t *testing.T, in, out []byte, i int) {
	p := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
	outer, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if outer == nil || outer.Protocol != layers.IPProtocolIPv4 {
		t.Fatalf("packet %d: no IPIP outer header", i)
	}
	inIP := hdr.IPv4(in[hdr.EthernetLen:])
	if !bytes.Equal(outer.SrcIP.To4(), dirAddr2[:]) || !bytes.Equal(outer.DstIP.To4(), rip[:]) ||
		outer.TTL != inIP.TTL()-1 || outer.TOS != inIP.TOS() ||
		(outer.Flags&layers.IPv4DontFragment != 0) != inIP.DontFragment() {
		t.Fatalf("packet %d: outer %v -> %v TTL %d TOS %d flags %v", i, outer.SrcIP, outer.DstIP, outer.TTL, outer.TOS, outer.Flags)
	}
	if textbookChecksum(out[hdr.EthernetLen:hdr.EthernetLen+20]) != 0 {
		t.Fatalf("packet %d: outer checksum", i)
	}
	inner := out[hdr.EthernetLen+outerLen:]
	frameInner := append(append([]byte(nil), out[:hdr.EthernetLen]...), inner...)
	if !checksumsValid(t, frameInner) {
		t.Fatalf("packet %d: inner checksums not complete", i)
	}
	if int(hdr.IPv4(inner).TTL()) != int(inIP.TTL())-1 {
		t.Fatalf("packet %d: inner TTL", i)
	}
}

func TestTTLExceededAnswered(t *testing.T) {
	for _, fwd := range []service.Forward{service.Route, service.Masq, service.FullNAT, service.Tunnel} {
		rig := newModeRig(t, fwd, hdr.ProtoTCP)
		r := rand.New(rand.NewPCG(1, 2))
		f := frame(randomFrame(t, r, hdr.ProtoTCP, clientIP, 40000, vip, 80, true))
		ip := hdr.IPv4(f.Data[hdr.EthernetLen:])
		ip.SetTTLWithChecksumUpdate(1)
		if v := rig.send(f); v != TTLExceeded {
			t.Fatalf("%v: verdict %v, want TTL exceeded", fwd, v)
		}
		icmp, _ := rig.last(rig.lan)
		p := gopacket.NewPacket(icmp, layers.LayerTypeEthernet, gopacket.Default)
		ic, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		oip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if ic == nil || ic.TypeCode.Type() != 11 || !bytes.Equal(oip.DstIP.To4(), clientIP[:]) ||
			!bytes.Equal(oip.SrcIP.To4(), []byte{192, 168, 150, 1}) || !bytes.Equal(icmp[0:6], clientMAC[:]) {
			t.Fatalf("%v: answer %x", fwd, icmp)
		}
		if len(rig.real.sent) != 0 {
			t.Fatalf("%v: the packet went on", fwd)
		}
	}
}

// TestTunnelTooBig: a packet that does not fit the egress MTU with its
// outer header gets fragmentation-needed (MTU-20, from the VIP) if DF is
// set, and is sent as fragments otherwise.
func TestTunnelTooBig(t *testing.T) {
	rig := newModeRig(t, service.Tunnel, hdr.ProtoUDP)
	big := func(df bool) afpacket.Frame {
		s := frameSpec{dstMAC: directorMAC, src: clientIP, dst: vip, proto: hdr.ProtoUDP, sport: 5000, dport: 80, payload: 1472}
		b := s.build()
		ip := hdr.IPv4(b[hdr.EthernetLen:])
		if df {
			ip[6] = 0x40 // DF (frameSpec leaves the flags clear)
		}
		ip.SetChecksum(0)
		ip.SetChecksum(ip.ComputeChecksum())
		u := hdr.UDP(b[hdr.EthernetLen+20:])
		u.SetChecksum(hdr.TransportChecksum(ip.Source(), ip.Destination(), hdr.ProtoUDP, b[hdr.EthernetLen+20:]))
		return frame(b)
	}
	if v := rig.send(big(true)); v != FragNeeded {
		t.Fatalf("DF: verdict %v", v)
	}
	icmp, _ := rig.last(rig.lan)
	p := gopacket.NewPacket(icmp, layers.LayerTypeEthernet, gopacket.Default)
	ic, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	oip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if ic == nil || ic.TypeCode.Type() != 3 || ic.TypeCode.Code() != 4 || binary.BigEndian.Uint16(icmp[len(icmp)-len(ic.Payload)-2:]) != uint16(tunnelMTU-20) ||
		!bytes.Equal(oip.SrcIP.To4(), vip[:]) {
		t.Fatalf("fragmentation-needed %x", icmp)
	}
	sentBefore := len(rig.real.sent)
	if v := rig.send(big(false)); v != Forwarded {
		t.Fatalf("no DF: verdict %v", v)
	}
	frags := rig.real.sent[sentBefore:]
	if len(frags) != 2 || rig.w.Stats().Fragmented != 1 || rig.w.Stats().FragNeeded != 1 {
		t.Fatalf("%d fragments, stats %+v", len(frags), rig.w.Stats())
	}
	for _, fr := range frags {
		if len(fr)-hdr.EthernetLen > tunnelMTU || textbookChecksum(fr[hdr.EthernetLen:hdr.EthernetLen+20]) != 0 {
			t.Fatalf("fragment of %d bytes", len(fr))
		}
	}
}

// TestTunnelSegmentsSuperFrames: a GSO super-frame is cut into segments
// before it is wrapped, each a complete packet.
func TestTunnelSegmentsSuperFrames(t *testing.T) {
	rig := newModeRig(t, service.Tunnel, hdr.ProtoTCP)
	r := rand.New(rand.NewPCG(3, 4))
	rig.send(frame(randomFrame(t, r, hdr.ProtoTCP, clientIP, 41000, vip, 80, true)))
	s := tcpFrame(41000, hdr.TCPFlagACK)
	s.payload = 10000
	f := frame(s.build())
	makePartial(&f)
	f.VNet.GSOType = afpacket.GSOTCPv4
	f.VNet.GSOSize = 1400
	before := len(rig.real.sent)
	if v := rig.send(f); v != Forwarded {
		t.Fatalf("verdict %v", v)
	}
	segs := rig.real.sent[before:]
	if len(segs) != 8 { // ceil(10000/1400)
		t.Fatalf("%d segments", len(segs))
	}
	total := 0
	for _, sg := range segs {
		inner := append(append([]byte(nil), sg[:hdr.EthernetLen]...), sg[hdr.EthernetLen+outerLen:]...)
		if !checksumsValid(t, inner) {
			t.Fatal("a segment's checksums are not complete")
		}
		ip := hdr.IPv4(inner[hdr.EthernetLen:])
		total += ip.TotalLen() - 40
		if len(sg)-hdr.EthernetLen > tunnelMTU {
			t.Fatalf("segment of %d bytes over the MTU", len(sg))
		}
	}
	if total != 10000 {
		t.Fatalf("segments carry %d bytes", total)
	}
}

// TestFullNATPorts: local ports are unique while in use and come back
// when connections end.
func TestFullNATPorts(t *testing.T) {
	rig := newModeRig(t, service.FullNAT, hdr.ProtoTCP)
	r := rand.New(rand.NewPCG(5, 6))
	seen := map[uint16]bool{}
	for i := range 200 {
		f := frame(randomFrame(t, r, hdr.ProtoTCP, clientIP, uint16(20000+i), vip, 80, true))
		if v := rig.send(f); v != Forwarded {
			t.Fatal(v)
		}
		out, _ := rig.last(rig.real)
		_, sport, _ := decode(t, out)
		if seen[sport] {
			t.Fatalf("local port %d handed out twice", sport)
		}
		seen[sport] = true
	}
	pools := rig.w.e.cfg.Ports
	if n := pools.InUse(laddr, hdr.ProtoTCP); n != 200 {
		t.Fatalf("%d ports in use, want 200", n)
	}
	rig.conns.Clear()
	if n := pools.InUse(laddr, hdr.ProtoTCP); n != 0 {
		t.Fatalf("%d ports in use after the connections ended", n)
	}
}

// TestICMPRelay: a router's fragmentation-needed about a real server's
// reply (VIP:80 -> client) reaches the real server, rewritten for NAT.
func TestICMPRelay(t *testing.T) {
	for _, fwd := range []service.Forward{service.Route, service.Masq, service.Tunnel} {
		rig := newModeRig(t, fwd, hdr.ProtoTCP)
		r := rand.New(rand.NewPCG(7, 8))
		rig.send(frame(randomFrame(t, r, hdr.ProtoTCP, clientIP, 42000, vip, 80, true)))
		// The packet the router could not pass: VIP:80 -> client:42000.
		quoted := randomFrame(t, r, hdr.ProtoTCP, vip, 80, clientIP, 42000, false)[hdr.EthernetLen:]
		buf := make([]byte, 1500)
		n, err := hdr.BuildICMPv4Error(buf[hdr.EthernetLen:], 3, 4, 1400, [4]byte{192, 168, 150, 254}, vip, 64, quoted)
		if err != nil {
			t.Fatal(err)
		}
		e := hdr.Ethernet(buf)
		e.SetDestination(directorMAC)
		e.SetSource(clientMAC)
		e.SetType(hdr.EtherTypeIPv4)
		before := len(rig.real.sent)
		if v := rig.send(frame(buf[:hdr.EthernetLen+n])); v != Forwarded {
			t.Fatalf("%v: verdict %v", fwd, v)
		}
		if len(rig.real.sent) != before+1 || rig.w.Stats().ICMPRelayed != 1 {
			t.Fatalf("%v: relayed %d", fwd, rig.w.Stats().ICMPRelayed)
		}
		out, _ := rig.last(rig.real)
		if fwd == service.Masq {
			p := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
			oip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			ic := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
			q := hdr.IPv4(ic.Payload)
			if !bytes.Equal(oip.DstIP.To4(), rip[:]) || q.Source() != rip || binary.BigEndian.Uint16(ic.Payload[q.HeaderLen():]) != 8080 {
				t.Fatalf("NAT relay: outer to %v, quoted from %v", oip.DstIP, q.Source())
			}
			icmp := out[hdr.EthernetLen+20:]
			if textbookChecksum(icmp) != 0 || textbookChecksum(out[hdr.EthernetLen:hdr.EthernetLen+20]) != 0 {
				t.Fatal("NAT relay: checksums")
			}
		}
	}
}

// TestModeAllocs: the whole handle path of every mode, both directions
// where there are two, allocates nothing per frame.
func TestModeAllocs(t *testing.T) {
	for _, fwd := range []service.Forward{service.Route, service.Masq, service.FullNAT, service.Tunnel} {
		rig := newModeRig(t, fwd, hdr.ProtoTCP)
		r := rand.New(rand.NewPCG(9, 10))
		syn := frame(randomFrame(t, r, hdr.ProtoTCP, clientIP, 43000, vip, 80, true))
		rig.send(syn)
		ack := frame(randomFrame(t, r, hdr.ProtoTCP, clientIP, 43000, vip, 80, false))
		tx := &countTX{}
		rig.w.egress[0].TX, rig.w.egress[1].TX = tx, tx
		snap := rig.svc.Load()
		now := conntrack.Now()
		frames := []*afpacket.Frame{&ack}
		if fwd == service.Masq || fwd == service.FullNAT {
			out, _ := rig.last(rig.real)
			_, sport, _ := decode(t, out)
			src := clientIP
			if fwd == service.FullNAT {
				src = laddr
			}
			reply := frame(randomFrame(t, r, hdr.ProtoTCP, rip, 8080, src, sport, false))
			frames = append(frames, &reply)
		}
		for _, f := range frames {
			data := append([]byte(nil), f.Data...)
			if n := testing.AllocsPerRun(500, func() {
				copy(f.Data, data) // TUN rewrites the received frame in place
				if v := rig.w.handle(f, now, snap); v != Forwarded {
					t.Fatalf("%v: %v", fwd, v)
				}
			}); n != 0 {
				t.Errorf("%v: %v allocs per frame", fwd, n)
			}
		}
	}
}

func BenchmarkHandle(b *testing.B) {
	for _, tc := range []struct {
		name string
		fwd  service.Forward
	}{{"DR", service.Route}, {"NAT", service.Masq}, {"FULLNAT", service.FullNAT}, {"TUN", service.Tunnel}} {
		b.Run(tc.name, func(b *testing.B) {
			rig := newModeRig(&testing.T{}, tc.fwd, hdr.ProtoUDP)
			r := rand.New(rand.NewPCG(11, 12))
			const flows = 1024
			frames := make([]afpacket.Frame, flows)
			datas := make([][]byte, flows)
			for i := range frames {
				s := frameSpec{dstMAC: directorMAC, src: clientIP, dst: vip, proto: hdr.ProtoUDP, sport: uint16(10000 + i), dport: 80, payload: 64 - 42}
				frames[i] = frame(s.build())
				datas[i] = append([]byte(nil), frames[i].Data...)
				_ = r
			}
			tx := &countTX{}
			rig.w.egress[0].TX, rig.w.egress[1].TX = tx, tx
			snap := rig.svc.Load()
			now := conntrack.Now()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				copy(frames[i].Data, datas[i])
				rig.w.handle(&frames[i], now, snap)
				i = (i + 1) % flows
			}
		})
	}
}

// BenchmarkHandleFlows is the per-frame cost of DR and NAT with the
// connection table holding 1 K and 1 M flows, every flow already known:
// the cost of the table's size, as the bench tool's many-flows point
// measures it end to end. The flows are visited in a shuffled order.
func BenchmarkHandleFlows(b *testing.B) {
	for _, tc := range []struct {
		name string
		fwd  service.Forward
	}{{"DR", service.Route}, {"NAT", service.Masq}} {
		for _, flows := range []int{1 << 10, 1 << 20} {
			b.Run(fmt.Sprintf("%s/flows=%d", tc.name, flows), func(b *testing.B) {
				rig := newModeRig(&testing.T{}, tc.fwd, hdr.ProtoUDP)
				tx := &countTX{}
				rig.w.egress[0].TX, rig.w.egress[1].TX = tx, tx
				snap := rig.svc.Load()
				now := conntrack.Now()
				base := tcpFrame(0, 0)
				base.proto, base.payload = hdr.ProtoUDP, 64-42
				tmpl := base.build()
				buf := make([]byte, len(tmpl))
				order := rand.New(rand.NewPCG(1, 2)).Perm(flows)
				src := func(i int) ([4]byte, uint16) {
					return [4]byte{192, 168, byte(100 + i>>16), byte(i >> 8)}, uint16(10000 + i&0xff)
				}
				build := func(i int) afpacket.Frame {
					s := base
					s.src, s.sport = src(i)
					copy(buf, s.build())
					return frame(buf)
				}
				for i := range flows { // every flow known before the clock starts
					f := build(i)
					rig.w.handle(&f, now, snap)
				}
				if n := rig.conns.Len(); n != flows {
					b.Fatalf("%d connections after the set-up, want %d", n, flows)
				}
				frames := make([]afpacket.Frame, 1024)
				datas := make([][]byte, len(frames))
				var tally [numReasons]uint16
				b.ReportAllocs()
				b.ResetTimer()
				for n := 0; b.Loop(); n++ {
					j := n % len(frames)
					if j == 0 {
						// The next 1024 flows of the shuffled order,
						// built outside the measured time.
						b.StopTimer()
						for k := range frames {
							s := base
							s.src, s.sport = src(order[(n+k)%flows])
							datas[k] = s.build()
							frames[k] = frame(append([]byte(nil), datas[k]...))
						}
						b.StartTimer()
					}
					// A batch of BatchSize frames at a time, as the
					// worker takes them from its ring; the other
					// iterations of the batch are its frames.
					if j%BatchSize == 0 {
						rig.w.handleBatch(frames[j:j+BatchSize], now, snap, &tally)
					}
				}
				b.StopTimer()
				if n := rig.conns.Len(); n != flows {
					b.Fatalf("%d connections at the end, want %d", n, flows)
				}
			})
		}
	}
}

// directTX is a fakeTX that also sends frames of min bytes or more
// directly (a directSender), recording them with the slot ones.
type directTX struct {
	*fakeTX
	min    int
	direct int
}

func (t *directTX) DirectMin() int { return t.min }
func (t *directTX) SendDirect(v *afpacket.VNetHdr, b []byte) error {
	t.sent = append(t.sent, bytes.Clone(b))
	t.vnets = append(t.vnets, *v)
	t.direct++
	return nil
}

// newDirectRig is newModeRig with transmitters that send frames of 1000
// bytes or more directly: [0] the client side's, [1] the real server's.
func newDirectRig(t *testing.T, fwd service.Forward) (*modeRig, [2]*directTX) {
	rig := newModeRig(t, fwd, hdr.ProtoTCP)
	var dtx [2]*directTX
	for i, ftx := range []*fakeTX{rig.lan, rig.real} {
		dtx[i] = &directTX{fakeTX: ftx, min: 1000}
		eg := &rig.w.egress[i]
		eg.TX, eg.direct, eg.directMin = dtx[i], dtx[i], dtx[i].min
	}
	return rig, dtx
}

// superFrame is a 10 000-byte TCP super-frame of the connection from
// client port 41000, its checksum left to offload.
func superFrame() afpacket.Frame {
	s := tcpFrame(41000, hdr.TCPFlagACK)
	s.payload = 10000
	f := frame(s.build())
	makePartial(&f)
	f.VNet.GSOType, f.VNet.GSOSize = afpacket.GSOTCPv4, 1448
	return f
}

// TestSuperFramesSentDirect: with a transmitter that sends large frames
// directly, a super-frame is rewritten in its receive slot and handed to
// SendDirect, and leaves exactly as it leaves through a transmit slot;
// small frames still go through the slots.
func TestSuperFramesSentDirect(t *testing.T) {
	for _, fwd := range []service.Forward{service.Route, service.Masq, service.FullNAT} {
		t.Run(fwd.String(), func(t *testing.T) {
			slots := newModeRig(t, fwd, hdr.ProtoTCP)
			direct, dtx := newDirectRig(t, fwd)
			r := rand.New(rand.NewPCG(5, 6))
			syn := randomFrame(t, r, hdr.ProtoTCP, clientIP, 41000, vip, 80, true)
			for _, rig := range []*modeRig{slots, direct} {
				if v := rig.send(frame(bytes.Clone(syn))); v != Forwarded {
					t.Fatalf("SYN: verdict %v", v)
				}
				if v := rig.send(superFrame()); v != Forwarded {
					t.Fatalf("super-frame: verdict %v", v)
				}
			}
			if dtx[1].direct != 1 || dtx[0].direct != 0 {
				t.Fatalf("sent directly: %d frames to the real server, %d to the client; want 1 and 0 (the SYN through a slot)", dtx[1].direct, dtx[0].direct)
			}
			want, wantV := slots.last(slots.real)
			got, gotV := direct.last(direct.real)
			if !bytes.Equal(got, want) || gotV != wantV {
				t.Errorf("sent directly:\n%x %+v\nthrough a slot:\n%x %+v", got[:64], gotV, want[:64], wantV)
			}
			if !bytes.Equal(direct.w.frames[0].Data, want) {
				t.Error("the frame was not rewritten in its receive slot")
			}
		})
	}
}
