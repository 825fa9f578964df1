package trace

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-project/gvs/arp"
	"github.com/gvs-project/gvs/conntrack"
	"github.com/gvs-project/gvs/forward"
	"github.com/gvs-project/gvs/internal/afpacket"
	"github.com/gvs-project/gvs/service"
)

var (
	clientMAC = mac("02:42:c0:a8:96:0a")
	dirMAC    = mac("02:42:c0:a8:96:01")
	dirMAC2   = mac("02:42:c0:a8:28:01")
	rs13MAC   = mac("02:42:c0:a8:96:0d")
	routerMAC = mac("02:42:c0:a8:28:fe")
	client    = netip.MustParseAddr("192.168.150.10")
	vip       = netip.MustParseAddr("192.168.150.100")
	rs13      = netip.MustParseAddr("192.168.150.13")
	at        = time.Date(2026, 11, 2, 10, 42, 7, 123456000, time.Local)
	ifaces    = []Interface{{Index: 2, Name: "eth0"}, {Index: 3, Name: "eth1"}}
)

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// pkt describes a TCP frame for the tests.
type pkt struct {
	srcMAC, dstMAC net.HardwareAddr
	src, dst       netip.Addr
	sport, dport   uint16
	ttl            uint8
	syn            bool
	outer          *[2]netip.Addr // TUN: an IPIP header from [0] to [1]
}

