package hdr

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// This file holds the test builders and the gopacket oracle shared by the
// data-path tests. Nothing here is used by the package itself.

// ipOpts are IPv4 options used in tests, each a whole option. The copied
// flag is the top bit of the type.
var (
	optRouterAlert = []byte{0x94, 4, 0, 0}                             // RFC 2113, copied
	optSecurity    = []byte{0x82, 11, 0xf1, 0x35, 0, 0, 0, 0, 0, 0, 0} // RFC 791 security, copied
	optLSRR        = []byte{0x83, 7, 4, 192, 168, 77, 1}               // loose source route, copied
	optRecordRoute = []byte{0x07, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0}       // record route, not copied
	optTimestamp   = []byte{0x44, 12, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0}    // timestamp, not copied
	optNOP         = []byte{ipv4OptNOP}                                // not copied
	allIPOpts      = [][]byte{optRouterAlert, optSecurity, optLSRR, optRecordRoute, optTimestamp, optNOP}
	tcpOptMSS      = []byte{2, 4, 0x05, 0xb4}                    // MSS 1460
	tcpOptTS       = []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2} // NOP NOP timestamps
	tcpOptSACK     = []byte{1, 1, 5, 10, 0, 0, 1, 0, 0, 0, 2, 0} // NOP NOP SACK block
	tcpOptWS       = []byte{1, 3, 3, 7}                          // NOP window scale 7
	allTCPOpts     = [][]byte{tcpOptMSS, tcpOptTS, tcpOptSACK, tcpOptWS}
)

// packOptions concatenates options and pads them with end-of-list bytes to
// a multiple of 4, as a sender lays out a header.
func packOptions(opts ...[]byte) []byte {
	var b []byte
	for _, o := range opts {
		b = append(b, o...)
	}
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// pktSpec describes an IPv4 packet for the builders.
type pktSpec struct {
	tos, ttl, proto uint8
	id              uint16
	flagsOff        uint16 // DF, MF and fragment offset field
	src, dst        [4]byte
	ipOpts          []byte // already padded
	l4              []byte // transport header and payload
}

// buildIPv4 lays out the packet with a correct header checksum.
func buildIPv4(s pktSpec) []byte {
	ihl := IPv4MinLen + len(s.ipOpts)
	b := make([]byte, ihl+len(s.l4))
	b[0] = 4<<4 | byte(ihl/4)
	b[1] = s.tos
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[4:], s.id)
	binary.BigEndian.PutUint16(b[6:], s.flagsOff)
	b[8] = s.ttl
	b[9] = s.proto
	copy(b[12:], s.src[:])
	copy(b[16:], s.dst[:])
	copy(b[IPv4MinLen:], s.ipOpts)
	copy(b[ihl:], s.l4)
	IPv4(b).SetChecksum(IPv4(b).ComputeChecksum())
	return b
}

// tcpSpec describes a TCP segment for buildTCP.
type tcpSpec struct {
	sport, dport uint16
	seq, ack     uint32
	flags        uint8
	window       uint16
	urgent       uint16
	opts         []byte // already padded
	payload      []byte
}

// buildTCP lays out a TCP header and payload with a zero checksum.
func buildTCP(s tcpSpec) []byte {
	thl := TCPMinLen + len(s.opts)
	b := make([]byte, thl+len(s.payload))
	binary.BigEndian.PutUint16(b[0:], s.sport)
	binary.BigEndian.PutUint16(b[2:], s.dport)
	binary.BigEndian.PutUint32(b[4:], s.seq)
	binary.BigEndian.PutUint32(b[8:], s.ack)
	b[12] = byte(thl/4) << 4
	b[13] = s.flags
	binary.BigEndian.PutUint16(b[14:], s.window)
	binary.BigEndian.PutUint16(b[18:], s.urgent)
	copy(b[TCPMinLen:], s.opts)
	copy(b[thl:], s.payload)
	return b
}

func randAddr(r *rand.Rand) (a [4]byte) {
	binary.BigEndian.PutUint32(a[:], r.Uint32())
	return a
}

