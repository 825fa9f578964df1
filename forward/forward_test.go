package forward

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/gvs-project/gvs/conntrack"
	"github.com/gvs-project/gvs/internal/afpacket"
	"github.com/gvs-project/gvs/internal/hdr"
	"github.com/gvs-project/gvs/service"
)

// The seed lab's addresses.
var (
	clientMAC   = [6]byte{0x02, 0, 0, 0, 0, 0x0a}
	directorMAC = [6]byte{0x02, 0, 0, 0, 0, 0x01}
	rs12MAC     = [6]byte{0x02, 0, 0, 0, 0, 0x12}
	rs13MAC     = [6]byte{0x02, 0, 0, 0, 0, 0x13}
	clientIP    = [4]byte{192, 168, 150, 10}
	vip         = [4]byte{192, 168, 150, 100}
)

const ifindex = 2

// fakeHop is a real server's next hop.
type fakeHop struct {
	mac     [6]byte
	ok      bool
	ifindex int
	drops   int
}

func (h *fakeHop) MAC() ([6]byte, bool) { return h.mac, h.ok }
func (h *fakeHop) Ifindex() int         { return h.ifindex }
func (h *fakeHop) Drop()                { h.drops++ }

// fakeTX records committed frames.
type fakeTX struct {
	slot    [70000]byte
	vnet    afpacket.VNetHdr
	full    bool
	sent    [][]byte
	vnets   []afpacket.VNetHdr
	flushes int
	pending int
}

func (t *fakeTX) Slot() (*afpacket.VNetHdr, []byte, bool) {
	if t.full {
		return nil, nil, false
	}
	t.vnet = afpacket.VNetHdr{}
	return &t.vnet, t.slot[:], true
}
func (t *fakeTX) Commit(n int) {
	t.sent = append(t.sent, append([]byte(nil), t.slot[:n]...))
	t.vnets = append(t.vnets, t.vnet)
	t.pending++
}
func (t *fakeTX) Flush() error { t.flushes++; t.pending = 0; return nil }

// frameSpec builds test frames, like wireguard-go's tcp4Packet.
type frameSpec struct {
	dstMAC    [6]byte
	etherType uint16
	src, dst  [4]byte
	proto     uint8
	sport     uint16
	dport     uint16
	flags     uint8
	payload   int
	ihl       int // header length in bytes; 0 means 20
	fragOff   uint16
	cut       int // bytes cut off the end, the IP total length following
}

func tcpFrame(sport uint16, flags uint8) frameSpec {
	return frameSpec{dstMAC: directorMAC, src: clientIP, dst: vip, proto: hdr.ProtoTCP, sport: sport, dport: 80, flags: flags}
}

func (s frameSpec) build() []byte {
	ihl := s.ihl
	if ihl == 0 {
		ihl = 20
	}
	l4len := hdr.UDPLen
	if s.proto == hdr.ProtoTCP {
		l4len = hdr.TCPMinLen
	}
	total := ihl + l4len + s.payload
	b := make([]byte, hdr.EthernetLen+total)
	e := hdr.Ethernet(b)
	e.SetDestination(s.dstMAC)
	e.SetSource(clientMAC)
	et := s.etherType
	if et == 0 {
		et = hdr.EtherTypeIPv4
	}
	e.SetType(et)
	ip := hdr.IPv4(b[hdr.EthernetLen:])
	ip.Encode(&hdr.IPv4Fields{TotalLen: uint16(total), ID: 0x1234, DF: true, TTL: 64, Protocol: s.proto, Src: s.src, Dst: s.dst})
	if ihl != 20 {
		ip[0] = 4<<4 | byte(ihl/4)
	}
	binary.BigEndian.PutUint16(ip[6:], s.fragOff)
	ip.SetChecksum(0)
	ip.SetChecksum(ip.ComputeChecksum())
	l4 := b[hdr.EthernetLen+ihl:]
	binary.BigEndian.PutUint16(l4[0:], s.sport)
	binary.BigEndian.PutUint16(l4[2:], s.dport)
	if s.proto == hdr.ProtoTCP {
		l4[12] = 5 << 4
		l4[13] = s.flags
	} else {
		binary.BigEndian.PutUint16(l4[4:], uint16(hdr.UDPLen+s.payload))
	}
	for i := range s.payload {
		l4[l4len+i] = byte(i)
	}
	if s.cut > 0 {
		b = b[:len(b)-s.cut]
		binary.BigEndian.PutUint16(ip[2:], uint16(total-s.cut))
		ip.SetChecksum(0)
		ip.SetChecksum(ip.ComputeChecksum())
	}
	return b
}