func (p pkt) bytes(t testing.TB) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: p.srcMAC, DstMAC: p.dstMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: p.ttl, Id: 0x1234, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolTCP,
		SrcIP: p.src.AsSlice(), DstIP: p.dst.AsSlice()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(p.sport), DstPort: layers.TCPPort(p.dport), Seq: 1000, SYN: p.syn, ACK: !p.syn, Window: 64240}
	tcp.SetNetworkLayerForChecksum(ip)
	ls := []gopacket.SerializableLayer{eth, ip, tcp}
	if p.outer != nil {
		outer := &layers.IPv4{Version: 4, TTL: p.ttl, Id: 1, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolIPv4,
			SrcIP: p.outer[0].AsSlice(), DstIP: p.outer[1].AsSlice()}
		ls = []gopacket.SerializableLayer{eth, outer, ip, tcp}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var syn = pkt{srcMAC: clientMAC, dstMAC: dirMAC, src: client, dst: vip, sport: 40312, dport: 80, ttl: 64, syn: true}

func newTap(t *testing.T, cfg Config) (*Tap, *syncBuffer) {
	t.Helper()
	var out syncBuffer
	cfg.Out = &out
	cfg.Interfaces = ifaces
	tap, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tap.Close() })
	return tap, &out
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestTraceText: the blocks the trace prints for DR, NAT and TUN: the
// decision, and exactly the fields each mode changed.
func TestTraceText(t *testing.T) {
	svc := &service.Service{Key: service.KeyOf(6, vip, 80)}
	key := conntrack.KeyV4(6, client.As4(), 40312, vip.As4(), 80)
	for _, tc := range []struct {
		name string
		fwd  service.Forward
		out  pkt
		vnet afpacket.VNetHdr // of the frame sent
		want string
	}{{
		name: "DR",
		fwd:  service.Route,
		out:  pkt{srcMAC: dirMAC, dstMAC: rs13MAC, src: client, dst: vip, sport: 40312, dport: 80, ttl: 63, syn: true},
		want: `trace 10:42:07.123456 eth0 #1: TCP 192.168.150.10:40312 > 192.168.150.100:80 [SYN] -> forwarded, DR to 192.168.150.13
  conn   new entry: NONE -> SYN_RECV
  sched  rr: 192.168.150.13, the next available from the head of the list
  hop    192.168.150.13 on eth0 is 02:42:c0:a8:96:0d (static)
  out    eth0, fields changed:
           eth.dst      02:42:c0:a8:96:01 -> 02:42:c0:a8:96:0d
           eth.src      02:42:c0:a8:96:0a -> 02:42:c0:a8:96:01
           ip.ttl       64 -> 63
           ip.sum       0x7adc -> 0x7bdc
`,
	}, {
		name: "NAT",
		fwd:  service.Masq,
		out:  pkt{srcMAC: dirMAC2, dstMAC: rs13MAC, src: client, dst: netip.MustParseAddr("192.168.10.13"), sport: 40312, dport: 8080, ttl: 63, syn: true},
		vnet: afpacket.VNetHdr{Flags: afpacket.NeedsCsum, CsumStart: 34, CsumOffset: 16},
		want: `trace 10:42:07.123456 eth0 #1: TCP 192.168.150.10:40312 > 192.168.150.100:80 [SYN] -> forwarded, NAT to 192.168.150.13:8080
  conn   new entry: NONE -> SYN_RECV
  sched  rr: 192.168.150.13, the next available from the head of the list
  hop    192.168.150.13 on eth0 is 02:42:c0:a8:96:0d (static)
  out    eth1, fields changed:
           eth.dst      02:42:c0:a8:96:01 -> 02:42:c0:a8:96:0d
           eth.src      02:42:c0:a8:96:0a -> 02:42:c0:a8:28:01
           ip.dst       192.168.150.100 -> 192.168.10.13
           ip.ttl       64 -> 63
           ip.sum       0x7adc -> 0x0834
           tcp.dport    80 -> 8080
           tcp.sum      0x6581 -> 0xd298 (partial: the pseudo-header sum, completed by the kernel on transmit)
`,
	}, {
		name: "TUN",
		fwd:  service.Tunnel,
		out: pkt{srcMAC: dirMAC2, dstMAC: routerMAC, src: client, dst: vip, sport: 40312, dport: 80, ttl: 63, syn: true,
			outer: &[2]netip.Addr{netip.MustParseAddr("192.168.40.1"), rs13}},
		want: `trace 10:42:07.123456 eth0 #1: TCP 192.168.150.10:40312 > 192.168.150.100:80 [SYN] -> forwarded, TUN to 192.168.150.13
  conn   new entry: NONE -> SYN_RECV
  sched  rr: 192.168.150.13, the next available from the head of the list
  hop    192.168.150.13 on eth0 is 02:42:c0:a8:96:0d (static)
  out    eth1, fields changed:
           eth.dst      02:42:c0:a8:96:01 -> 02:42:c0:a8:28:fe
           eth.src      02:42:c0:a8:96:0a -> 02:42:c0:a8:28:01
           + outer IPv4  192.168.40.1 > 192.168.150.13 proto 4 (IPIP) ttl 63 tos 0x00 DF id 1 len 60 sum 0xfc5d
           inner ip.ttl 64 -> 63
           inner ip.sum 0x7adc -> 0x7bdc
`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			tap, out := newTap(t, Config{On: true})
			real := service.NewReal(rs13, 80, tc.fwd, nil)
			if tc.fwd == service.Masq {
				real = service.NewReal(rs13, 8080, tc.fwd, nil)
			}
			if !tap.Trace(svc) {
				t.Fatal("not traced")
			}
			outIf := 3
			if tc.fwd == service.Route {
				outIf = 2
			}
			tap.Observe(&forward.Observation{Worker: "eth0/0", Ifindex: 2, Time: at, In: syn.bytes(t), InLen: 74,
				Verdict: forward.Forwarded, Outs: []forward.Sent{{Ifindex: outIf, VNet: tc.vnet, Data: tc.out.bytes(t)}},
				Decision: &forward.Decision{Service: svc, Key: key, Exists: true, New: conntrack.StateSynRecv, Real: real,
					Forward: tc.fwd, Scheduled: true, Predicted: real, Why: "rr: 192.168.150.13, the next available from the head of the list",
					Hop: arp.NewStatic(2, rs13, [6]byte(rs13MAC))}})
			tap.Close()
			if diff := cmp.Diff(tc.want, out.String()); diff != "" {
				t.Errorf("trace (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTraceReplyAndDrop: a NAT reply is traced with its way back, a
// dropped packet with its reason, and a template's decision as such.
func TestTraceReplyAndDrop(t *testing.T) {
	tap, out := newTap(t, Config{On: true})
	svc := &service.Service{Key: service.KeyOf(6, vip, 80)}
	real := service.NewReal(rs13, 8080, service.Masq, nil)
	reply := pkt{srcMAC: rs13MAC, dstMAC: dirMAC2, src: rs13, dst: client, sport: 8080, dport: 40312, ttl: 64}
	back := pkt{srcMAC: dirMAC, dstMAC: clientMAC, src: vip, dst: client, sport: 80, dport: 40312, ttl: 63}
	tap.Observe(&forward.Observation{Ifindex: 3, Time: at, In: reply.bytes(t), Verdict: forward.Forwarded,
		Outs: []forward.Sent{{Ifindex: 2, Data: back.bytes(t)}},
		Decision: &forward.Decision{Service: svc, Reply: true, Found: true, Exists: true, Old: conntrack.StateSynRecv,
			New: conntrack.StateEstablished, Real: real, Forward: service.Masq, PeerMAC: [6]byte(clientMAC), PeerIfindex: 2}})
	tk := conntrack.KeyV4(6, [4]byte{192, 168, 150, 0}, 0, vip.As4(), 0)
	tap.Observe(&forward.Observation{Ifindex: 2, Time: at, In: syn.bytes(t), Verdict: forward.Unresolved,
		Decision: &forward.Decision{Service: svc, Exists: true, New: conntrack.StateSynRecv, Real: real, Forward: service.Masq,
			Scheduled: true, Template: true, TemplateKey: tk, Predicted: real, Hop: unresolved{}}})
	tap.Close()
	for _, want := range []string{
		"trace 10:42:07.123456 eth1 #1: TCP 192.168.150.13:8080 > 192.168.150.10:40312 [ACK] -> forwarded, NAT reply to the client\n",
		"  conn   found by its reply key: SYN_RECV -> ESTABLISHED\n",
		"  hop    back to 02:42:c0:a8:96:0a on eth0, where the client's frames come from\n",
		"           ip.src       192.168.150.13 -> 192.168.150.100\n",
		"           tcp.sport    8080 -> 80\n",
		"eth0 #2: TCP 192.168.150.10:40312 > 192.168.150.100:80 [SYN] -> dropped (arp_unresolved)\n",
		"  sched  persistence template 192.168.150.0 -> 192.168.150.13:8080 (the scheduler is not asked)\n",
		"  hop    next hop on eth1: not resolved\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("trace lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "ip.dst") {
		t.Errorf("a NAT reply's destination is not changed:\n%s", out.String())
	}
}

type unresolved struct{}

func (unresolved) MAC() ([6]byte, bool) { return [6]byte{}, false }
func (unresolved) Ifindex() int         { return 3 }
func (unresolved) Drop()                {}

// TestTraceFilterAndRate: tracing follows SetTrace (every service, some,
// none) and the rate limit, and the suppressed packets are summarised.
func TestTraceFilterAndRate(t *testing.T) {
	tap, out := newTap(t, Config{Rate: 3})
	clock := at
	tap.text.mu.Lock()
	tap.text.now = func() time.Time { return clock }
	tap.text.mu.Unlock()
	a := &service.Service{Key: service.KeyOf(6, vip, 80)}
	b := &service.Service{Key: service.KeyOf(17, vip, 53)}
	if tap.Trace(a) || tap.Active() {
		t.Fatal("traced before SetTrace")
	}
	if err := tap.SetTrace(true, &b.Key); err != nil {
		t.Fatal(err)
	}
	if tap.Trace(a) || !tap.Trace(b) || !tap.Active() {
		t.Fatal("one service: wrong filter")
	}
	if err := tap.SetTrace(false, &a.Key); !errors.Is(err, ErrNotTraced) {
		t.Fatalf("switching off an untraced service: %v", err)
	}
	if err := tap.SetTrace(true, nil); err != nil {
		t.Fatal(err)
	}
	if err := tap.SetTrace(false, &a.Key); err == nil {
		t.Fatal("switching one service off while all are traced: no error")
	}
	if all, _ := tap.Tracing(); !all {
		t.Fatal("the failed SetTrace changed the state")
	}
	// The bucket starts full with 3, one went to b above; a second
	// later it holds 3 again.
	n := 0
	for i := range 20 {
		if i == 10 {
			clock = clock.Add(time.Second)
		}
		if tap.Trace(a) {
			n++
		}
	}
	if n != 5 {
		t.Fatalf("%d of 20 traced at 3 a second over one second, want 2+3", n)
	}
	if err := tap.SetTrace(false, nil); err != nil || tap.Trace(a) || tap.Active() {
		t.Fatal("still tracing after off")
	}
	tap.Close()
	if st := tap.Stats(); st.Suppressed != uint64(20-n) || !strings.Contains(out.String(), "trace: suppressed ") {
		t.Fatalf("suppressed %d, output %q", st.Suppressed, out.String())
	}
}

func TestNewRefusesNegative(t *testing.T) {
	for _, cfg := range []Config{{Rate: -1}, {PcapMaxBytes: -1}, {PcapSample: -2}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
}
