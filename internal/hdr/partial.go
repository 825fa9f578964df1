package hdr

import "encoding/binary"

// CompletePartial finishes a transport checksum that the sender left to
// offload, as skb_checksum_help does for a CHECKSUM_PARTIAL skb and as a
// virtio-net header with VIRTIO_NET_HDR_F_NEEDS_CSUM asks of the device:
// the 16-bit field at csumStart+csumOffset already holds the folded,
// uncomplemented pseudo-header sum (the "seed"), so the one's complement
// sum of frame[csumStart:] (seed included) is computed and its complement
// stored in that field.
//
// csumStart and csumOffset are the virtio_net_hdr csum_start and
// csum_offset values, counted from the start of frame (for a frame read
// from a packet socket, from the Ethernet header). frame must end where
// the transport segment ends: trim any link-layer padding first.
//
// A result of 0 is stored as 0xffff (CSUM_MANGLED_0, as skb_checksum_help
// does for every protocol): for UDP over IPv4 a zero field would mean "no
// checksum" (RFC 768), and for TCP 0xffff verifies exactly as 0 does.
//
// It returns ErrChecksumRange, and changes nothing, if the field does not
// lie inside frame.
func CompletePartial(frame []byte, csumStart, csumOffset int) error {
	if csumStart < 0 || csumOffset < 0 || csumStart > len(frame) ||
		csumOffset > len(frame)-csumStart-2 {
		return ErrChecksumRange
	}
	field := frame[csumStart+csumOffset:]
	c := ^Fold(Sum(frame[csumStart:], 0))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(field, c)
	return nil
}

// UpdatePartial16 returns the partial checksum (pseudo-header seed, the
// folded sum not complemented, as a CHECKSUM_PARTIAL segment carries it)
// updated for one 16-bit word of the pseudo-header changing from old to
// new: fold(seed + ~old + new). Compare Update16, which updates a complete
// (complemented) checksum.
func UpdatePartial16(partial, old, new uint16) uint16 {
	return Fold(uint32(partial) + uint32(^old) + uint32(new))
}

// UpdatePartial32 is UpdatePartial16 for a 4-byte field, an IPv4 address
// of the pseudo-header (NAT rewriting a segment whose checksum is still
// to be completed by offload).
func UpdatePartial32(partial uint16, old, new [4]byte) uint16 {
	sum := uint32(partial)
	sum += uint32(^binary.BigEndian.Uint16(old[:])) + uint32(^binary.BigEndian.Uint16(old[2:]))
	sum += uint32(binary.BigEndian.Uint16(new[:])) + uint32(binary.BigEndian.Uint16(new[2:]))
	return Fold(sum)
}
