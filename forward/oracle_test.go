package forward

import (
	"bytes"
	"math/rand/v2"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-project/gvs/internal/hdr"
)

// gopacket (the maintained fork) is the independent oracle here: it
// builds input frames with correct checksums and decodes what gvs sends,
// so the tests do not judge gvs's headers by gvs's own header code.

// oracleFrame builds a client -> VIP:80 TCP frame (or UDP to :53) with
// gopacket, checksums computed by gopacket.
func oracleFrame(t testing.TB, r *rand.Rand, udp bool, flags uint8) []byte {
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(clientMAC[:]), DstMAC: net.HardwareAddr(directorMAC[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: uint8(2 + r.IntN(254)), Id: uint16(r.Uint32()), Flags: layers.IPv4DontFragment,
		SrcIP: net.IP(clientIP[:]), DstIP: net.IP(vip[:]), TOS: uint8(r.Uint32())}
	payload := make([]byte, r.IntN(1400))
	for i := range payload {
		payload[i] = byte(r.Uint32())
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}
	var err error
	if udp {
		ip.Protocol = layers.IPProtocolUDP
		u := &layers.UDP{SrcPort: layers.UDPPort(1024 + r.IntN(60000)), DstPort: 53}
		u.SetNetworkLayerForChecksum(ip)
		err = gopacket.SerializeLayers(buf, opts, eth, ip, u, gopacket.Payload(payload))
	} else {
		ip.Protocol = layers.IPProtocolTCP
		tc := &layers.TCP{SrcPort: layers.TCPPort(1024 + r.IntN(60000)), DstPort: 80, Seq: r.Uint32(), Ack: r.Uint32(),
			Window: uint16(r.Uint32()), SYN: flags&hdr.TCPFlagSYN != 0, ACK: flags&hdr.TCPFlagACK != 0}
		tc.SetNetworkLayerForChecksum(ip)
		err = gopacket.SerializeLayers(buf, opts, eth, ip, tc, gopacket.Payload(payload))
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// checksumsValid re-serialises the decoded IPv4 and TCP/UDP layers with
// gopacket's checksum computation and reports whether the checksums the
// frame carries are the ones gopacket computes.
func checksumsValid(t testing.TB, frame []byte) bool {
	t.Helper()
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if ip == nil {
		t.Fatalf("gopacket found no IPv4 layer in %x", frame)
	}
	carriedIP := ip.Checksum
	var l4 gopacket.SerializableLayer
	var carriedL4 uint16
	var computed func() uint16
	switch x := p.TransportLayer().(type) {
	case *layers.TCP:
		x.SetNetworkLayerForChecksum(ip)
		l4, carriedL4, computed = x, x.Checksum, func() uint16 { return x.Checksum }
	case *layers.UDP:
		x.SetNetworkLayerForChecksum(ip)
		l4, carriedL4, computed = x, x.Checksum, func() uint16 { return x.Checksum }
	default:
		t.Fatalf("gopacket found no TCP or UDP layer in %x", frame)
	}
	// The transport layer's own payload: an application layer gopacket
	// decodes further (DNS on port 53) would not give all its bytes back.
	payload := p.TransportLayer().LayerPayload()
	// Serialising with ComputeChecksums stores the computed checksums in
	// the layers.
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, ip, l4, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return carriedIP == ip.Checksum && carriedL4 == computed()
}

// TestDROracle: random TCP and UDP frames through the DR path, checked by
// gopacket: only the MACs change, every other byte and both checksums
// stay valid.
func TestDROracle(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for i := range 500 {
		rig := newRig(t)
		udp := i%2 == 1
		in := oracleFrame(t, r, udp, hdr.TCPFlagSYN)
		if v := rig.send(frame(in)); v != Forwarded {
			t.Fatalf("frame %d: verdict %v", i, v)
		}
		out := rig.tx.sent[0]
		p := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
		eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		if !bytes.Equal(eth.DstMAC, rs13MAC[:]) && !bytes.Equal(eth.DstMAC, rs12MAC[:]) {
			t.Fatalf("frame %d: destination MAC %v is no real server's", i, eth.DstMAC)
		}
		if !bytes.Equal(eth.SrcMAC, directorMAC[:]) {
			t.Fatalf("frame %d: source MAC %v, want the director's", i, eth.SrcMAC)
		}
		ipOut := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		pin := gopacket.NewPacket(in, layers.LayerTypeEthernet, gopacket.Default)
		ipIn := pin.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if ipOut.TTL != ipIn.TTL-1 {
			t.Fatalf("frame %d: TTL %d, want %d", i, ipOut.TTL, ipIn.TTL-1)
		}
		// Beyond the MACs, only the TTL and the header checksum change.
		a, b := append([]byte(nil), out[12:]...), append([]byte(nil), in[12:]...)
		for _, off := range []int{2 + 8, 2 + 10, 2 + 11} {
			a[off], b[off] = 0, 0
		}
		if !bytes.Equal(a, b) {
			t.Fatalf("frame %d: DR changed bytes beyond the MACs, TTL and IP checksum", i)
		}
		if !checksumsValid(t, out) {
			t.Fatalf("frame %d: checksums not valid after DR", i)
		}
	}
}

// TestOracleCanFail: the oracle rejects a corrupted payload byte and a
// changed IP header byte, so the checks above can fail.
func TestOracleCanFail(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, udp := range []bool{false, true} {
		f := oracleFrame(t, r, udp, hdr.TCPFlagSYN)
		if !checksumsValid(t, f) {
			t.Fatal("a valid frame judged invalid")
		}
		f[len(f)-1] ^= 0x40
		if checksumsValid(t, f) {
			t.Fatal("a corrupted frame judged valid")
		}
		f[len(f)-1] ^= 0x40
		f[hdr.EthernetLen+8] ^= 1 // TTL
		if checksumsValid(t, f) {
			t.Fatal("a changed IP header judged valid")
		}
	}
}
