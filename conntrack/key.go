package conntrack

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Key identifies a connection as IPVS does: protocol, client address and
// port, virtual address and port. Addresses are 16 bytes, IPv4 in
// IPv4-mapped form (::ffff:a.b.c.d), so that the key holds no pointers and
// compares and hashes as plain memory. Never use netip.AddrPort here: it
// carries a pointer (its zone) and makes map operations about twice as
// slow (Tailscale measured this for flowtrack.Tuple).
type Key struct {
	Client, Virtual         [16]byte
	ClientPort, VirtualPort uint16
	Protocol                uint8
}

// v4Prefix is the IPv4-mapped IPv6 prefix ::ffff:0:0/96.
var v4Prefix = [12]byte{10: 0xff, 11: 0xff}

// KeyV4 builds the key of an IPv4 connection.
func KeyV4(proto uint8, client [4]byte, cport uint16, virtual [4]byte, vport uint16) Key {
	k := Key{ClientPort: cport, VirtualPort: vport, Protocol: proto}
	copy(k.Client[:12], v4Prefix[:])
	copy(k.Client[12:], client[:])
	copy(k.Virtual[:12], v4Prefix[:])
	copy(k.Virtual[12:], virtual[:])
	return k
}

// ClientAddr returns the client's address and port.
func (k *Key) ClientAddr() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16(k.Client).Unmap(), k.ClientPort)
}

// VirtualAddr returns the virtual service's address and port.
func (k *Key) VirtualAddr() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16(k.Virtual).Unmap(), k.VirtualPort)
}

// String formats the key for logs and errors (not for the packet path).
func (k Key) String() string {
	proto := fmt.Sprint(k.Protocol)
	switch k.Protocol {
	case 6:
		proto = "TCP"
	case 17:
		proto = "UDP"
	}
	return fmt.Sprintf("%s %s -> %s", proto, k.ClientAddr(), k.VirtualAddr())
}

// hash mixes the key with a seed (a 64-bit multiply-xorshift mix per word,
// as in wyhash/splitmix). Only the shard is chosen with it; each shard's
// Go map hashes again with its own seed.
func (k *Key) hash(seed uint64) uint64 {
	h := seed
	h = mix(h ^ binary.LittleEndian.Uint64(k.Client[:8]))
	h = mix(h ^ binary.LittleEndian.Uint64(k.Client[8:]))
	h = mix(h ^ binary.LittleEndian.Uint64(k.Virtual[:8]))
	h = mix(h ^ binary.LittleEndian.Uint64(k.Virtual[8:]))
	h = mix(h ^ (uint64(k.ClientPort)<<32 | uint64(k.VirtualPort)<<16 | uint64(k.Protocol)))
	return h
}

func mix(x uint64) uint64 {
	// splitmix64's finalizer constants.
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
