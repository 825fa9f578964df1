package hdr

import "encoding/binary"

// IPv4 is an IPv4 header (RFC 791, section 3.1):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version|  IHL  |Type of Service|          Total Length         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Identification        |Flags|      Fragment Offset    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Time to Live |    Protocol   |         Header Checksum       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       Source Address                          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Destination Address                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Options                    |    Padding    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type IPv4 []byte

const (
	// IPv4MinLen is the length of an IPv4 header without options.
	IPv4MinLen = 20

	ipv4VerIHL   = 0
	ipv4TOS      = 1
	ipv4TotalLen = 2
	ipv4ID       = 4
	ipv4FlagsOff = 6
	ipv4TTL      = 8
	ipv4Proto    = 9
	ipv4Checksum = 10
	ipv4Src      = 12
	ipv4Dst      = 16

	ipv4FlagMF     = 0x2000 // more fragments
	ipv4FlagDF     = 0x4000 // don't fragment
	ipv4OffsetMask = 0x1fff // fragment offset, in 8-byte units
)

// IP protocol numbers gvs handles.
const (
	ProtoICMP = 1
	ProtoIPIP = 4
	ProtoTCP  = 6
	ProtoUDP  = 17
)

// Version returns the IP version field.
func (h IPv4) Version() uint8 { return h[ipv4VerIHL] >> 4 }

// HeaderLen returns the header length in bytes (IHL * 4).
func (h IPv4) HeaderLen() int { return int(h[ipv4VerIHL]&0x0f) * 4 }

// TOS returns the type-of-service byte (DSCP and ECN).
func (h IPv4) TOS() uint8 { return h[ipv4TOS] }

// TotalLen returns the total length field.
func (h IPv4) TotalLen() int { return int(binary.BigEndian.Uint16(h[ipv4TotalLen:])) }

// ID returns the identification field.
func (h IPv4) ID() uint16 { return binary.BigEndian.Uint16(h[ipv4ID:]) }

// TTL returns the time to live.
func (h IPv4) TTL() uint8 { return h[ipv4TTL] }

// Protocol returns the protocol of the payload.
func (h IPv4) Protocol() uint8 { return h[ipv4Proto] }

// Checksum returns the header checksum field.
func (h IPv4) Checksum() uint16 { return binary.BigEndian.Uint16(h[ipv4Checksum:]) }

// Source returns the source address.
func (h IPv4) Source() [4]byte { return [4]byte(h[ipv4Src : ipv4Src+4]) }

// Destination returns the destination address.
func (h IPv4) Destination() [4]byte { return [4]byte(h[ipv4Dst : ipv4Dst+4]) }

// DontFragment reports whether DF is set.
func (h IPv4) DontFragment() bool {
	return binary.BigEndian.Uint16(h[ipv4FlagsOff:])&ipv4FlagDF != 0
}

// IsFragment reports whether the packet is a fragment (first or later):
// MF set or a non-zero fragment offset.
func (h IPv4) IsFragment() bool {
	return binary.BigEndian.Uint16(h[ipv4FlagsOff:])&(ipv4FlagMF|ipv4OffsetMask) != 0
}

// FragmentOffset returns the fragment offset in 8-byte units (0 for an
// unfragmented packet and for the first fragment).
func (h IPv4) FragmentOffset() int {
	return int(binary.BigEndian.Uint16(h[ipv4FlagsOff:]) & ipv4OffsetMask)
}

// ChecksumValid reports whether the header checksum is right: the one's
// complement sum of the whole header, checksum included, is all ones
// (RFC 1071 section 1, as the receiving ip_rcv checks it). The header
// must be HeaderLen bytes long.
func (h IPv4) ChecksumValid() bool {
	if len(h) >= IPv4MinLen && h[ipv4VerIHL]&0x0f == 5 {
		// The usual header without options: five 32-bit words, summed
		// in 64 bits and folded (RFC 1071: byte order and word size do
		// not change a one's-complement sum, up to the fold).
		s := uint64(binary.BigEndian.Uint32(h[0:])) + uint64(binary.BigEndian.Uint32(h[4:])) +
			uint64(binary.BigEndian.Uint32(h[8:])) + uint64(binary.BigEndian.Uint32(h[12:])) +
			uint64(binary.BigEndian.Uint32(h[16:]))
		s = s&0xffff + s>>16&0xffff + s>>32
		s = s&0xffff + s>>16
		s = s&0xffff + s>>16
		return s == 0xffff
	}
	return Fold(Sum(h[:h.HeaderLen()], 0)) == 0xffff
}

// SetChecksum sets the header checksum field.
func (h IPv4) SetChecksum(c uint16) { binary.BigEndian.PutUint16(h[ipv4Checksum:], c) }

// ComputeChecksum returns the checksum of the header as it should be,
// computed over the whole header with the checksum field taken as zero.
func (h IPv4) ComputeChecksum() uint16 {
	n := h.HeaderLen()
	sum := Sum(h[:ipv4Checksum], 0)
	sum = Sum(h[ipv4Checksum+2:n], sum)
	return ^Fold(sum)
}

// SetTTLWithChecksumUpdate sets the TTL and updates the header checksum
// incrementally (RFC 1624).
func (h IPv4) SetTTLWithChecksumUpdate(ttl uint8) {
	old := binary.BigEndian.Uint16(h[ipv4TTL:])
	h[ipv4TTL] = ttl
	h.SetChecksum(Update16(h.Checksum(), old, binary.BigEndian.Uint16(h[ipv4TTL:])))
}

// SetSourceWithChecksumUpdate sets the source address and updates the
// header checksum incrementally. The transport checksum, which covers the
// address through the pseudo-header, is the caller's to update.
func (h IPv4) SetSourceWithChecksumUpdate(a [4]byte) {
	h.SetChecksum(Update32(h.Checksum(), h.Source(), a))
	copy(h[ipv4Src:ipv4Src+4], a[:])
}

// SetDestinationWithChecksumUpdate sets the destination address and updates
// the header checksum incrementally.
func (h IPv4) SetDestinationWithChecksumUpdate(a [4]byte) {
	h.SetChecksum(Update32(h.Checksum(), h.Destination(), a))
	copy(h[ipv4Dst:ipv4Dst+4], a[:])
}

// IPv4Fields are the values Encode writes.
type IPv4Fields struct {
	TOS      uint8
	TotalLen uint16
	ID       uint16
	DF       bool
	TTL      uint8
	Protocol uint8
	Src, Dst [4]byte
}

// Encode writes a 20-byte header without options, with its checksum.
func (h IPv4) Encode(f *IPv4Fields) {
	h[ipv4VerIHL] = 4<<4 | IPv4MinLen/4
	h[ipv4TOS] = f.TOS
	binary.BigEndian.PutUint16(h[ipv4TotalLen:], f.TotalLen)
	binary.BigEndian.PutUint16(h[ipv4ID:], f.ID)
	var flags uint16
	if f.DF {
		flags = ipv4FlagDF
	}
	binary.BigEndian.PutUint16(h[ipv4FlagsOff:], flags)
	h[ipv4TTL] = f.TTL
	h[ipv4Proto] = f.Protocol
	copy(h[ipv4Src:ipv4Src+4], f.Src[:])
	copy(h[ipv4Dst:ipv4Dst+4], f.Dst[:])
	h.SetChecksum(0)
	h.SetChecksum(h.ComputeChecksum())
}