type rig struct {
	t        *testing.T
	services *service.Table
	conns    *conntrack.Table[*service.Real]
	w        *Worker
	tx       *fakeTX
	hops     map[string]*fakeHop
}

// newRig sets up the seed lab's service: TCP 192.168.150.100:80 rr with
// .12 and then .13 (DR, weight 1), and UDP :53 with .12.
func newRig(t *testing.T) *rig {
	r := &rig{t: t, services: service.New(), conns: conntrack.New[*service.Real](nil), tx: &fakeTX{},
		hops: map[string]*fakeHop{
			"192.168.150.12": {mac: rs12MAC, ok: true, ifindex: ifindex},
			"192.168.150.13": {mac: rs13MAC, ok: true, ifindex: ifindex},
		}}
	tcp := service.KeyOf(6, netip.AddrFrom4(vip), 80)
	udp := service.KeyOf(17, netip.AddrFrom4(vip), 53)
	real := func(svc service.Key, addr string) service.Op {
		return service.Op{Kind: service.AddReal, Service: svc, Real: service.RealSpec{
			Addr: netip.MustParseAddr(addr), Port: svc.Port, Forward: service.Route, Weight: 1}}
	}
	_, err := r.services.Apply([]service.Op{
		{Kind: service.AddService, Service: tcp, Settings: service.Settings{Scheduler: "rr"}},
		real(tcp, "192.168.150.12"),
		real(tcp, "192.168.150.13"),
		{Kind: service.AddService, Service: udp, Settings: service.Settings{Scheduler: "rr"}},
		real(udp, "192.168.150.12"),
	}, func(p *service.Plan) error {
		for _, nr := range p.NewReals {
			nr.SetLink(&service.Link{Hop: r.hops[nr.Addr.String()]})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e := New(Config{Services: r.services, Conns: r.conns})
	r.w = e.AddWorker("test", ifindex, nil, []Egress{{Ifindex: ifindex, MAC: directorMAC, Addr: [4]byte{192, 168, 150, 1}, TX: r.tx}})
	return r
}

// send runs one frame through the worker as one batch.
func (r *rig) send(f afpacket.Frame) Reason {
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

// textbookChecksum is RFC 1071's Internet checksum, a 16-bit word at a
// time: the tests' own, independent of internal/hdr.
func textbookChecksum(b []byte) uint16 {
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
	return ^uint16(s)
}

type nopRX struct{}

func (nopRX) Receive([]afpacket.Frame) (int, error) { return 0, nil }
func (nopRX) Release()                              {}

func frame(b []byte) afpacket.Frame {
	return afpacket.Frame{Data: b, Len: len(b), PktType: afpacket.PacketHost}
}

// TestDRRewrite: golden fixtures in Katran's form: input frame, expected
// verdict, expected output frame.
func TestDRRewrite(t *testing.T) {
	r := newRig(t)
	in := tcpFrame(40000, hdr.TCPFlagSYN).build()
	if v := r.send(frame(in)); v != Forwarded {
		t.Fatalf("SYN: verdict %v, want forwarded", v)
	}
	if len(r.tx.sent) != 1 || r.tx.flushes != 1 {
		t.Fatalf("sent %d frames with %d flushes, want 1 and 1", len(r.tx.sent), r.tx.flushes)
	}
	out := r.tx.sent[0]
	// rr's first pick is the server added last: .13. The MACs change, and
	// the TTL drops by one (IPVS decrements it in every mode) with the
	// header checksum following; nothing else changes.
	want := append([]byte(nil), in...)
	copy(want[0:6], rs13MAC[:])
	copy(want[6:12], directorMAC[:])
	want[hdr.EthernetLen+8]--
	want[hdr.EthernetLen+10], want[hdr.EthernetLen+11] = 0, 0
	c := textbookChecksum(want[hdr.EthernetLen : hdr.EthernetLen+20])
	want[hdr.EthernetLen+10], want[hdr.EthernetLen+11] = byte(c>>8), byte(c)
	if !bytes.Equal(out, want) {
		t.Fatalf("DR output:\n got %x\nwant %x", out, want)
	}
	if r.tx.vnets[0] != (afpacket.VNetHdr{}) {
		t.Errorf("vnet header %+v, want zero for a plain frame", r.tx.vnets[0])
	}
}

func TestFlowsStickAndAlternate(t *testing.T) {
	r := newRig(t)
	macOf := func(i int) [6]byte { return [6]byte(r.tx.sent[i][0:6]) }
	// Four connections: rr alternates .13, .12, .13, .12.
	for i := range 4 {
		if v := r.send(frame(tcpFrame(uint16(41000+i), hdr.TCPFlagSYN).build())); v != Forwarded {
			t.Fatalf("SYN %d: %v", i, v)
		}
	}
	wantOrder := [][6]byte{rs13MAC, rs12MAC, rs13MAC, rs12MAC}
	for i, w := range wantOrder {
		if macOf(i) != w {
			t.Errorf("connection %d went to %x, want %x", i, macOf(i), w)
		}
	}
	// Every later packet of each flow goes where its SYN went.
	for round := range 3 {
		for i := range 4 {
			flags := uint8(hdr.TCPFlagACK)
			if round == 2 {
				flags |= hdr.TCPFlagFIN
			}
			n := len(r.tx.sent)
			if v := r.send(frame(tcpFrame(uint16(41000+i), flags).build())); v != Forwarded {
				t.Fatalf("round %d flow %d: %v", round, i, v)
			}
			if macOf(n) != wantOrder[i] {
				t.Fatalf("round %d: flow %d moved to %x", round, i, macOf(n))
			}
		}
	}
	// Counters as ipvsadm shows them: 2 connections per real server,
	// inactive after the FINs (FIN_WAIT), 4 packets each.
	for _, s := range r.services.Services() {
		if s.Key.Port != 80 {
			continue
		}
		if s.Conns.Load() != 4 || s.InPkts.Load() != 16 {
			t.Errorf("service counters: conns %d pkts %d, want 4 and 16", s.Conns.Load(), s.InPkts.Load())
		}
		for _, rs := range s.Reals() {
			if rs.Active() != 0 || rs.Inactive() != 2 || rs.Conns.Load() != 2 {
				t.Errorf("%v: active %d inactive %d conns %d, want 0 2 2", rs.Addr, rs.Active(), rs.Inactive(), rs.Conns.Load())
			}
		}
	}
}

func TestVerdicts(t *testing.T) {
	syn := tcpFrame(42000, hdr.TCPFlagSYN)
	mod := func(f func(*frameSpec)) []byte { s := syn; f(&s); return s.build() }
	tests := []struct {
		name  string
		frame afpacket.Frame
		want  Reason
	}{
		{"SYN", frame(syn.build()), Forwarded},
		{"UDP datagram", frame(mod(func(s *frameSpec) { s.proto = hdr.ProtoUDP; s.dport = 53; s.payload = 10 })), Forwarded},
		{"ACK without a connection", frame(tcpFrame(42001, hdr.TCPFlagACK).build()), NoConn},
		{"SYN+RST", frame(tcpFrame(42002, hdr.TCPFlagSYN|hdr.TCPFlagRST).build()), BadFlags},
		{"other port", frame(mod(func(s *frameSpec) { s.dport = 81 })), NoService},
		{"other address", frame(mod(func(s *frameSpec) { s.dst = [4]byte{192, 168, 150, 101} })), NotOurs},
		{"UDP to the TCP port", frame(mod(func(s *frameSpec) { s.proto = hdr.ProtoUDP })), NoService},
		{"ARP", frame(mod(func(s *frameSpec) { s.etherType = hdr.EtherTypeARP })), NotIPv4},
		{"802.1Q in band", frame(mod(func(s *frameSpec) { s.etherType = hdr.EtherTypeVLAN })), VLAN},
		{"first fragment", frame(mod(func(s *frameSpec) { s.fragOff = 0x2000 })), Forwarded},
		{"later fragment, first not seen", frame(mod(func(s *frameSpec) { s.fragOff = 0x0010 })), Fragment},
		{"IHL below 5", frame(mod(func(s *frameSpec) { s.ihl = 16 })), Malformed},
		{"IP options", frame(mod(func(s *frameSpec) { s.ihl = 24 })), Forwarded},
		{"short", frame(syn.build()[:30]), Malformed},
		{"TCP header cut", frame(syn.build()[:hdr.EthernetLen+20+10]), Malformed},
		{"TCP header cut, IP length agreeing", frame(mod(func(s *frameSpec) { s.cut = 10 })), MalformedL4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			if v := r.send(tt.frame); v != tt.want {
				t.Fatalf("verdict %v, want %v", v, tt.want)
			}
			if sent := len(r.tx.sent); (tt.want == Forwarded) != (sent == 1) {
				t.Fatalf("%d frames sent for verdict %v", sent, tt.want)
			}
		})
	}

	t.Run("not addressed to us", func(t *testing.T) {
		r := newRig(t)
		f := frame(syn.build())
		f.PktType = afpacket.PacketOtherHost
		if v := r.send(f); v != NotHost {
			t.Fatalf("verdict %v", v)
		}
	})
	t.Run("stripped VLAN tag", func(t *testing.T) {
		r := newRig(t)
		f := frame(syn.build())
		f.Status = afpacket.StatusVLANValid
		if v := r.send(f); v != VLAN {
			t.Fatalf("verdict %v", v)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		r := newRig(t)
		f := frame(mod(func(s *frameSpec) { s.payload = 100 }))
		f.Len = len(f.Data)
		f.Data = f.Data[:80]
		if v := r.send(f); v != Truncated {
			t.Fatalf("verdict %v", v)
		}
	})
	t.Run("MAC unresolved", func(t *testing.T) {
		r := newRig(t)
		r.hops["192.168.150.13"].ok = false
		if v := r.send(frame(syn.build())); v != Unresolved {
			t.Fatalf("verdict %v", v)
		}
		if r.hops["192.168.150.13"].drops != 1 {
			t.Fatal("the hop did not count the drop")
		}
	})
	t.Run("no egress", func(t *testing.T) {
		r := newRig(t)
		r.hops["192.168.150.13"].ifindex = 99
		if v := r.send(frame(syn.build())); v != NoEgress {
			t.Fatalf("verdict %v", v)
		}
	})
	t.Run("transmit ring full", func(t *testing.T) {
		r := newRig(t)
		r.tx.full = true
		if v := r.send(frame(syn.build())); v != TxFull {
			t.Fatalf("verdict %v", v)
		}
	})
	t.Run("all quiesced", func(t *testing.T) {
		r := newRig(t)
		for _, s := range r.services.Services() {
			for _, rs := range s.Reals() {
				rs.SetWeight(0)
			}
		}
		if v := r.send(frame(syn.build())); v != NoDest {
			t.Fatalf("verdict %v", v)
		}
	})
	t.Run("table full", func(t *testing.T) {
		r := newRig(t)
		r.conns = conntrack.New[*service.Real](&conntrack.Config{MaxEntries: 1})
		r.w.e.cfg.Conns = r.conns
		r.send(frame(syn.build()))
		s := syn
		s.flags = hdr.TCPFlagACK
		r.send(frame(s.build())) // established: not evictable
		if v := r.send(frame(tcpFrame(42100, hdr.TCPFlagSYN).build())); v != TableFull {
			t.Fatalf("verdict %v", v)
		}
	})
}

// TestGROFrameGetsPartialChecksum: a NIC's GRO super-frame (DataValid,
// GSO) leaves with a partial checksum over the whole segment.
func TestGROFrameGetsPartialChecksum(t *testing.T) {
	r := newRig(t)
	s := tcpFrame(43000, hdr.TCPFlagSYN)
	r.send(frame(s.build()))
	s.flags = hdr.TCPFlagACK
	s.payload = 3000
	f := frame(s.build())
	f.VNet = afpacket.VNetHdr{Flags: afpacket.DataValid, GSOType: afpacket.GSOTCPv4, GSOSize: 1448, HdrLen: 54}
	if v := r.send(f); v != Forwarded {
		t.Fatalf("verdict %v", v)
	}
	v := r.tx.vnets[1]
	if v.Flags != afpacket.NeedsCsum || v.CsumStart != 34 || v.CsumOffset != 16 || v.GSOType != afpacket.GSOTCPv4 || v.GSOSize != 1448 {
		t.Fatalf("vnet %+v", v)
	}
	out := r.tx.sent[1]
	// Completing the checksum as the kernel would must verify.
	seg := append([]byte(nil), out[34:]...)
	partial := binary.BigEndian.Uint16(seg[16:])
	binary.BigEndian.PutUint16(seg[16:], 0)
	full := ^hdr.Fold(hdr.Sum(seg, uint32(partial)))
	binary.BigEndian.PutUint16(seg[16:], full)
	if res := ^hdr.Fold(hdr.Sum(seg, hdr.PseudoHeaderSum(clientIP, vip, 6, len(seg)))); res != 0 {
		t.Fatalf("completed checksum does not verify (residue %#x)", res)
	}
	// A frame that already has a partial checksum keeps its header.
	pf := frame(s.build())
	pf.VNet = afpacket.VNetHdr{Flags: afpacket.NeedsCsum, CsumStart: 34, CsumOffset: 16, GSOType: afpacket.GSOTCPv4, GSOSize: 1448}
	r.send(pf)
	// (Only the TTL and the IP header checksum differ past the MACs.)
	got := append([]byte(nil), r.tx.sent[2][12:]...)
	want := append([]byte(nil), pf.Data[12:]...)
	for _, off := range []int{2 + 8, 2 + 10, 2 + 11} {
		got[off], want[off] = 0, 0
	}
	if r.tx.vnets[2] != pf.VNet || !bytes.Equal(got, want) {
		t.Fatalf("partial-checksum frame changed: %+v", r.tx.vnets[2])
	}
}

func TestHandleAllocs(t *testing.T) {
	r := newRig(t)
	r.tx.sent = nil
	syn := frame(tcpFrame(44000, hdr.TCPFlagSYN).build())
	ack := frame(tcpFrame(44000, hdr.TCPFlagACK).build())
	other := frame(tcpFrame(44000, hdr.TCPFlagACK).build())
	other.Data[33] = 1 // another destination address: not ours
	snap := r.services.Load()
	now := conntrack.Now()
	r.w.handle(&syn, now, snap)
	tx := &countTX{}
	r.w.egress[0].TX = tx
	for _, f := range []*afpacket.Frame{&ack, &other} {
		if n := testing.AllocsPerRun(1000, func() { r.w.handle(f, now, snap) }); n != 0 {
			t.Errorf("handle: %v allocs per frame, want 0", n)
		}
	}
	// A new connection per frame: once the table has held as many
	// connections before (steady state: as many expire as start), the
	// shard maps have room and the free lists hold entries, so scheduling
	// and inserting allocate nothing.
	newConn := func(port uint16) {
		binary.BigEndian.PutUint16(syn.Data[34:], port)
		r.w.handle(&syn, now, snap)
	}
	for port := range uint16(3000) {
		newConn(port + 1)
	}
	now += int64(time.Hour)
	r.conns.Reap(now, r.conns.Size())
	port := uint16(0)
	if n := testing.AllocsPerRun(2000, func() { port++; newConn(port) }); n != 0 {
		t.Errorf("new connections: %v allocs per frame, want 0", n)
	}
}

// countTX counts frames without keeping them.
type countTX struct {
	slot [2048]byte
	vnet afpacket.VNetHdr
	n    int
}

func (t *countTX) Slot() (*afpacket.VNetHdr, []byte, bool) { return &t.vnet, t.slot[:], true }
func (t *countTX) Commit(int)                              { t.n++ }
func (t *countTX) Flush() error                            { return nil }

func BenchmarkHandleDR(b *testing.B) {
	for _, flows := range []int{1, 1024} {
		b.Run(fmt.Sprintf("flows=%d", flows), func(b *testing.B) {
			r := newRig(&testing.T{})
			tx := &countTX{}
			r.w.egress[0].TX = tx
			snap := r.services.Load()
			now := conntrack.Now()
			frames := make([]afpacket.Frame, flows)
			for i := range frames {
				s := tcpFrame(uint16(10000+i), hdr.TCPFlagSYN)
				s.payload = 64 - 54
				f := frame(s.build())
				r.w.handle(&f, now, snap)
				binary.BigEndian.PutUint16(f.Data[hdr.EthernetLen+20+12:], 5<<12|hdr.TCPFlagACK)
				frames[i] = f
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				r.w.handle(&frames[i], now, snap)
				i++
				if i == flows {
					i = 0
				}
			}
		})
	}
}

// TestPersistence: a persistent port-0 service with a /24 granularity
// sends every connection of every client of one /24, to any port, to the
// server its template names, as ip_vs_sched_persist does.
func TestPersistence(t *testing.T) {
	r := newRig(t)
	any := service.KeyOf(6, netip.AddrFrom4(vip), 0)
	_, err := r.services.Apply([]service.Op{
		{Kind: service.AddService, Service: any, Settings: service.Settings{Scheduler: "rr", Persistent: true, Netmask: 24}},
		{Kind: service.AddReal, Service: any, Real: service.RealSpec{Addr: netip.MustParseAddr("192.168.150.12"), Forward: service.Route, Weight: 1}},
		{Kind: service.AddReal, Service: any, Real: service.RealSpec{Addr: netip.MustParseAddr("192.168.150.13"), Forward: service.Route, Weight: 1}},
	}, func(p *service.Plan) error {
		for _, nr := range p.NewReals {
			nr.SetLink(&service.Link{Hop: r.hops[nr.Addr.String()]})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	conn := func(client [4]byte, sport, dport uint16) [6]byte {
		t.Helper()
		s := tcpFrame(sport, hdr.TCPFlagSYN)
		s.src, s.dport = client, dport
		if v := r.send(frame(s.build())); v != Forwarded {
			t.Fatalf("%v:%d -> :%d: %v", client, sport, dport, v)
		}
		return [6]byte(r.tx.sent[len(r.tx.sent)-1][0:6])
	}
	first := conn([4]byte{192, 168, 150, 10}, 50000, 443)
	for i, c := range []struct {
		client [4]byte
		dport  uint16
	}{{[4]byte{192, 168, 150, 10}, 8443}, {[4]byte{192, 168, 150, 10}, 22}, {[4]byte{192, 168, 150, 77}, 443}} {
		if got := conn(c.client, uint16(50001+i), c.dport); got != first {
			t.Fatalf("connection %d went to %x, the template says %x", i, got, first)
		}
	}
	// A client of another /24 gets its own template: rr's next pick.
	other := conn([4]byte{192, 168, 151, 10}, 50100, 443)
	if other == first {
		t.Fatalf("another /24 went to the same server %x; rr should have moved on", other)
	}
	// The templates are listed, with client port 0 and virtual port 0.
	templates := 0
	r.conns.Walk(conntrack.Now(), func(e conntrack.Entry[*service.Real]) bool {
		if e.Template {
			templates++
			if e.Key.ClientPort != 0 || e.Key.VirtualPort != 0 || e.Key.Client[15] != 0 {
				t.Errorf("template key %v", e.Key)
			}
		}
		return true
	})
	if templates != 2 {
		t.Fatalf("%d templates, want 2", templates)
	}
	// Removing the template's server makes the template invalid: the
	// client is scheduled again (ip_vs_check_template).
	firstIP := "192.168.150.12"
	if first == rs13MAC {
		firstIP = "192.168.150.13"
	}
	if _, err := r.services.Apply([]service.Op{{Kind: service.DelReal, Service: any, Real: service.RealSpec{Addr: netip.MustParseAddr(firstIP)}}}, nil); err != nil {
		t.Fatal(err)
	}
	if got := conn([4]byte{192, 168, 150, 10}, 50200, 443); got == first {
		t.Fatalf("a new connection still went to the removed server %x", got)
	}
}

// TestExpireNodestConn: with the switch on, a packet of a removed real
// server's connection removes the entry and is dropped; with it off (the
// default, as IPVS) the flow keeps going.
func TestExpireNodestConn(t *testing.T) {
	for _, on := range []bool{false, true} {
		r := newRig(t)
		r.w.e.cfg.ExpireNodestConn = on
		r.send(frame(tcpFrame(45000, hdr.TCPFlagSYN).build())) // to .13
		tcp := service.KeyOf(6, netip.AddrFrom4(vip), 80)
		if _, err := r.services.Apply([]service.Op{{Kind: service.DelReal, Service: tcp, Real: service.RealSpec{Addr: netip.MustParseAddr("192.168.150.13"), Port: 80}}}, nil); err != nil {
			t.Fatal(err)
		}
		want := Forwarded
		if on {
			want = DestGone
		}
		if v := r.send(frame(tcpFrame(45000, hdr.TCPFlagACK).build())); v != want {
			t.Fatalf("expire_nodest_conn=%v: verdict %v, want %v", on, v, want)
		}
		if on && r.conns.Len() != 0 {
			t.Fatal("the entry survived")
		}
	}
}
