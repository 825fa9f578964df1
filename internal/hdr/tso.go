package hdr

import "encoding/binary"

// TCP flag bits not named in l4.go, for ECN (RFC 3168 section 6.1).
const (
	TCPFlagECE = 0x40
	TCPFlagCWR = 0x80
)

const (
	tcpSeq = 4

	// ipv4MaxTotalLen is the largest datagram an IPv4 total length field
	// can describe.
	ipv4MaxTotalLen = 0xffff
)

// ipv4Bounds validates the IPv4 header at the start of pkt and returns the
// header length and the datagram length (the total length field, which
// must lie within pkt; bytes past it are link-layer padding and ignored).
// With zeroTotalMeansAll, a total length of 0 stands for len(pkt): the
// convention of TSO super-packets larger than 64 KiB (IPv4 BIG TCP) and of
// captures of packets before segmentation.
func ipv4Bounds(pkt []byte, zeroTotalMeansAll bool) (ihl, total int, err error) {
	if len(pkt) < IPv4MinLen || pkt[ipv4VerIHL]>>4 != 4 {
		return 0, 0, ErrMalformed
	}
	ihl = int(pkt[ipv4VerIHL]&0x0f) * 4
	if ihl < IPv4MinLen || ihl > len(pkt) {
		return 0, 0, ErrMalformed
	}
	total = int(binary.BigEndian.Uint16(pkt[ipv4TotalLen:]))
	if total == 0 && zeroTotalMeansAll {
		total = len(pkt)
	}
	if total < ihl || total > len(pkt) {
		return 0, 0, ErrMalformed
	}
	return ihl, total, nil
}

// Source route options (RFC 791 section 3.1): type, length, pointer, then
// the route's addresses.
const (
	ipv4OptLSRR = 0x83 // loose source and record route
	ipv4OptSSRR = 0x89 // strict source and record route

	// ipv4SRRMinLen is the length of a source route with one address.
	ipv4SRRMinLen = 3 + 4
)

// pseudoHeaderDestination returns the destination address a transport
// checksum covers (RFC 9293 section 3.1, RFC 1122 section 4.1.3.4 for
// UDP): with a source route option whose route is not used up (its
// pointer, counted from 1 at the option type, still within the option),
// the final destination is the route's last address, not the header's
// destination, which names the next hop. Options that cannot be walked
// leave the header's destination.
func (h IPv4) pseudoHeaderDestination() [4]byte {
	opts := h[IPv4MinLen:h.HeaderLen()]
	for i := 0; i < len(opts); {
		switch opts[i] {
		case ipv4OptEOL:
			return h.Destination()
		case ipv4OptNOP:
			i++
			continue
		}
		if i+1 >= len(opts) {
			break
		}
		l := int(opts[i+1])
		if l < 2 || l > len(opts)-i {
			break
		}
		if t := opts[i]; (t == ipv4OptLSRR || t == ipv4OptSSRR) && l >= ipv4SRRMinLen && int(opts[i+2]) <= l {
			return [4]byte(opts[i+l-4 : i+l])
		}
		i += l
	}
	return h.Destination()
}

// tcpv4Super describes a validated TSO super-packet.
type tcpv4Super struct {
	ihl   int // IPv4 header length
	hl    int // IPv4 plus TCP header length
	total int // datagram length
}

func checkTCPv4Super(pkt []byte, mss int) (tcpv4Super, error) {
	ihl, total, err := ipv4Bounds(pkt, true)
	if err != nil {
		return tcpv4Super{}, err
	}
	ip := IPv4(pkt)
	if ip.IsFragment() {
		return tcpv4Super{}, ErrIsFragment
	}
	if ip.Protocol() != ProtoTCP {
		return tcpv4Super{}, ErrNotTCP
	}
	if total-ihl < TCPMinLen {
		return tcpv4Super{}, ErrMalformed
	}
	thl := TCP(pkt[ihl:]).DataOffset()
	if thl < TCPMinLen || thl > total-ihl {
		return tcpv4Super{}, ErrMalformed
	}
	hl := ihl + thl
	if mss < 1 || hl+min(mss, total-hl) > ipv4MaxTotalLen {
		return tcpv4Super{}, ErrBadMSS
	}
	return tcpv4Super{ihl: ihl, hl: hl, total: total}, nil
}

// SegmentCountTCPv4 validates pkt and mss as SegmentTCPv4 does and returns
// the number of segments SegmentTCPv4 would produce: ceil(payload/mss),
// and 1 for a payload of 0. The data path uses it to reserve TX slots
// before segmenting. Every segment but the last is exactly
// headers+mss bytes long.
func SegmentCountTCPv4(pkt []byte, mss int) (int, error) {
	s, err := checkTCPv4Super(pkt, mss)
	if err != nil {
		return 0, err
	}
	return max(1, (s.total-s.hl+mss-1)/mss), nil
}

