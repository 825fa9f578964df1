package lab

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/gvs-project/gvs/internal/afpacket"
	"github.com/gvs-project/gvs/internal/hdr"
	"github.com/gvs-project/gvs/internal/netns"
)

// SYNFlood is a flood of TCP SYNs from spoofed sources, as a SYN-flood
// attack sends them: Count frames, the i-th from the i-th address of
// Sources (so Count distinct sources when Count fits the prefix; past its
// end the addresses start over), each from its own port, to Dst, sent
// from a raw AF_PACKET transmit ring on one interface of a namespace at
// most Rate per second. Every frame is a well-formed IPv4 TCP SYN with
// right checksums (a window, an MSS option), so that the director and the
// real servers take it for a client's.
//
// Its addresses belong in 198.18.0.0/15 (RFC 2544's benchmarking block),
// never on a real network: the generator is for labs in namespaces.
type SYNFlood struct {
	// NS and Dev name the namespace and interface to send on.
	NS, Dev string
	// DstMAC is the next hop's MAC (a router's, in the flood lab).
	DstMAC [6]byte
	// Sources is the block the spoofed source addresses come from.
	Sources netip.Prefix
	// Offset skips that many addresses of Sources first (successive
	// floods from different sources).
	Offset int
	// Count is the number of SYNs.
	Count int
	// Dst is the target, a VIP and port.
	Dst netip.AddrPort
	// Rate bounds the SYNs sent per second (0: 10 000).
	Rate int
}

// floodBatch is how many frames go out per flush (one sendto).
const floodBatch = 64

// synLen is the length of a flood frame: Ethernet, IPv4 without options,
// TCP with a 4-byte MSS option.
const synLen = hdr.EthernetLen + hdr.IPv4MinLen + hdr.TCPMinLen + 4

// Run sends the flood and returns how many SYNs went out. It stops early,
// with the context's error, when ctx is done; a full ring that stays full
// drops frames, which are not counted.
func (f *SYNFlood) Run(ctx context.Context) (sent int, err error) {
	if !f.Sources.Addr().Is4() || !f.Dst.Addr().Is4() || f.Count < 0 {
		return 0, errors.New("flood: IPv4 sources and destination, and a count, needed")
	}
	rate := f.Rate
	if rate <= 0 {
		rate = 10000
	}
	var tx *afpacket.TX
	var srcMAC [6]byte
	if err := netns.Do(f.NS, func() error {
		ifi, err := net.InterfaceByName(f.Dev)
		if err != nil {
			return err
		}
		copy(srcMAC[:], ifi.HardwareAddr)
		tx, err = afpacket.OpenTX(ifi.Index, &afpacket.TXConfig{FrameSize: 2048, FrameCount: 512, FullWait: 10 * time.Millisecond})
		return err
	}); err != nil {
		return 0, fmt.Errorf("flood: opening a transmit ring on %s in %s: %w", f.Dev, f.NS, err)
	}
	defer tx.Close()

	var tmpl [synLen]byte
	e := hdr.Ethernet(tmpl[:])
	e.SetDestination(f.DstMAC)
	e.SetSource(srcMAC)
	e.SetType(hdr.EtherTypeIPv4)
	dst := f.Dst.Addr().As4()
	hdr.IPv4(tmpl[hdr.EthernetLen:]).Encode(&hdr.IPv4Fields{TotalLen: synLen - hdr.EthernetLen, DF: true, TTL: 64, Protocol: hdr.ProtoTCP, Dst: dst})
	tcp := tmpl[hdr.EthernetLen+hdr.IPv4MinLen:]
	binary.BigEndian.PutUint16(tcp[2:], f.Dst.Port())
	tcp[12] = (hdr.TCPMinLen + 4) / 4 << 4
	tcp[13] = hdr.TCPFlagSYN
	binary.BigEndian.PutUint16(tcp[14:], 64240)         // window, as Linux's first SYN
	copy(tcp[hdr.TCPMinLen:], []byte{2, 4, 0x05, 0xb4}) // MSS 1460

	base := binary.BigEndian.Uint32(f.Sources.Masked().Addr().AsSlice())
	size := uint32(1) << (32 - f.Sources.Bits())
	start := time.Now()
	tried := 0
	for tried < f.Count {
		if err := ctx.Err(); err != nil {
			return sent, err
		}
		n := min(floodBatch, f.Count-tried)
		for i := range n {
			k := uint32(f.Offset + tried + i)
			_, buf, ok := tx.Slot()
			if !ok {
				continue // the ring stayed full: dropped
			}
			b := buf[:synLen]
			copy(b, tmpl[:])
			var src [4]byte
			binary.BigEndian.PutUint32(src[:], base+k%size)
			ip := hdr.IPv4(b[hdr.EthernetLen:])
			copy(ip[12:16], src[:])
			binary.BigEndian.PutUint16(ip[4:], uint16(k))
			ip.SetChecksum(0)
			ip.SetChecksum(ip.ComputeChecksum())
			t := hdr.TCP(b[hdr.EthernetLen+hdr.IPv4MinLen:])
			binary.BigEndian.PutUint16(t[0:], uint16(1024+k%64000))
			binary.BigEndian.PutUint32(t[4:], k*2654435761) // sequence number
			t.SetChecksum(0)
			t.SetChecksum(hdr.TransportChecksum(src, dst, hdr.ProtoTCP, t))
			tx.Commit(synLen)
			sent++
		}
		if err := tx.Flush(); err != nil {
			return sent, fmt.Errorf("flood: sending: %w", err)
		}
		tried += n
		// Pace: the next batch waits until the rate allows it.
		if ahead := time.Duration(tried)*time.Second/time.Duration(rate) - time.Since(start); ahead > 0 {
			time.Sleep(ahead)
		}
	}
	return sent, nil
}
