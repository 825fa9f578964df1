package hdr

import "encoding/binary"

// Sum adds b to the running one's-complement sum (RFC 1071), treating b as
// a sequence of big-endian 16-bit words; an odd trailing byte is padded
// with zero. The result is not folded: pass it to Fold.
func Sum(b []byte, initial uint32) uint32 {
	sum := uint64(initial)
	for len(b) >= 8 {
		sum += uint64(binary.BigEndian.Uint32(b)) + uint64(binary.BigEndian.Uint32(b[4:]))
		b = b[8:]
	}
	for len(b) >= 2 {
		sum += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint64(b[0]) << 8
	}
	for sum>>32 != 0 {
		sum = sum&0xffffffff + sum>>32
	}
	return uint32(sum)
}

// Fold folds a 32-bit running sum into 16 bits (without complementing).
func Fold(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

// PseudoHeaderSum returns the unfolded sum of the IPv4 pseudo-header
// (RFC 793 section 3.1, RFC 768) for a transport segment of length n.
func PseudoHeaderSum(src, dst [4]byte, proto uint8, n int) uint32 {
	sum := uint32(binary.BigEndian.Uint16(src[:])) + uint32(binary.BigEndian.Uint16(src[2:]))
	sum += uint32(binary.BigEndian.Uint16(dst[:])) + uint32(binary.BigEndian.Uint16(dst[2:]))
	sum += uint32(proto) + uint32(n)
	return sum
}

// TransportChecksum returns the checksum a TCP or UDP segment seg (header
// and payload, with its checksum field taken as zero by the caller) should
// carry over IPv4.
func TransportChecksum(src, dst [4]byte, proto uint8, seg []byte) uint16 {
	return ^Fold(Sum(seg, PseudoHeaderSum(src, dst, proto, len(seg))))
}

// Update16 returns checksum c updated for one 16-bit word of the covered
// data changing from old to new, per RFC 1624 equation 3:
// HC' = ~(~HC + ~m + m').
func Update16(c, old, new uint16) uint16 {
	sum := uint32(^c) + uint32(^old) + uint32(new)
	return ^Fold(sum)
}

// Update32 returns checksum c updated for a 4-byte field (an IPv4 address)
// changing from old to new.
func Update32(c uint16, old, new [4]byte) uint16 {
	sum := uint32(^c)
	sum += uint32(^binary.BigEndian.Uint16(old[:])) + uint32(^binary.BigEndian.Uint16(old[2:]))
	sum += uint32(binary.BigEndian.Uint16(new[:])) + uint32(binary.BigEndian.Uint16(new[2:]))
	return ^Fold(sum)
}