// randUnicast returns a random address in 192.168.0.0/16.
func randUnicast(r *rand.Rand) [4]byte {
	return [4]byte{192, 168, byte(r.Uint32()), byte(r.Uint32())}
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// randIPOpts returns a random, valid, padded option list of at most 40
// bytes, or nil.
func randIPOpts(r *rand.Rand) []byte {
	if r.IntN(3) == 0 {
		return nil
	}
	var opts [][]byte
	n := 0
	for range r.IntN(5) {
		o := allIPOpts[r.IntN(len(allIPOpts))]
		if n+len(o) > ipv4MaxOptionsLen {
			break
		}
		opts = append(opts, o)
		n += len(o)
	}
	p := packOptions(opts...)
	if len(p) > ipv4MaxOptionsLen {
		return nil
	}
	return p
}

func randTCPOpts(r *rand.Rand) []byte {
	var opts [][]byte
	for range r.IntN(4) {
		opts = append(opts, allTCPOpts[r.IntN(len(allTCPOpts))])
	}
	return packOptions(opts...)
}

// randSuper builds a random IPv4 TCP super-packet of payload size n. The
// TCP checksum is, at random, complete, partial (pseudo-header seed) or
// garbage, and the IP checksum may be garbage too: SegmentTCPv4 must not
// care.
func randSuper(r *rand.Rand, n int) []byte {
	src, dst := randAddr(r), randAddr(r)
	tcp := buildTCP(tcpSpec{
		sport: uint16(r.Uint32()), dport: uint16(r.Uint32()),
		seq: r.Uint32(), ack: r.Uint32(),
		flags:  uint8(r.Uint32()) &^ (TCPFlagSYN | TCPFlagRST),
		window: uint16(r.Uint32()), urgent: uint16(r.Uint32()),
		opts: randTCPOpts(r), payload: randBytes(r, n),
	})
	var ff uint16
	if r.IntN(2) == 0 {
		ff = ipv4FlagDF
	}
	pkt := buildIPv4(pktSpec{tos: byte(r.Uint32()), ttl: byte(r.Uint32()), proto: ProtoTCP,
		id: uint16(r.Uint32()), flagsOff: ff, src: src, dst: dst, ipOpts: randIPOpts(r), l4: tcp})
	t := TCP(pkt[IPv4(pkt).HeaderLen():])
	switch r.IntN(3) {
	case 0:
		t.SetChecksum(TransportChecksum(src, dst, ProtoTCP, t))
	case 1:
		t.SetChecksum(Fold(PseudoHeaderSum(src, dst, ProtoTCP, len(t))))
	case 2:
		t.SetChecksum(uint16(r.Uint32()))
		IPv4(pkt).SetChecksum(uint16(r.Uint32()))
	}
	return pkt
}

// collector is a next callback target that keeps copies of every output
// packet; it can be told to fail (return nil) at the k-th call.
type collector struct {
	pkts   [][]byte
	failAt int // 1-based call number that gets nil; 0: never
	calls  int
	buf    []byte
}

// next hands out a buffer with headroom and junk around the slot, so that
// a writer that relies on zeroed memory or writes outside its slot shows.
func (c *collector) next(size int) []byte {
	c.calls++
	if c.calls == c.failAt {
		return nil
	}
	const headroom = 34 // outer Ethernet + IPv4 header, as the data path reserves
	c.buf = make([]byte, headroom+size+16)
	for i := range c.buf {
		c.buf[i] = 0xa5
	}
	c.pkts = append(c.pkts, c.buf[headroom:headroom+size])
	return c.buf[headroom:]
}

// decoded is a packet decoded by gopacket.
type decoded struct {
	ip   *layers.IPv4
	tcp  *layers.TCP
	udp  *layers.UDP
	icmp *layers.ICMPv4
}

// decodeIPv4 decodes b with gopacket's IPv4 layer and, for an unfragmented
// packet, its TCP, UDP or ICMPv4 layer (decoding stops there: gopacket
// would otherwise guess an application protocol from the ports), failing
// the test on a decode error, and verifies every checksum gopacket can.
func decodeIPv4(t testing.TB, b []byte) decoded {
	t.Helper()
	var d decoded
	d.ip = new(layers.IPv4)
	if err := d.ip.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil {
		t.Fatalf("gopacket cannot decode IPv4 %x: %v", b, err)
	}
	if _, res := d.ip.VerifyChecksum(); !res.Valid {
		t.Fatalf("IPv4 checksum %#04x invalid, want %#04x", res.Actual, res.Correct)
	}
	if d.ip.NextLayerType() == gopacket.LayerTypeFragment {
		return d
	}
	switch d.ip.Protocol {
	case layers.IPProtocolTCP:
		d.tcp = new(layers.TCP)
		if err := d.tcp.DecodeFromBytes(d.ip.Payload, gopacket.NilDecodeFeedback); err != nil {
			t.Fatalf("gopacket cannot decode TCP %x: %v", d.ip.Payload, err)
		}
		d.tcp.SetNetworkLayerForChecksum(d.ip)
		if err, res := d.tcp.VerifyChecksum(); err != nil || !res.Valid {
			t.Fatalf("TCP checksum %#04x invalid, want %#04x (%v)", res.Actual, res.Correct, err)
		}
	case layers.IPProtocolUDP:
		d.udp = new(layers.UDP)
		if err := d.udp.DecodeFromBytes(d.ip.Payload, gopacket.NilDecodeFeedback); err != nil {
			t.Fatalf("gopacket cannot decode UDP %x: %v", d.ip.Payload, err)
		}
		d.udp.SetNetworkLayerForChecksum(d.ip)
	case layers.IPProtocolICMPv4:
		d.icmp = new(layers.ICMPv4)
		if err := d.icmp.DecodeFromBytes(d.ip.Payload, gopacket.NilDecodeFeedback); err != nil {
			t.Fatalf("gopacket cannot decode ICMPv4 %x: %v", d.ip.Payload, err)
		}
		if _, res := d.icmp.VerifyChecksum(); !res.Valid {
			t.Fatalf("ICMP checksum %#04x invalid, want %#04x", res.Actual, res.Correct)
		}
	}
	return d
}

// reserialize has gopacket serialise the decoded layers again, computing
// every checksum itself, and fails unless the result is b byte for byte:
// gopacket is the independent oracle for our checksums.
func reserialize(t testing.TB, d decoded, b []byte) {
	t.Helper()
	ls := []gopacket.SerializableLayer{d.ip}
	switch {
	case d.tcp != nil:
		ls = append(ls, d.tcp, gopacket.Payload(d.tcp.Payload))
	case d.icmp != nil:
		ls = append(ls, d.icmp, gopacket.Payload(d.icmp.Payload))
	default:
		ls = append(ls, gopacket.Payload(d.ip.Payload))
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, ls...); err != nil {
		t.Fatalf("gopacket serialise: %v", err)
	}
	if !bytes.Equal(buf.Bytes(), b) {
		t.Fatalf("gopacket re-serialisation differs:\n got %x\nwant %x", buf.Bytes(), b)
	}
}
