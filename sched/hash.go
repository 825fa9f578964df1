package sched

import (
	"encoding/binary"
	"math/bits"

	"github.com/gvs-project/gvs/conntrack"
)

// This file holds the kernel's hash functions that the hashing schedulers
// (dh, sh, mh, lblc, lblcr) use, so that gvs puts a client in the same
// bucket as IPVS does.

// goldenRatio32 is GOLDEN_RATIO_32 of include/linux/hash.h: the negative
// of the golden ratio, (1 - phi) * 2^32, which hash_32 multiplies by.
const goldenRatio32 = 0x61C88647

// hash32 is hash_32 of include/linux/hash.h (the generic __hash_32, which
// x86, arm64 and the other common architectures use): multiply by
// GOLDEN_RATIO_32 and keep the top bits.
func hash32(val uint32, nbits uint) uint32 {
	return (val * goldenRatio32) >> (32 - nbits)
}

// v4Mapped is the prefix of an IPv4-mapped IPv6 address (::ffff:0:0/96),
// the form conntrack.Key and Dest keep IPv4 addresses in.
var v4Mapped = [12]byte{10: 0xff, 11: 0xff}

// fold is the kernel's addr_fold in host byte order, ntohl(addr_fold), as
// ip_vs_dh_hashkey, ip_vs_sh_hashkey, ip_vs_mh_hashkey and the lblc/lblcr
// hashkeys compute it: the IPv4 address itself, or for IPv6 the xor of
// the address's four 32-bit words. An IPv4-mapped address counts as IPv4,
// as it does for a gvs service of that family; the kernel decides by the
// service's family, which agrees except for mixed-family services.
func fold(a *[16]byte) uint32 {
	if [12]byte(a[:12]) == v4Mapped {
		return binary.BigEndian.Uint32(a[12:])
	}
	return binary.BigEndian.Uint32(a[0:]) ^ binary.BigEndian.Uint32(a[4:]) ^
		binary.BigEndian.Uint32(a[8:]) ^ binary.BigEndian.Uint32(a[12:])
}

// IP protocol numbers whose first four bytes are the source and
// destination ports, the ones ip_vs_sh_get_port and ip_vs_mh_get_port read
// ports for.
const (
	protoTCP  = 6
	protoUDP  = 17
	protoSCTP = 132
)

// clientPort is ip_vs_sh_get_port / ip_vs_mh_get_port for a packet from
// the client: its source port for TCP, UDP and SCTP, 0 otherwise.
func clientPort(k *conntrack.Key) uint16 {
	switch k.Protocol {
	case protoTCP, protoUDP, protoSCTP:
		return k.ClientPort
	}
	return 0
}

// zeroKey stands in for a nil key: the hashing schedulers then hash the
// zero address and port.
var zeroKey conntrack.Key

// SipHash constants (SIPHASH_CONST_0..3 of include/linux/siphash.h): the
// ASCII of "somepseudorandomlygeneratedbytes".
const (
	sipConst0 = 0x736f6d6570736575
	sipConst1 = 0x646f72616e646f6d
	sipConst2 = 0x6c7967656e657261
	sipConst3 = 0x7465646279746573
)

// hsiphashKey is the kernel's hsiphash_key_t on a 64-bit machine: two
// unsigned longs.
type hsiphashKey [2]uint64

// hsiphash32 is hsiphash(&v, sizeof(v), key) of a 4-byte value on a 64-bit
// little-endian kernel (x86_64, arm64), where lib/siphash.c makes
// HalfSipHash-1-3 "actually be SipHash1-3": hsiphash_1u32, or equally
// __hsiphash_unaligned with len 4. The message is shorter than a word, so
// only the final block b = len<<56 | v is absorbed: one SipRound for it and
// three for finalisation; the 64-bit result is truncated to u32.
func hsiphash32(v uint32, key *hsiphashKey) uint32 {
	v0 := uint64(sipConst0) ^ key[0]
	v1 := uint64(sipConst1) ^ key[1]
	v2 := uint64(sipConst2) ^ key[0]
	v3 := uint64(sipConst3) ^ key[1]
	b := uint64(4)<<56 | uint64(v)
	// HPOSTAMBLE for BITS_PER_LONG == 64.
	v3 ^= b
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0 ^= b
	v2 ^= 0xff
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	return uint32((v0 ^ v1) ^ (v2 ^ v3))
}

// sipRound is SIPHASH_PERMUTATION of include/linux/siphash.h.
func sipRound(v0, v1, v2, v3 uint64) (uint64, uint64, uint64, uint64) {
	v0 += v1
	v1 = bits.RotateLeft64(v1, 13)
	v1 ^= v0
	v0 = bits.RotateLeft64(v0, 32)
	v2 += v3
	v3 = bits.RotateLeft64(v3, 16)
	v3 ^= v2
	v0 += v3
	v3 = bits.RotateLeft64(v3, 21)
	v3 ^= v0
	v2 += v1
	v1 = bits.RotateLeft64(v1, 17)
	v1 ^= v2
	v2 = bits.RotateLeft64(v2, 32)
	return v0, v1, v2, v3
}