// SegmentTCPv4 does in software what TSO hardware, or the kernel's
// inet_gso_segment and tcp_gso_segment, do with an IPv4 TCP super-packet
// (a packet socket's frame with VIRTIO_NET_HDR_GSO_TCPV4): it cuts the
// payload into segments of mss bytes (the last may be shorter) and writes
// each as a complete IPv4 packet.
//
// pkt starts at the IPv4 header (options allowed) and holds the TCP
// header (options allowed) and the payload. Its total length field bounds
// the packet; 0 means len(pkt) (super-packets over 64 KiB). Its IP and TCP
// checksums are ignored, so a partial (NEEDS_CSUM) or even garbage
// checksum is fine. A packet whose payload fits in mss comes out as one
// segment, with its checksums computed.
//
// Each segment copies the IPv4 and TCP headers, options included, and
// gets:
//   - IPv4: total length; ID = original ID + segment index (mod 2^16),
//     as inet_gso_segment does without SKB_GSO_TCP_FIXEDID; a freshly
//     computed header checksum. DF, TOS, TTL are copied.
//   - TCP: sequence number advanced by the payload before it; FIN and PSH
//     only on the last segment; CWR only on the first (RFC 3168 6.1.2, as
//     tcp_gso_segment clears it; the AccECN variant that keeps CWR is not
//     supported); a fully computed checksum. The urgent pointer and all
//     other fields are copied. The checksum's pseudo-header holds the
//     final destination, which differs from the header's when a source
//     route option (LSRR, SSRR) still has hops to go (RFC 9293 3.1).
//
// Buffer contract: for each segment, in order, SegmentTCPv4 calls
// next(size) with the segment's exact length and writes the segment into
// the first size bytes of the returned buffer, which the caller has
// positioned after any headroom it wants for outer headers (Ethernet, an
// outer IPIP header). A segment is complete when next is called for the
// following one or SegmentTCPv4 returns. If next returns a buffer shorter
// than size (nil: no free TX slot), SegmentTCPv4 stops and returns
// ErrNoBuffer; segments completed before are valid. The buffers must not
// overlap pkt. next is not retained, so a closure passed inline does not
// escape; SegmentTCPv4 allocates nothing.
//
// All validation happens before the first call to next. The errors are
// ErrMalformed, ErrIsFragment, ErrNotTCP, ErrBadMSS (mss < 1, or a
// segment over 65535 bytes) and ErrNoBuffer.
func SegmentTCPv4(pkt []byte, mss int, next func(size int) []byte) error {
	s, err := checkTCPv4Super(pkt, mss)
	if err != nil {
		return err
	}
	ip := IPv4(pkt)
	src, dst := ip.Source(), ip.pseudoHeaderDestination()
	id := ip.ID()
	th := pkt[s.ihl:s.hl]
	thl := s.hl - s.ihl
	seq := binary.BigEndian.Uint32(th[tcpSeq:])
	flags := th[tcpFlags]
	payload := pkt[s.hl:s.total]

	for i, off := 0, 0; ; i++ {
		n := min(mss, len(payload)-off)
		last := off+n == len(payload)
		size := s.hl + n
		b := next(size)
		if len(b) < size {
			return ErrNoBuffer
		}
		b = b[:size:size]
		copy(b, pkt[:s.hl])
		copy(b[s.hl:], payload[off:off+n])

		seg := IPv4(b)
		binary.BigEndian.PutUint16(b[ipv4TotalLen:], uint16(size))
		binary.BigEndian.PutUint16(b[ipv4ID:], id+uint16(i))
		seg.SetChecksum(0)
		seg.SetChecksum(seg.ComputeChecksum())

		t := b[s.ihl:]
		binary.BigEndian.PutUint32(t[tcpSeq:], seq+uint32(off))
		f := flags
		if !last {
			f &^= TCPFlagFIN | TCPFlagPSH
		}
		if i > 0 {
			f &^= TCPFlagCWR
		}
		t[tcpFlags] = f
		t[tcpChecksum], t[tcpChecksum+1] = 0, 0
		// The TCP header length is a multiple of 4, so header and payload
		// sums add without realignment.
		sum := Sum(t[:thl], PseudoHeaderSum(src, dst, ProtoTCP, thl+n))
		sum = Sum(t[thl:], sum)
		binary.BigEndian.PutUint16(t[tcpChecksum:], ^Fold(sum))

		off += n
		if last {
			return nil
		}
	}
}
